"""One local HTTP server that plays every channel provider over real HTTP, for tests.

It answers, on 127.0.0.1 and a free port:
- Aliyun SendSms, as the official SDK sends it: `POST /` with header `x-acs-action: SendSms` and the
  parameters (PhoneNumbers, SignName, TemplateCode, TemplateParam, OutId) in the query string;
- Tencent SendSms: `POST /` with header `X-TC-Action: SendSms` and a JSON body (its signature is not
  checked, but its Authorization header is recorded);
- WeChat: `POST /cgi-bin/stable_token`, and `POST /cgi-bin/message/subscribe/bizsend` (Official Account)
  or `/cgi-bin/message/subscribe/send` (Mini Program), which check the access token (40001 otherwise);
- webhooks: `POST /webhook/<anything>`, answered `{"id": …}`.

Every request is recorded (`requests()`), each successful send is counted per message
(`successful_sends()`), and failures are served on demand:

    with ProviderStandIn() as standin:
        provider = build_provider(aliyun_config(standin))
        standin.fail_next("aliyun", "http_503", times=2)        # the next two sends get HTTP 503
        standin.fail_until_cleared("tencent", "error_code:InternalError.Timeout")
        standin.clear_failures()
        standin.refuse_wechat_subscription(open_id)              # errcode 43101 for that open id
        standin.invalidate_wechat_tokens()                       # the next send gets 40001
        standin.reset()                                          # all of the above forgotten
        assert standin.successful_sends("aliyun")[message_id] == 1

Failure modes (`how`):
- "http_<status>": that HTTP status (for Aliyun with its JSON error body, whose Code is StandIn.HTTP<status>);
- "timeout": the request is held, unanswered, until the stand-in stops (the client's timeout ends it);
- "lost_answer": the send is accepted (and counted in `successful_sends`), but its answer never comes: the
  request is held like "timeout". A retry then sends the message a second time, as with a real provider;
- "error_code:<code>": the provider's own refusal: Aliyun's `Code` (HTTP 200), Tencent's `Response.Error`,
  WeChat's `errcode`;
- "status_code:<code>" (Tencent only): the request is accepted but the number's SendStatus carries the code,
  as Tencent reports per-number limits such as LimitExceeded.PhoneNumberDailyLimit.
Targets: "aliyun", "tencent", "wechat" (its sends), "wechat_token" (its token endpoint), "webhook".

`aliyun_config(standin)`, `tencent_config`, `wechat_config` and `webhook_config` (at the end of this module)
are our providers' configurations pointed at the stand-in; each takes changes as keyword arguments.

The server runs in a thread of its own with its own event loop, so it serves callers of any kind (async
tests, blocking SDK calls, other processes) and many requests at once; its state is guarded by a lock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pitlane_notification.adapters.channels.config import (
    AliyunSmsConfig,
    TencentSmsConfig,
    WebhookConfig,
    WeChatConfig,
)

TARGETS = ("aliyun", "tencent", "wechat", "wechat_token", "webhook")
FAILURE_MODE = re.compile(
    r"http_(?P<status>[1-5]\d\d)|(?P<held>timeout|lost_answer)|(?P<kind>error_code|status_code):(?P<code>.+)"
)
WECHAT_SEND_PATHS = ("/cgi-bin/message/subscribe/bizsend", "/cgi-bin/message/subscribe/send")
WECHAT_TOKEN_LIFETIME_S = 7200


@dataclass(frozen=True)
class RecordedRequest:
    provider: str  # "aliyun" | "tencent" | "wechat" | "webhook" | "unknown"
    action: str  # "SendSms", "stable_token", "subscribe_send", "webhook"
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    params: dict[str, Any]  # Aliyun: query (and form) parameters; the others: the JSON body
    query: dict[str, str]
    body: bytes


@dataclass
class _Failure:
    how: str
    remaining: int | None  # None: until cleared


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: dict[str, _Failure] = field(default_factory=dict)
    successes: dict[str, Counter[str]] = field(default_factory=lambda: {t: Counter() for t in TARGETS})
    refused_open_ids: set[str] = field(default_factory=set)
    valid_wechat_tokens: set[str] = field(default_factory=set)
    current_wechat_token: str | None = None


class ProviderStandIn:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._ids = itertools.count(1)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        self._server = uvicorn.Server(
            # log_config=None, no log_level: uvicorn would otherwise reconfigure the process's loggers
            # (uvicorn.error's level among them) for every test that runs after this one.
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", backlog=4096)
        )
        self._thread = threading.Thread(target=self._run, name="provider-standin", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._released: asyncio.Event | None = None  # set on stop: ends every held request

    # -- where the providers are --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """host:port, the form the SMS SDKs take as their endpoint."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def webhook_url(self, name: str = "chain") -> str:
        return f"{self.url}/webhook/{name}"

    # -- life -----------------------------------------------------------------------------------------------

    def start(self) -> ProviderStandIn:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the provider stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> ProviderStandIn:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._released = asyncio.Event()
        await self._server.serve(sockets=[self._socket])

    # -- what the test tells it -------------------------------------------------------------------------------

    def fail_next(self, target: str, how: str, times: int = 1) -> None:
        """The next `times` requests to `target` fail as `how` says (module docstring), then it works again."""
        self._set_failure(target, how, times)

    def fail_until_cleared(self, target: str, how: str) -> None:
        self._set_failure(target, how, None)

    def clear_failures(self, target: str | None = None) -> None:
        with self._lock:
            if target is None:
                self._state.failures.clear()
            else:
                self._state.failures.pop(target, None)

    def refuse_wechat_subscription(self, open_id: str) -> None:
        """Sends to `open_id` get errcode 43101 (the customer refused, or has no subscription left)."""
        with self._lock:
            self._state.refused_open_ids.add(open_id)

    def invalidate_wechat_tokens(self) -> None:
        """Every access token handed out so far is refused (errcode 40001) from now on."""
        with self._lock:
            self._state.valid_wechat_tokens.clear()
            self._state.current_wechat_token = None

    def reset(self) -> None:
        """Forget every request, count, failure, refusal and token: a clean stand-in for the next test."""
        with self._lock:
            self._state = _State()

    def _set_failure(self, target: str, how: str, times: int | None) -> None:
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")
        mode = FAILURE_MODE.fullmatch(how)
        if mode is None:
            raise ValueError(f"unknown failure mode {how!r}")
        if mode["kind"] == "status_code" and target != "tencent":
            raise ValueError("status_code: is Tencent's per-number status; use error_code: elsewhere")
        if mode["kind"] and target == "webhook":
            raise ValueError("a webhook fails by HTTP status, timeout or lost_answer only")
        if mode["kind"] and target.startswith("wechat") and not mode["code"].lstrip("-").isdigit():
            raise ValueError("a WeChat errcode is a number")
        if how == "lost_answer" and target == "wechat_token":
            raise ValueError("lost_answer is for sends; the token endpoint fails by timeout")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._state.failures[target] = _Failure(how, times)

    # -- what the test reads ----------------------------------------------------------------------------------

    def requests(self, provider: str | None = None, action: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                request
                for request in self._state.requests
                if (provider is None or request.provider == provider)
                and (action is None or request.action == action)
            ]

    def successful_sends(self, target: str) -> Counter[str]:
        """How often each message was accepted (a "lost_answer" counts): by OutId (Aliyun), SessionContext
        (Tencent), X-Pitlane-Message-Id (webhook); WeChat's API carries no id of ours: its sends count by
        open id."""
        with self._lock:
            return Counter(self._state.successes[target])

    # -- serving ------------------------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = dict(request.query_params)
        if path.startswith("/cgi-bin/"):
            provider, action = (
                "wechat",
                "stable_token" if path == "/cgi-bin/stable_token" else "subscribe_send",
            )
        elif path.startswith("/webhook/"):
            provider, action = "webhook", "webhook"
        elif "x-tc-action" in headers:
            provider, action = "tencent", headers["x-tc-action"]
        elif "x-acs-action" in headers or "Action" in query:
            provider, action = "aliyun", headers.get("x-acs-action") or query["Action"]
        else:
            provider, action = "unknown", ""
        if provider == "aliyun":
            params: dict[str, Any] = dict(query)
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                params.update(parse_qsl(raw.decode()))
        else:
            params = _json_object(raw)
        recorded = RecordedRequest(provider, action, request.method, path, headers, params, query, raw)
        with self._lock:
            self._state.requests.append(recorded)
        match provider:
            case "aliyun":
                return await self._aliyun(recorded)
            case "tencent":
                return await self._tencent(recorded)
            case "wechat" if action == "stable_token":
                return await self._wechat_token(recorded)
            case "wechat" if path in WECHAT_SEND_PATHS:
                return await self._wechat_send(recorded)
            case "webhook":
                return await self._webhook(recorded)
        return PlainTextResponse("no such provider endpoint", status_code=404)

    def _take_failure(self, target: str) -> re.Match[str] | None:
        """The failure due for this request to `target`, if any (one fewer left to serve)."""
        with self._lock:
            failure = self._state.failures.get(target)
            if failure is None:
                return None
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining == 0:
                    del self._state.failures[target]
        return FAILURE_MODE.fullmatch(failure.how)

    async def _held(self) -> Response:
        """No answer until the stand-in stops; by then the client has long given up."""
        assert self._released is not None
        await self._released.wait()
        return PlainTextResponse("stand-in stopped", status_code=503)

    async def _aliyun(self, request: RecordedRequest) -> Response:
        request_id = f"standin-{next(self._ids)}"
        if request.action != "SendSms":
            return JSONResponse({"Code": "InvalidAction.NotFound", "RequestId": request_id}, status_code=404)
        out_id = request.params.get("OutId", "")
        failure = self._take_failure("aliyun")
        if failure is not None:
            if failure["status"]:
                body = {"Code": f"StandIn.HTTP{failure['status']}", "Message": "stand-in failure"}
                return JSONResponse({**body, "RequestId": request_id}, status_code=int(failure["status"]))
            if failure["code"]:
                return JSONResponse(
                    {"Code": failure["code"], "Message": "stand-in refusal", "RequestId": request_id}
                )
            if failure["held"] == "lost_answer":
                self._count("aliyun", out_id)
            return await self._held()
        self._count("aliyun", out_id)
        biz_id = f"{next(self._ids)}^0"
        return JSONResponse({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id})

    async def _tencent(self, request: RecordedRequest) -> Response:
        request_id = f"standin-{next(self._ids)}"
        session_context = request.params.get("SessionContext", "")
        failure = self._take_failure("tencent")
        status_code = "Ok"
        if failure is not None:
            if failure["status"]:
                return PlainTextResponse("stand-in failure", status_code=int(failure["status"]))
            if failure["kind"] == "error_code":
                error = {"Code": failure["code"], "Message": "stand-in refusal"}
                return JSONResponse({"Response": {"Error": error, "RequestId": request_id}})
            if failure["held"] == "lost_answer":
                self._count("tencent", session_context)
            if failure["held"]:
                return await self._held()
            status_code = failure["code"]
        if status_code == "Ok":
            self._count("tencent", session_context)
        statuses = [
            {
                "SerialNo": f"2433:{next(self._ids)}" if status_code == "Ok" else "",
                "PhoneNumber": number,
                "Fee": 1 if status_code == "Ok" else 0,
                "SessionContext": session_context,
                "Code": status_code,
                "Message": "send success" if status_code == "Ok" else "stand-in refusal",
                "IsoCode": "CN",
            }
            for number in request.params.get("PhoneNumberSet") or []
        ]
        return JSONResponse({"Response": {"SendStatusSet": statuses, "RequestId": request_id}})

    async def _wechat_token(self, request: RecordedRequest) -> Response:
        failure = self._take_failure("wechat_token")
        if failure is not None:
            if failure["status"]:
                return PlainTextResponse("stand-in failure", status_code=int(failure["status"]))
            if failure["code"]:
                return JSONResponse({"errcode": int(failure["code"]), "errmsg": "stand-in refusal"})
            return await self._held()
        with self._lock:
            state = self._state
            if request.params.get("force_refresh") is True or state.current_wechat_token is None:
                state.current_wechat_token = f"standin-token-{next(self._ids)}"
                state.valid_wechat_tokens.add(state.current_wechat_token)
            token = state.current_wechat_token
        return JSONResponse({"access_token": token, "expires_in": WECHAT_TOKEN_LIFETIME_S})

    async def _wechat_send(self, request: RecordedRequest) -> Response:
        open_id = str(request.params.get("touser", ""))
        with self._lock:
            token_valid = request.query.get("access_token") in self._state.valid_wechat_tokens
            refused = open_id in self._state.refused_open_ids
        if not token_valid:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
        failure = self._take_failure("wechat")
        if failure is not None:
            if failure["status"]:
                return PlainTextResponse("stand-in failure", status_code=int(failure["status"]))
            if failure["code"]:
                return JSONResponse({"errcode": int(failure["code"]), "errmsg": "stand-in refusal"})
            if failure["held"] == "lost_answer":
                self._count("wechat", open_id)
            return await self._held()
        if refused:
            return JSONResponse({"errcode": 43101, "errmsg": "user refuse to accept the msg"})
        self._count("wechat", open_id)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _webhook(self, request: RecordedRequest) -> Response:
        message_id = request.headers.get("x-pitlane-message-id", "")
        failure = self._take_failure("webhook")
        if failure is not None:
            if failure["status"]:
                return JSONResponse({"error": "stand-in failure"}, status_code=int(failure["status"]))
            if failure["held"] == "lost_answer":
                self._count("webhook", message_id)
            return await self._held()
        self._count("webhook", message_id)
        return JSONResponse({"id": f"wh-{next(self._ids)}"})

    def _count(self, target: str, key: str) -> None:
        with self._lock:
            self._state.successes[target][key] += 1


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {"_": parsed}


