"""A chain's own endpoint (its own SMS gateway, its CRM): each message is POSTed to it as signed JSON.

The body is `{message_id, channel, address, subject, body, template, parameters, link, locale}`. Two headers
go with it: `X-Pitlane-Message-Id` (the receiver's idempotency key: a retry after a lost answer repeats it)
and `X-Pitlane-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of `f"{t}.{raw body}"` under the
secret both sides share. A receiver checks it with `verify_signature`, which also refuses a signature older
(or newer) than its tolerance, so a captured request cannot be replayed later.

The answer decides the outcome: 2xx sent (a JSON `id` in it becomes the provider's message id), 408, 429 and
5xx "try again later", any other status refused for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from pitlane_notification.adapters.channels.base import (
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)

if TYPE_CHECKING:
    from pitlane_notification.adapters.channels.config import WebhookConfig

SIGNATURE_HEADER = "X-Pitlane-Signature"
MESSAGE_ID_HEADER = "X-Pitlane-Message-Id"
RETRYABLE_STATUSES = frozenset({408, 429})


class WebhookProvider:
    name = "webhook"

    def __init__(self, config: WebhookConfig, *, wall_clock: Callable[[], float] = time.time) -> None:
        """`wall_clock` gives the Unix time the signature carries. It is real time, not the service's Clock:
        the receiver compares it with its own clock, and a demo's shifted Clock would fail every check."""
        self.channel: str = config.channel
        self._url = config.url
        self._secret = config.secret
        self._timeout_s = config.timeout_s
        self._wall_clock = wall_clock
        self._http = httpx.AsyncClient(timeout=config.timeout_s)

    async def send(self, message: OutboundMessage) -> SendReceipt:
        body = json.dumps(
            {
                "message_id": message.message_id,
                "channel": message.channel,
                "address": message.address,
                "subject": message.subject,
                "body": message.body,
                "template": message.provider_template,
                "parameters": dict(message.parameters),
                "link": message.link,
                "locale": message.locale,
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            MESSAGE_ID_HEADER: message.message_id,
            SIGNATURE_HEADER: signature_header(
                self._secret.get_secret_value(), int(self._wall_clock()), body
            ),
        }
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.post(self._url, content=body, headers=headers)
        except TimeoutError:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"webhook timed out after {self._timeout_s:g}s"
            ) from None
        except httpx.TransportError as error:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"webhook unreachable ({type(error).__name__})"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return SendReceipt(provider=self.name, provider_message_id=_answered_id(response))
        kind = (
            FailureKind.UNAVAILABLE if status >= 500 or status in RETRYABLE_STATUSES else FailureKind.REJECTED
        )
        raise ProviderError(kind, f"webhook answered HTTP {status}")

    async def close(self) -> None:
        await self._http.aclose()


def signature_header(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The X-Pitlane-Signature value for `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(
    secret: str | bytes, header: str, body: bytes, now: float, tolerance_s: float = 300
) -> bool:
    """Whether `header` (an X-Pitlane-Signature value) signs exactly `body` with `secret`, at a time within
    `tolerance_s` of `now` (Unix seconds). Several `v1=` entries may be given (while a secret is being
    replaced); one matching is enough. The comparison takes the same time whatever the digests hold."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body).encode()
    # Bytes, not str: compare_digest refuses non-ASCII text, which a forged header may hold. Every candidate
    # is compared, so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in candidates]
    return any(matches)


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _answered_id(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    identifier = answer.get("id") if isinstance(answer, dict) else None
    return None if identifier is None else str(identifier)
