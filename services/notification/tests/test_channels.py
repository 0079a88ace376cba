"""The SMS, WeChat and webhook providers against the provider stand-in, over real HTTP on 127.0.0.1: what
each sends, and how each of the providers' answers becomes a receipt or a failure of the right kind."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from pitlane_notification.adapters.channels.aliyun import AliyunSmsProvider
from pitlane_notification.adapters.channels.base import (
    ChannelProvider,
    FailureKind,
    OutboundMessage,
    ProviderError,
    SendReceipt,
)
from pitlane_notification.adapters.channels.config import (
    ProviderConfig,
    SmtpConfig,
    WebhookConfig,
    build_provider,
)
from pitlane_notification.adapters.channels.email import SmtpEmailProvider
from pitlane_notification.adapters.channels.tencent import TencentSmsProvider
from pitlane_notification.adapters.channels.webhook import WebhookProvider, verify_signature
from pitlane_notification.adapters.channels.wechat import WeChatProvider

# Tests run with --import-mode=importlib, which puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

from provider_standin import (
    SIGN_NAME,
    ProviderStandIn,
    aliyun_config,
    tencent_config,
    webhook_config,
    wechat_config,
)

MOBILE = "13812345678"
OPEN_ID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
TEMPLATE = "SMS_123456789"
# Reminder of a maintenance appointment; Tencent reads the values in this order.
PARAMETERS = {"name": "张先生", "plate": "沪A12345", "time": "明天 10:00"}
WEBHOOK_SECRET = "webhook-standin-secret"
NOW = 1_796_000_000.0


def sms(message_id: str = "msg-0001", **changes: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "message_id": message_id,
        "channel": "sms",
        "address": MOBILE,
        "body": "【车友汽修】张先生，您的爱车沪A12345明天10:00保养，请准时到店。",
        "provider_template": TEMPLATE,
        "parameters": PARAMETERS,
    }
    return OutboundMessage(**(fields | changes))


def wechat_message(message_id: str = "msg-0002", **changes: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "message_id": message_id,
        "channel": "wechat",
        "address": OPEN_ID,
        "body": "保养提醒",
        "provider_template": "vX1MxRmoPiYcPcmQSrmCMePMvVAFhTaDL-nZNQCELDQ",
        "parameters": {"thing1": "常规保养", "car_number2": "沪A12345", "time3": "2026年12月7日 10:00"},
        "link": "https://shop.example.cn/c/abc",
    }
    return OutboundMessage(**(fields | changes))


def closed_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def send_failing(provider: ChannelProvider, message: OutboundMessage) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await provider.send(message)
    return raised.value


@pytest.fixture(scope="module")
def running_standin() -> Iterator[ProviderStandIn]:
    with ProviderStandIn() as running:
        yield running


@pytest.fixture
def standin(running_standin: ProviderStandIn) -> ProviderStandIn:
    running_standin.reset()
    return running_standin


@pytest.fixture
async def aliyun(standin: ProviderStandIn) -> AsyncIterator[AliyunSmsProvider]:
    provider = AliyunSmsProvider(aliyun_config(standin, timeout_s=2))
    yield provider
    await provider.close()


@pytest.fixture
async def tencent(standin: ProviderStandIn) -> AsyncIterator[TencentSmsProvider]:
    provider = TencentSmsProvider(tencent_config(standin, timeout_s=2))
    yield provider
    await provider.close()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
async def wechat(standin: ProviderStandIn, monotonic: FakeMonotonic) -> AsyncIterator[WeChatProvider]:
    provider = WeChatProvider(wechat_config(standin, timeout_s=2), monotonic=monotonic)
    yield provider
    await provider.close()


@pytest.fixture
async def webhook(standin: ProviderStandIn) -> AsyncIterator[WebhookProvider]:
    provider = WebhookProvider(webhook_config(standin, timeout_s=2), wall_clock=lambda: NOW)
    yield provider
    await provider.close()


# -- Aliyun ---------------------------------------------------------------------------------------------------


async def test_aliyun_sends_template_parameters_sign_name_and_our_id_signed(
    standin: ProviderStandIn, aliyun: AliyunSmsProvider
) -> None:
    receipt = await aliyun.send(sms("msg-0001"))

    [request] = standin.requests("aliyun")
    assert request.action == "SendSms"
    assert request.params["PhoneNumbers"] == MOBILE
    assert request.params["SignName"] == SIGN_NAME
    assert request.params["TemplateCode"] == TEMPLATE
    assert json.loads(request.params["TemplateParam"]) == PARAMETERS
    assert request.params["OutId"] == "msg-0001"
    assert request.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=LTAI-standin,")
    assert receipt.provider == "aliyun"
    assert receipt.provider_message_id is not None and receipt.provider_message_id.endswith("^0")
    assert standin.successful_sends("aliyun") == {"msg-0001": 1}


@pytest.mark.parametrize(
    ("how", "kind"),
    [
        ("error_code:isv.BUSINESS_LIMIT_CONTROL", FailureKind.DAILY_CAP),
        ("error_code:isv.DAY_LIMIT_CONTROL", FailureKind.DAILY_CAP),
        ("error_code:isv.MOBILE_NUMBER_ILLEGAL", FailureKind.REJECTED),
        ("error_code:isv.SMS_TEMPLATE_ILLEGAL", FailureKind.REJECTED),
        ("error_code:isv.TEMPLATE_MISSING_PARAMETERS", FailureKind.REJECTED),
        ("error_code:isp.SYSTEM_ERROR", FailureKind.UNAVAILABLE),
        ("error_code:Throttling.User", FailureKind.UNAVAILABLE),
        ("error_code:isv.AMOUNT_NOT_ENOUGH", FailureKind.UNAVAILABLE),
        ("http_500", FailureKind.UNAVAILABLE),
        ("http_503", FailureKind.UNAVAILABLE),
        ("http_429", FailureKind.UNAVAILABLE),
        ("http_400", FailureKind.REJECTED),
    ],
)
async def test_aliyun_answers_map_to_failure_kinds(
    standin: ProviderStandIn, aliyun: AliyunSmsProvider, how: str, kind: FailureKind
) -> None:
    standin.fail_next("aliyun", how)

    failure = await send_failing(aliyun, sms())

    assert failure.kind is kind
    assert failure.retryable is (kind is FailureKind.UNAVAILABLE)
    assert failure.reason.startswith("aliyun ")
    assert MOBILE not in failure.reason
    if how.startswith("error_code:"):
        assert how.removeprefix("error_code:") in failure.reason
    assert standin.successful_sends("aliyun") == {}


async def test_aliyun_that_does_not_answer_in_time_is_unavailable(standin: ProviderStandIn) -> None:
    provider = AliyunSmsProvider(aliyun_config(standin, timeout_s=0.3))
    standin.fail_next("aliyun", "timeout")

    failure = await send_failing(provider, sms())

    assert failure.kind is FailureKind.UNAVAILABLE
    assert len(standin.requests("aliyun")) == 1  # no retry of its own: that is the service layer's call


async def test_aliyun_unreachable_is_unavailable(standin: ProviderStandIn) -> None:
    provider = AliyunSmsProvider(aliyun_config(standin, endpoint=f"127.0.0.1:{closed_port()}"))

    failure = await send_failing(provider, sms())

    assert failure.kind is FailureKind.UNAVAILABLE
    assert failure.reason.startswith("aliyun unreachable")


async def test_aliyun_without_a_template_code_is_rejected_before_any_call(
    standin: ProviderStandIn, aliyun: AliyunSmsProvider
) -> None:
    failure = await send_failing(aliyun, sms(provider_template=None))

    assert failure.kind is FailureKind.REJECTED
    assert standin.requests() == []


async def test_failures_served_for_a_number_of_times_then_sends_go_through(
    standin: ProviderStandIn, aliyun: AliyunSmsProvider
) -> None:
    standin.fail_next("aliyun", "http_503", times=2)

    kinds = [(await send_failing(aliyun, sms("msg-0001"))).kind for _ in range(2)]
    receipt = await aliyun.send(sms("msg-0001"))

    assert kinds == [FailureKind.UNAVAILABLE, FailureKind.UNAVAILABLE]
    assert receipt.provider_message_id
    assert len(standin.requests("aliyun")) == 3
    assert standin.successful_sends("aliyun") == {"msg-0001": 1}


async def test_a_lost_answer_leaves_the_message_sent_and_its_retry_sends_it_again(
    standin: ProviderStandIn, aliyun: AliyunSmsProvider
) -> None:
    impatient = AliyunSmsProvider(aliyun_config(standin, timeout_s=0.3))
    standin.fail_next("aliyun", "lost_answer")

    failure = await send_failing(impatient, sms("msg-0001"))
    assert standin.successful_sends("aliyun") == {"msg-0001": 1}
    await aliyun.send(sms("msg-0001"))

    # Aliyun does not deduplicate by OutId: what is sent again arrives again.
    assert failure.kind is FailureKind.UNAVAILABLE
    assert standin.successful_sends("aliyun") == {"msg-0001": 2}


def test_the_stand_in_refuses_failures_it_cannot_serve(standin: ProviderStandIn) -> None:
    for target, how in [
        ("huawei", "http_500"),
        ("aliyun", "http_5000"),
        ("aliyun", "slow"),
        ("aliyun", "status_code:isv.BUSINESS_LIMIT_CONTROL"),
        ("webhook", "error_code:E1"),
        ("wechat", "error_code:user refused"),
        ("wechat_token", "lost_answer"),
    ]:
        with pytest.raises(ValueError):
            standin.fail_next(target, how)
    with pytest.raises(ValueError):
        standin.fail_next("aliyun", "http_500", times=0)


async def test_many_concurrent_sends_are_each_counted_once(
    standin: ProviderStandIn, aliyun: AliyunSmsProvider
) -> None:
    message_ids = [f"msg-{n:04}" for n in range(40)]

    receipts = await asyncio.gather(*(aliyun.send(sms(message_id)) for message_id in message_ids))

    assert len({receipt.provider_message_id for receipt in receipts}) == len(message_ids)
    assert standin.successful_sends("aliyun") == dict.fromkeys(message_ids, 1)


# -- Tencent --------------------------------------------------------------------------------------------------


async def test_tencent_sends_positional_parameters_to_the_plus86_number_signed(
    standin: ProviderStandIn, tencent: TencentSmsProvider
) -> None:
    receipt = await tencent.send(sms("msg-0003"))

    [request] = standin.requests("tencent")
    assert request.action == "SendSms"
    assert request.params["SmsSdkAppId"] == "1400000000"
    assert request.params["SignName"] == SIGN_NAME
    assert request.params["TemplateId"] == TEMPLATE
    assert request.params["TemplateParamSet"] == ["张先生", "沪A12345", "明天 10:00"]
    assert request.params["PhoneNumberSet"] == ["+86" + MOBILE]
    assert request.params["SessionContext"] == "msg-0003"
    assert request.headers["authorization"].startswith("TC3-HMAC-SHA256 Credential=AKID-standin/")
    assert "Signature=" in request.headers["authorization"]
    assert receipt.provider == "tencent"
    assert receipt.provider_message_id is not None and receipt.provider_message_id.startswith("2433:")
    assert standin.successful_sends("tencent") == {"msg-0003": 1}


@pytest.mark.parametrize(
    ("how", "kind"),
    [
        ("status_code:LimitExceeded.PhoneNumberDailyLimit", FailureKind.DAILY_CAP),
        ("status_code:LimitExceeded.PhoneNumberSameContentDailyLimit", FailureKind.DAILY_CAP),
        ("status_code:LimitExceeded.PhoneNumberOneHourLimit", FailureKind.UNAVAILABLE),
        ("status_code:InvalidParameterValue.IncorrectPhoneNumber", FailureKind.REJECTED),
        ("status_code:FailedOperation.PhoneNumberInBlacklist", FailureKind.REJECTED),
        ("error_code:FailedOperation.TemplateIncorrectOrUnapproved", FailureKind.REJECTED),
        ("error_code:InvalidParameterValue.TemplateParameterFormatError", FailureKind.REJECTED),
        ("error_code:FailedOperation.InsufficientBalanceInSmsPackage", FailureKind.UNAVAILABLE),
        ("error_code:InternalError.Timeout", FailureKind.UNAVAILABLE),
        ("error_code:RequestLimitExceeded", FailureKind.UNAVAILABLE),
        ("http_502", FailureKind.UNAVAILABLE),
    ],
)
async def test_tencent_answers_map_to_failure_kinds(
    standin: ProviderStandIn, tencent: TencentSmsProvider, how: str, kind: FailureKind
) -> None:
    standin.fail_next("tencent", how)

    failure = await send_failing(tencent, sms())

    assert failure.kind is kind
    assert failure.reason.startswith("tencent ")
    assert MOBILE not in failure.reason
    if ":" in how and not how.startswith("http"):
        assert how.partition(":")[2] in failure.reason
    assert standin.successful_sends("tencent") == {}


async def test_tencent_that_does_not_answer_in_time_is_unavailable(standin: ProviderStandIn) -> None:
    provider = TencentSmsProvider(tencent_config(standin, timeout_s=0.3))
    standin.fail_next("tencent", "timeout")

    failure = await send_failing(provider, sms())
    await provider.close()

    assert failure.kind is FailureKind.UNAVAILABLE
    assert "timed out" in failure.reason or "Timeout" in failure.reason


async def test_tencent_unreachable_is_unavailable(standin: ProviderStandIn) -> None:
    provider = TencentSmsProvider(tencent_config(standin, endpoint=f"127.0.0.1:{closed_port()}"))

    failure = await send_failing(provider, sms())
    await provider.close()

    assert failure.kind is FailureKind.UNAVAILABLE
    assert failure.reason.startswith("tencent unreachable")


async def test_tencent_refuses_what_is_no_mainland_mobile_before_any_call(
    standin: ProviderStandIn, tencent: TencentSmsProvider
) -> None:
    failure = await send_failing(tencent, sms(address="+8613812345678"))

    assert failure.kind is FailureKind.REJECTED
    assert standin.requests() == []


# -- WeChat ---------------------------------------------------------------------------------------------------


async def test_wechat_fetches_a_stable_token_and_sends_a_subscription_notice(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    receipt = await wechat.send(wechat_message())

    [token_request] = standin.requests("wechat", action="stable_token")
    assert token_request.params == {
        "grant_type": "client_credential",
        "appid": "wx0000standin",
        "secret": "wechat-standin-secret",
        "force_refresh": False,
    }
    [send] = standin.requests("wechat", action="subscribe_send")
    assert send.path == "/cgi-bin/message/subscribe/bizsend"
    assert send.query["access_token"].startswith("standin-token-")
    assert send.params == {
        "touser": OPEN_ID,
        "template_id": "vX1MxRmoPiYcPcmQSrmCMePMvVAFhTaDL-nZNQCELDQ",
        "page": "https://shop.example.cn/c/abc",
        "data": {
            "thing1": {"value": "常规保养"},
            "car_number2": {"value": "沪A12345"},
            "time3": {"value": "2026年12月7日 10:00"},
        },
    }
    assert receipt.provider == "wechat" and receipt.provider_message_id is not None
    assert standin.successful_sends("wechat") == {OPEN_ID: 1}


async def test_a_mini_program_sends_through_subscribe_send_in_the_customers_language(
    standin: ProviderStandIn,
) -> None:
    provider = WeChatProvider(wechat_config(standin, account="mini_program"))

    await provider.send(wechat_message(locale="en-US", link="pages/order/detail?id=42"))
    await provider.send(wechat_message(locale="zh-CN"))
    await provider.close()

    first, second = standin.requests("wechat", action="subscribe_send")
    assert first.path == "/cgi-bin/message/subscribe/send"
    assert first.params["page"] == "pages/order/detail?id=42"
    assert (first.params["lang"], second.params["lang"]) == ("en_US", "zh_CN")


async def test_wechat_token_is_fetched_once_for_two_sends(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    await wechat.send(wechat_message("msg-1", address="open-id-1"))
    await wechat.send(wechat_message("msg-2", address="open-id-2"))

    assert len(standin.requests("wechat", action="stable_token")) == 1
    first, second = standin.requests("wechat", action="subscribe_send")
    assert first.query["access_token"] == second.query["access_token"]


async def test_concurrent_first_sends_share_one_token_fetch(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    await asyncio.gather(*(wechat.send(wechat_message(f"msg-{n}", address=f"open-id-{n}")) for n in range(5)))

    assert len(standin.requests("wechat", action="stable_token")) == 1


async def test_a_refused_token_is_fetched_again_once_and_the_send_repeated(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    await wechat.send(wechat_message("msg-1"))
    standin.invalidate_wechat_tokens()

    receipt = await wechat.send(wechat_message("msg-2"))

    _, second_token = standin.requests("wechat", action="stable_token")
    assert second_token.params["force_refresh"] is False
    sends = standin.requests("wechat", action="subscribe_send")
    assert len(sends) == 3  # the first message, the refused attempt, its repetition
    assert sends[1].query["access_token"] == sends[0].query["access_token"]
    assert sends[2].query["access_token"] != sends[1].query["access_token"]
    assert receipt.provider_message_id is not None
    assert standin.successful_sends("wechat") == {OPEN_ID: 2}


async def test_a_token_wechat_keeps_handing_out_after_refusing_it_is_forced_anew(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    standin.fail_next("wechat", "error_code:40001")

    await wechat.send(wechat_message())

    assert [r.params["force_refresh"] for r in standin.requests("wechat", action="stable_token")] == [
        False,
        False,  # WeChat's current token is the one it refused: …
        True,  # … so a new one is forced
    ]
    first, repeated = standin.requests("wechat", action="subscribe_send")
    assert first.query["access_token"] != repeated.query["access_token"]
    assert standin.successful_sends("wechat") == {OPEN_ID: 1}


async def test_a_token_refused_again_after_the_refresh_is_unavailable_without_a_third_try(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    standin.fail_next("wechat", "error_code:40001", times=2)

    failure = await send_failing(wechat, wechat_message())

    assert failure.kind is FailureKind.UNAVAILABLE
    assert len(standin.requests("wechat", action="subscribe_send")) == 2


async def test_wechat_token_is_renewed_before_it_expires(
    standin: ProviderStandIn, wechat: WeChatProvider, monotonic: FakeMonotonic
) -> None:
    await wechat.send(wechat_message("msg-1"))
    monotonic.now += 7200 - 301  # still more than the renewal margin left
    await wechat.send(wechat_message("msg-2"))
    assert len(standin.requests("wechat", action="stable_token")) == 1

    monotonic.now += 2  # within five minutes of expiry
    await wechat.send(wechat_message("msg-3"))

    assert len(standin.requests("wechat", action="stable_token")) == 2


async def test_a_refused_subscription_is_told_apart_and_names_no_open_id(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    standin.refuse_wechat_subscription(OPEN_ID)

    failure = await send_failing(wechat, wechat_message())
    receipt = await wechat.send(wechat_message(address="oUpF8uOtherCustomer"))

    assert failure.kind is FailureKind.SUBSCRIPTION_REFUSED
    assert not failure.retryable
    assert OPEN_ID not in failure.reason
    assert receipt.provider_message_id is not None


@pytest.mark.parametrize(
    ("how", "kind"),
    [
        ("error_code:43101", FailureKind.SUBSCRIPTION_REFUSED),
        ("error_code:45009", FailureKind.UNAVAILABLE),
        ("error_code:-1", FailureKind.UNAVAILABLE),
        ("error_code:40003", FailureKind.REJECTED),
        ("error_code:40037", FailureKind.REJECTED),
        ("error_code:47003", FailureKind.REJECTED),
        ("http_502", FailureKind.UNAVAILABLE),
    ],
)
async def test_wechat_answers_map_to_failure_kinds(
    standin: ProviderStandIn, wechat: WeChatProvider, how: str, kind: FailureKind
) -> None:
    standin.fail_next("wechat", how)

    failure = await send_failing(wechat, wechat_message())

    assert failure.kind is kind
    assert OPEN_ID not in failure.reason
    assert len(standin.requests("wechat", action="subscribe_send")) == 1  # only a refused token is retried


async def test_a_token_not_granted_is_unavailable_and_nothing_is_sent(
    standin: ProviderStandIn, wechat: WeChatProvider
) -> None:
    standin.fail_next("wechat_token", "error_code:40125")

    failure = await send_failing(wechat, wechat_message())

    assert failure.kind is FailureKind.UNAVAILABLE
    assert failure.reason == "wechat access token not granted (errcode 40125)"
    assert standin.requests("wechat", action="subscribe_send") == []


async def test_wechat_that_does_not_answer_in_time_is_unavailable(standin: ProviderStandIn) -> None:
    provider = WeChatProvider(wechat_config(standin, timeout_s=1))
    standin.fail_next("wechat", "timeout")

    failure = await send_failing(provider, wechat_message())
    await provider.close()

    assert failure.kind is FailureKind.UNAVAILABLE
    assert failure.reason == "wechat send timed out after 1s"
    assert len(standin.requests("wechat", action="stable_token")) == 1


async def test_wechat_unreachable_is_unavailable(standin: ProviderStandIn) -> None:
    provider = WeChatProvider(wechat_config(standin, base_url=f"http://127.0.0.1:{closed_port()}"))

    failure = await send_failing(provider, wechat_message())
    await provider.close()

    assert failure.kind is FailureKind.UNAVAILABLE
    assert failure.reason == "wechat token unreachable (ConnectError)"


# -- webhooks -------------------------------------------------------------------------------------------------


async def test_a_webhook_posts_the_message_signed_with_its_id(
    standin: ProviderStandIn, webhook: WebhookProvider
) -> None:
    message = sms("msg-0004", subject="保养提醒", link="https://shop.example.cn/c/abc")

    receipt = await webhook.send(message)

    [request] = standin.requests("webhook")
    assert request.method == "POST" and request.path == "/webhook/chain"
    assert request.headers["x-pitlane-message-id"] == "msg-0004"
    assert json.loads(request.body) == {
        "message_id": "msg-0004",
        "channel": "sms",
        "address": MOBILE,
        "subject": "保养提醒",
        "body": message.body,
        "template": TEMPLATE,
        "parameters": PARAMETERS,
        "link": "https://shop.example.cn/c/abc",
        "locale": "zh-CN",
    }
    signature = request.headers["x-pitlane-signature"]
    assert signature.startswith(f"t={int(NOW)},v1=")
    assert verify_signature(WEBHOOK_SECRET, signature, request.body, now=NOW + 10)
    assert receipt == SendReceipt(provider="webhook", provider_message_id=receipt.provider_message_id)
    assert receipt.provider_message_id is not None and receipt.provider_message_id.startswith("wh-")
    assert standin.successful_sends("webhook") == {"msg-0004": 1}


async def test_a_webhook_signature_fails_for_any_change(
    standin: ProviderStandIn, webhook: WebhookProvider
) -> None:
    await webhook.send(sms())
    [request] = standin.requests("webhook")
    header, body = request.headers["x-pitlane-signature"], request.body
    timestamp, digest = header.split(",")

    assert verify_signature(WEBHOOK_SECRET, header, body, now=NOW)
    assert not verify_signature(
        WEBHOOK_SECRET, header, body.replace("张先生".encode(), "李先生".encode()), now=NOW
    )
    assert not verify_signature(WEBHOOK_SECRET, header, body + b" ", now=NOW)
    assert not verify_signature("another-secret", header, body, now=NOW)
    assert not verify_signature(WEBHOOK_SECRET, f"t={int(NOW) + 1},{digest}", body, now=NOW)
    assert not verify_signature(WEBHOOK_SECRET, header, body, now=NOW + 301)
    assert not verify_signature(WEBHOOK_SECRET, header, body, now=NOW - 301)
    assert not verify_signature(WEBHOOK_SECRET, timestamp, body, now=NOW)
    assert not verify_signature(WEBHOOK_SECRET, digest, body, now=NOW)
    assert not verify_signature(WEBHOOK_SECRET, f"{timestamp},v1=签名", body, now=NOW)
    assert not verify_signature(WEBHOOK_SECRET, "", body, now=NOW)
    # While a secret is being replaced, a header may carry one signature per secret: one valid suffices.
    assert verify_signature(WEBHOOK_SECRET, f"{timestamp},v1={'0' * 64},{digest}", body, now=NOW)


@pytest.mark.parametrize(
    ("how", "kind"),
    [
        ("http_500", FailureKind.UNAVAILABLE),
        ("http_503", FailureKind.UNAVAILABLE),
        ("http_408", FailureKind.UNAVAILABLE),
        ("http_429", FailureKind.UNAVAILABLE),
        ("http_400", FailureKind.REJECTED),
        ("http_404", FailureKind.REJECTED),
        ("http_410", FailureKind.REJECTED),
    ],
)
async def test_webhook_answers_map_to_failure_kinds(
    standin: ProviderStandIn, webhook: WebhookProvider, how: str, kind: FailureKind
) -> None:
    standin.fail_next("webhook", how)

    failure = await send_failing(webhook, sms())

    assert failure.kind is kind
    assert failure.reason == f"webhook answered HTTP {how.removeprefix('http_')}"


async def test_a_webhook_that_does_not_answer_in_time_or_at_all_is_unavailable(
    standin: ProviderStandIn,
) -> None:
    slow = WebhookProvider(webhook_config(standin, timeout_s=0.3))
    absent = WebhookProvider(webhook_config(standin, url=f"http://127.0.0.1:{closed_port()}/hook"))
    standin.fail_next("webhook", "timeout")

    failures = [await send_failing(slow, sms()), await send_failing(absent, sms())]
    await slow.close()
    await absent.close()

    assert [failure.kind for failure in failures] == [FailureKind.UNAVAILABLE] * 2
    assert failures[0].reason == "webhook timed out after 0.3s"
    assert failures[1].reason == "webhook unreachable (ConnectError)"


# -- configuration --------------------------------------------------------------------------------------------


async def test_each_configuration_kind_builds_its_provider(standin: ProviderStandIn) -> None:
    adapter: TypeAdapter[ProviderConfig] = TypeAdapter(ProviderConfig)
    configurations = [
        aliyun_config(standin).model_dump(mode="json") | {"access_key_secret": "s"},
        tencent_config(standin).model_dump(mode="json") | {"secret_key": "s"},
        wechat_config(standin).model_dump(mode="json") | {"app_secret": "s"},
        {"kind": "smtp", "host": "smtp.example.cn", "from_address": "service@chexiang.example.cn"},
        {"kind": "webhook", "channel": "wechat", "url": standin.webhook_url(), "secret": "s"},
    ]
    expected = [
        (AliyunSmsProvider, "aliyun", "sms"),
        (TencentSmsProvider, "tencent", "sms"),
        (WeChatProvider, "wechat", "wechat"),
        (SmtpEmailProvider, "smtp", "email"),
        (WebhookProvider, "webhook", "wechat"),
    ]

    providers = [build_provider(adapter.validate_python(configuration)) for configuration in configurations]

    assert [(type(p), p.name, p.channel) for p in providers] == expected
    for provider in providers:
        await provider.close()


def test_configurations_hide_their_secrets_and_refuse_what_they_do_not_know() -> None:
    adapter: TypeAdapter[ProviderConfig] = TypeAdapter(ProviderConfig)
    smtp = adapter.validate_python(
        {
            "kind": "smtp",
            "host": "smtp.example.cn",
            "username": "service",
            "password": "smtp-password-123",
            "from_address": "service@chexiang.example.cn",
        }
    )
    webhook = WebhookConfig.model_validate(
        {"channel": "sms", "url": "https://gw.example.cn/sms", "secret": "webhook-secret-456"}
    )

    assert isinstance(smtp, SmtpConfig)
    assert "smtp-password-123" not in repr(smtp) + smtp.model_dump_json()
    assert "webhook-secret-456" not in repr(webhook) + webhook.model_dump_json()
    with pytest.raises(ValidationError, match="union_tag_invalid"):
        adapter.validate_python({"kind": "recording"})
    with pytest.raises(ValidationError, match="extra_forbidden"):
        adapter.validate_python(
            {"kind": "webhook", "channel": "sms", "url": "https://gw.example.cn", "secret": "s", "sign": "x"}
        )
    with pytest.raises(ValidationError, match="url"):
        adapter.validate_python(
            {"kind": "webhook", "channel": "sms", "url": "gw.example.cn/sms", "secret": "s"}
        )
    with pytest.raises(ValidationError, match="timeout_s"):
        adapter.validate_python(
            {
                "kind": "webhook",
                "channel": "sms",
                "url": "https://gw.example.cn",
                "secret": "s",
                "timeout_s": 0,
            }
        )
    with pytest.raises(ValidationError, match="frozen"):
        webhook.url = "https://elsewhere.example.cn"  # type: ignore[misc]