# -- our providers' configurations, pointed at a stand-in ------------------------------------------------------

SIGN_NAME = "车友汽修"


def aliyun_config(standin: ProviderStandIn, **changes: Any) -> AliyunSmsConfig:
    settings: dict[str, Any] = {
        "access_key_id": "LTAI-standin",
        "access_key_secret": "aliyun-standin-secret",
        "sign_name": SIGN_NAME,
        "endpoint": standin.host,
        "protocol": "http",
    }
    return AliyunSmsConfig.model_validate(settings | changes)


def tencent_config(standin: ProviderStandIn, **changes: Any) -> TencentSmsConfig:
    settings: dict[str, Any] = {
        "secret_id": "AKID-standin",
        "secret_key": "tencent-standin-secret",
        "sdk_app_id": "1400000000",
        "sign_name": SIGN_NAME,
        "endpoint": standin.host,
        "protocol": "http",
    }
    return TencentSmsConfig.model_validate(settings | changes)


def wechat_config(standin: ProviderStandIn, **changes: Any) -> WeChatConfig:
    settings: dict[str, Any] = {
        "app_id": "wx0000standin",
        "app_secret": "wechat-standin-secret",
        "base_url": standin.url,
    }
    return WeChatConfig.model_validate(settings | changes)


def webhook_config(standin: ProviderStandIn, **changes: Any) -> WebhookConfig:
    settings: dict[str, Any] = {
        "channel": "sms",
        "url": standin.webhook_url(),
        "secret": "webhook-standin-secret",
    }
    return WebhookConfig.model_validate(settings | changes)
