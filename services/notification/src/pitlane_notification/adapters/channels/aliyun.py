"""Alibaba Cloud SMS (阿里云短信服务) through its official SDK, `alibabacloud_dysmsapi20170525`.

One SendSms call per message: the approved template (`provider_template`, e.g. SMS_123456789) with its
variables as JSON, our sign name, and our message id as OutId (which Aliyun's delivery receipts echo back).
Aliyun answers a refused message with HTTP 200 and a `Code` other than "OK"; throttling, authentication and
server trouble arrive as HTTP errors, which the SDK raises.

The SDK's own retries stay off (its back-off sleeps block the event loop): retrying is the service layer's
decision, made from the ProviderError's kind.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525.models import SendSmsRequest
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import ResponseException
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException, UnretryableException

from pitlane_notification.adapters.channels.base import (
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)

if TYPE_CHECKING:
    from pitlane_notification.adapters.channels.config import AliyunSmsConfig

# The per-number flow control: Aliyun sends at most so many messages a day (and hour, and minute) to one
# number, across all templates of the account.
DAILY_CAP_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL"})
# The account, not the message, is at fault (no balance, suspended, wrong or unauthorised key): once someone
# fixes it, the same message goes through, so it is worth retrying rather than dropping.
ACCOUNT_CODE_PREFIXES = (
    "isv.AMOUNT_NOT_ENOUGH",
    "isv.OUT_OF_SERVICE",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
)
# Aliyun's side is busy or broken.
UNAVAILABLE_CODE_PREFIXES = ("isp.", "Throttling", "ServiceUnavailable", "InternalError")


class AliyunSmsProvider:
    name = "aliyun"
    channel = "sms"

    def __init__(self, config: AliyunSmsConfig) -> None:
        self._sign_name = config.sign_name
        self._timeout_s = config.timeout_s
        timeout_ms = int(config.timeout_s * 1000)
        self._client = Client(
            Config(
                access_key_id=config.access_key_id,
                access_key_secret=config.access_key_secret.get_secret_value(),
                endpoint=config.endpoint,
                protocol=config.protocol,
                connect_timeout=timeout_ms,
                read_timeout=timeout_ms,
            )
        )

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if not message.provider_template:
            raise ProviderError(FailureKind.REJECTED, "aliyun needs a template code")
        request = SendSmsRequest(
            phone_numbers=message.address,
            sign_name=self._sign_name,
            template_code=message.provider_template,
            template_param=json.dumps(dict(message.parameters), ensure_ascii=False, separators=(",", ":")),
            out_id=message.message_id,
        )
        try:
            # The SDK's timeouts bound each socket read; this bounds the whole call.
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.send_sms_with_options_async(request, RuntimeOptions())
        except TimeoutError:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"aliyun timed out after {self._timeout_s:g}s"
            ) from None
        except TeaException as error:
            # `from None`: the SDK's messages quote the whole answer, which is no place for a traceback.
            raise _provider_error(error) from None
        body = response.body
        if body.code != "OK":
            raise _refusal(body.code or "no Code", http_status=None)
        return SendReceipt(provider=self.name, provider_message_id=body.biz_id)

    async def close(self) -> None:
        """Nothing to release: the SDK opens and closes an HTTP session per call."""


def _provider_error(error: TeaException) -> ProviderError:
    if isinstance(error, ResponseException):
        return _refusal(error.code or "no Code", http_status=error.status_code)
    if isinstance(error, UnretryableException):
        # No answer (refused, reset, timed out) or one that is not Aliyun's JSON (a proxy's error page).
        cause = type(error.inner_exception).__name__
        return ProviderError(FailureKind.UNAVAILABLE, f"aliyun unreachable or unreadable ({cause})")
    return ProviderError(FailureKind.UNAVAILABLE, f"aliyun SDK error {error.code or type(error).__name__}")


def _refusal(code: str, http_status: int | None) -> ProviderError:
    if code in DAILY_CAP_CODES:
        return ProviderError(FailureKind.DAILY_CAP, f"aliyun {code}")
    server_trouble = http_status is not None and (http_status >= 500 or http_status == 429)
    if server_trouble or code.startswith(UNAVAILABLE_CODE_PREFIXES + ACCOUNT_CODE_PREFIXES):
        status = f" (HTTP {http_status})" if http_status is not None else ""
        return ProviderError(FailureKind.UNAVAILABLE, f"aliyun {code}{status}")
    # isv.MOBILE_NUMBER_ILLEGAL, isv.SMS_TEMPLATE_ILLEGAL, isv.TEMPLATE_MISSING_PARAMETERS, …
    return ProviderError(FailureKind.REJECTED, f"aliyun {code}")
