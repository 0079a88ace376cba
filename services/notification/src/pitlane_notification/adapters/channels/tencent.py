"""Tencent Cloud SMS (腾讯云短信) through its official SDK, `tencentcloud-sdk-python-sms`.

The SDK ships an asyncio client (`sms_client_async`, on httpx) beside the synchronous one; this provider
uses it, so a call needs no thread and a timeout really ends it.

Tencent's template variables are positional ({1}, {2}, … in the approved template): `TemplateParamSet` is
the VALUES of `message.parameters` in the mapping's order, its keys are not sent. The renderer must therefore
hand over the parameters in the template's order (a dict keeps its insertion order).

Tencent answers a refused request with `Response.Error` (the SDK raises it) and a refused number inside an
accepted request with that number's `SendStatus.Code` (per-number limits arrive that way).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

import httpx
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111.models import SendSmsRequest
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from pitlane_notification.adapters.channels.base import (
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)

if TYPE_CHECKING:
    from pitlane_notification.adapters.channels.config import TencentSmsConfig

MAINLAND_MOBILE = re.compile(r"1\d{10}")
# What Tencent caps for a day: one number (across contents, or with the same content), or the whole
# application. Another channel can still reach the customer today.
DAILY_CAP_CODES = frozenset(
    {
        "LimitExceeded.PhoneNumberDailyLimit",
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        "LimitExceeded.DailyLimit",
        "LimitExceeded.AppDailyLimit",
        "LimitExceeded.AppMainlandChinaDailyLimit",
        "LimitExceeded.AppGlobalDailyLimit",
    }
)
# Per-number limits of 30 seconds or an hour, and send rates, pass by themselves: back off and retry.
UNAVAILABLE_CODES = frozenset(
    {
        "LimitExceeded.PhoneNumberOneHourLimit",
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        "LimitExceeded.DeliveryFrequencyLimit",
        "LimitExceeded.GlobalSmsSendingRateLimit",
        # The account, not the message, is at fault: once topped up or fixed, the same message goes through.
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "UnauthorizedOperation.ServiceSuspendDueToArrears",
    }
)
UNAVAILABLE_CODE_PREFIXES = ("InternalError", "RequestLimitExceeded", "ServerNetworkError", "AuthFailure")


class TencentSmsProvider:
    name = "tencent"
    channel = "sms"

    def __init__(self, config: TencentSmsConfig) -> None:
        self._sdk_app_id = config.sdk_app_id
        self._sign_name = config.sign_name
        self._timeout_s = config.timeout_s
        http_profile = HttpProfile(
            protocol=config.protocol, endpoint=config.endpoint, reqTimeout=config.timeout_s
        )
        self._client = SmsClient(
            Credential(config.secret_id, config.secret_key.get_secret_value()),
            config.region,
            ClientProfile(httpProfile=http_profile),
        )

    async def send(self, message: OutboundMessage) -> SendReceipt:
        if not message.provider_template:
            raise ProviderError(FailureKind.REJECTED, "tencent needs a template id")
        if not MAINLAND_MOBILE.fullmatch(message.address):
            raise ProviderError(FailureKind.REJECTED, "tencent needs an 11-digit mainland mobile number")
        request = SendSmsRequest()
        request.SmsSdkAppId = self._sdk_app_id
        request.SignName = self._sign_name
        request.TemplateId = message.provider_template
        request.TemplateParamSet = list(message.parameters.values())
        request.PhoneNumberSet = ["+86" + message.address]
        request.SessionContext = message.message_id
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.SendSms(request)
        except TimeoutError:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"tencent timed out after {self._timeout_s:g}s"
            ) from None
        except TencentCloudSDKException as error:
            # `from None`: the SDK's messages may quote the request or the raw answer.
            raise _refusal(error.code or "no Code") from None
        except httpx.TransportError as error:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"tencent unreachable ({type(error).__name__})"
            ) from None
        except json.JSONDecodeError:
            raise ProviderError(FailureKind.UNAVAILABLE, "tencent answer is not JSON") from None
        statuses = response.SendStatusSet or []
        if len(statuses) != 1:
            raise ProviderError(FailureKind.UNAVAILABLE, f"tencent answered {len(statuses)} send statuses")
        status = statuses[0]
        if status.Code != "Ok":
            raise _refusal(status.Code or "no Code")
        return SendReceipt(provider=self.name, provider_message_id=status.SerialNo)

    async def close(self) -> None:
        await self._client.close()


def _refusal(code: str) -> ProviderError:
    if code in DAILY_CAP_CODES:
        return ProviderError(FailureKind.DAILY_CAP, f"tencent {code}")
    if code in UNAVAILABLE_CODES or code.startswith(UNAVAILABLE_CODE_PREFIXES):
        return ProviderError(FailureKind.UNAVAILABLE, f"tencent {code}")
    # InvalidParameterValue.IncorrectPhoneNumber, FailedOperation.TemplateIncorrectOrUnapproved, …
    return ProviderError(FailureKind.REJECTED, f"tencent {code}")
