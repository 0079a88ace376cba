"""WeChat subscription messages over WeChat's HTTP API.

An Official Account (公众号) sends a 订阅通知 with `POST /cgi-bin/message/subscribe/bizsend`, a Mini Program
(小程序) a 订阅消息 with `POST /cgi-bin/message/subscribe/send` (WeChatConfig.account says which). Either
needs the account's access token, which this provider takes from the stable-token endpoint
(`POST /cgi-bin/stable_token`): unlike `/cgi-bin/token`, which hands out a new token on every call and so
invalidates the one every other replica holds, it gives all replicas the same token while it is valid.

The token is kept until shortly before it expires. If WeChat refuses it anyway (40001, 40014, 42001: another
process forced a new one, or WeChat revoked it), the provider fetches it again, once, and resends once.

WeChat answers HTTP 200 with an `errcode` for everything it refuses. The open id and the token stay out of
logs and failure reasons; the token travels in the query string, which the platform's logging redacts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from pitlane_notification.adapters.channels.base import (
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)

if TYPE_CHECKING:
    from pitlane_notification.adapters.channels.config import WeChatConfig

logger = logging.getLogger(__name__)

SEND_PATHS = {
    "official_account": "/cgi-bin/message/subscribe/bizsend",
    "mini_program": "/cgi-bin/message/subscribe/send",
}
TOKEN_PATH = "/cgi-bin/stable_token"
# Renew this long before WeChat's `expires_in` runs out (7200 s for a stable token): a token that lapses
# between our check and WeChat's would cost a refused send and a refresh.
TOKEN_RENEWAL_MARGIN_S = 300.0

TOKEN_REFUSED = frozenset({40001, 40014, 42001})  # invalid, malformed, expired access token
SUBSCRIPTION_REFUSED = frozenset(
    {
        43101,  # the customer refused, or a one-time subscription was already used
        43004,  # the customer no longer follows the Official Account
    }
)
UNAVAILABLE = frozenset(
    {
        -1,  # system busy
        45009,  # the account's daily call quota of this API is spent
        45011,  # calls too frequent
    }
)
# The languages WeChat renders a Mini Program's 订阅消息 in (any other "en…" locale is en_US, the rest zh_CN).
MINI_PROGRAM_LANGS = {"zh-CN": "zh_CN", "zh-HK": "zh_HK", "zh-TW": "zh_TW", "en-US": "en_US"}


class WeChatProvider:
    name = "wechat"
    channel = "wechat"

    def __init__(self, config: WeChatConfig, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        """`monotonic` tells how long a token has been held (tests move it on instead of waiting)."""
        self._app_id = config.app_id
        self._app_secret = config.app_secret
        self._account = config.account
        self._monotonic = monotonic
        self._http = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout_s)
        self._timeout_s = config.timeout_s
        self._token: str | None = None
        self._token_renew_at = 0.0
        # Concurrent sends that find no valid token wait for one fetch instead of each fetching one.
        self._token_lock = asyncio.Lock()

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if not message.provider_template:
            raise ProviderError(FailureKind.REJECTED, "wechat needs a template id")
        body = self._request_body(message)
        token = await self._valid_token()
        answer = await self._post_send(body, token)
        if answer.get("errcode") in TOKEN_REFUSED:
            logger.info("wechat refused its access token (errcode %s); fetching it again", answer["errcode"])
            token = await self._replace_token(token)
            answer = await self._post_send(body, token)
        errcode = answer.get("errcode", 0)
        if errcode != 0:
            raise _refusal(errcode)
        msgid = answer.get("msgid")
        return SendReceipt(provider=self.name, provider_message_id=None if msgid is None else str(msgid))

    async def close(self) -> None:
        await self._http.aclose()

    def _request_body(self, message: OutboundMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "touser": message.address,
            "template_id": message.provider_template,
            "data": {key: {"value": value} for key, value in message.parameters.items()},
        }
        if message.link:
            body["page"] = message.link
        if self._account == "mini_program":
            fallback = "en_US" if message.locale.startswith("en") else "zh_CN"
            body["lang"] = MINI_PROGRAM_LANGS.get(message.locale, fallback)
        return body

    async def _post_send(self, body: Mapping[str, Any], token: str) -> dict[str, Any]:
        return await self._call(
            "POST", SEND_PATHS[self._account], params={"access_token": token}, json=body, what="send"
        )

    async def _valid_token(self) -> str:
        async with self._token_lock:
            if self._token is None or self._monotonic() >= self._token_renew_at:
                return await self._fetch_token(force_refresh=False)
            return self._token

    async def _replace_token(self, refused: str) -> str:
        """A token other than `refused`: the one a concurrent send already fetched, WeChat's current stable
        token, or, when WeChat still hands out the refused one, a freshly forced one."""
        async with self._token_lock:
            if self._token is not None and self._token != refused:
                return self._token
            token = await self._fetch_token(force_refresh=False)
            if token == refused:
                token = await self._fetch_token(force_refresh=True)
            return token

    async def _fetch_token(self, *, force_refresh: bool) -> str:
        started = self._monotonic()
        answer = await self._call(
            "POST",
            TOKEN_PATH,
            json={
                "grant_type": "client_credential",
                "appid": self._app_id,
                "secret": self._app_secret.get_secret_value(),
                "force_refresh": force_refresh,
            },
            what="token",
        )
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            # 40013 (wrong app id), 40125 (wrong secret), 40164 (our IP not whitelisted), -1 (busy): the
            # account's settings, not the message, are at fault; the message may go once they are fixed.
            errcode = answer.get("errcode", "none")
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"wechat access token not granted (errcode {errcode})"
            )
        self._token = token
        self._token_renew_at = started + expires_in - min(TOKEN_RENEWAL_MARGIN_S, expires_in / 2)
        return token

    async def _call(self, method: str, path: str, *, what: str, **request: Any) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.request(method, path, **request)
        except TimeoutError:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"wechat {what} timed out after {self._timeout_s:g}s"
            ) from None
        except httpx.TransportError as error:
            # `from None`: some of httpx's errors quote the URL, and with it the access token.
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"wechat {what} unreachable ({type(error).__name__})"
            ) from None
        if response.status_code != 200:
            # WeChat itself answers 200 to everything; anything else is its gateway in trouble.
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"wechat {what} answered HTTP {response.status_code}"
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ProviderError(FailureKind.UNAVAILABLE, f"wechat {what} answer is not a JSON object")
        return answer


def _refusal(errcode: object) -> ProviderError:
    reason = f"wechat errcode {errcode}"
    if errcode in SUBSCRIPTION_REFUSED:
        return ProviderError(FailureKind.SUBSCRIPTION_REFUSED, reason)
    if errcode in UNAVAILABLE or errcode in TOKEN_REFUSED:
        # A token refused again right after a fresh one was fetched: WeChat's trouble, try later.
        return ProviderError(FailureKind.UNAVAILABLE, reason)
    # 40003 (invalid open id), 40037 (invalid template id), 47003 (data does not fit the template), …
    return ProviderError(FailureKind.REJECTED, reason)
