"""The message pipeline against real PostgreSQL and NATS and the providers' stand-in over real HTTP, on an
injected clock: quiet hours across a restart, a provider that is down or comes back, consent and "TD",
WeChat's refusal falling back to SMS, and two replicas sending a thousand due messages each once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from notification_harness import BRANCH, START, Harness, running, shanghai
from provider_standin import ProviderStandIn, aliyun_config, wechat_config

from pitlane_events.customer_profile import CustomerTagged
from pitlane_events.types import Channel, Purpose
from pitlane_notification.adapters import queries
from pitlane_notification.adapters.channels.config import build_provider
from pitlane_notification.service_layer.requests import MessageRequest, Trigger
from pitlane_platform.clock import FixedClock
from platform_flow import wait_until


@asynccontextmanager
async def with_providers(
    database_url: str,
    nats_url: str,
    standin: ProviderStandIn,
    clock: FixedClock | None = None,
    **changes: Any,
) -> AsyncIterator[Harness]:
    """The service with SMS through Alibaba Cloud's SDK and WeChat through its HTTP API, both at the stand-in."""
    providers = {
        Channel.WECHAT: build_provider(wechat_config(standin)),
        Channel.SMS: build_provider(aliyun_config(standin)),
    }
    async with running(
        database_url,
        nats_url,
        clock=clock,
        providers=providers,
        **{"channels": (Channel.WECHAT, Channel.SMS), **changes},
    ) as harness:
        await harness.open_branch()
        yield harness


async def test_a_message_due_at_22_is_queued_and_goes_out_at_8_across_a_restart(
    database_url: str, nats_url: str
) -> None:
    clock = FixedClock(shanghai(1, 22))
    async with running(database_url, nats_url, clock=clock) as harness:
        await harness.open_branch()
        await harness.customer("c1", email="zhang.wei@example.cn")
        await harness.progress("wo-1", "c1", "已更换机油")
        queued = await harness.until_message(trigger="work_order_progress", channel="sms")
        assert queued["status"] == "queued" and queued["due_at"] == shanghai(2, 8)
        harness.advance(hours=9, minutes=59)  # 07:59
        await harness.timers_caught_up()
        assert (await harness.messages(message_id=queued["message_id"]))[0]["status"] == "queued"
        assert await harness.recorded() == []
    # The service stops overnight and starts again; at 08:00 the message goes, once.
    clock.set(shanghai(2, 8))
    async with running(database_url, nats_url, clock=clock) as restarted:
        sent = await restarted.until_message(message_id=queued["message_id"], status="sent")
        assert sent["sent_at"] == shanghai(2, 8)
        await restarted.timers_caught_up()
        recorded = await restarted.recorded()
        assert [m["message_id"] for m in recorded] == [queued["message_id"]]
        assert "已更换机油" in recorded[0]["body"] and recorded[0]["address"] == "13812345678"


async def test_e_mail_is_not_held_by_quiet_hours(database_url: str, nats_url: str) -> None:
    clock = FixedClock(shanghai(1, 23))
    async with running(database_url, nats_url, clock=clock, channels=(Channel.EMAIL, Channel.SMS)) as harness:
        await harness.open_branch()
        await harness.customer("c1", email="zhang.wei@example.cn")
        await harness.progress("wo-1", "c1", "已更换机油")
        sent = await harness.until_message(trigger="work_order_progress", status="sent")
        assert sent["channel"] == "email" and sent["sent_at"] == shanghai(1, 23)


async def test_a_provider_that_is_down_is_retried_with_back_off_then_notification_failed(
    database_url: str, nats_url: str, standin: ProviderStandIn
) -> None:
    standin.fail_until_cleared("aliyun", "http_503")
    async with with_providers(database_url, nats_url, standin, delivery_max_attempts=3) as harness:
        await harness.customer("c1")
        await harness.progress("wo-1", "c1", "已更换机油")
        message = await harness.until_message(trigger="work_order_progress")
        for attempts, back_off in ((1, {"seconds": 30}), (2, {"minutes": 2})):
            await attempts_made(harness, message["message_id"], attempts)
            [row] = await harness.messages(message_id=message["message_id"])
            assert row["status"] == "queued" and row["status_reason"].startswith("provider_unavailable")
            harness.advance(**back_off)
        failed = await harness.until_message(message_id=message["message_id"], status="failed")
        assert failed["attempts"] == 3 and "after 3 attempts" in failed["status_reason"]
        [event] = await harness.published("notification.NotificationFailed")
        assert event.data.notification_id == message["message_id"] and not event.data.will_retry
        assert event.data.reason.startswith("provider_unavailable")
        sends = standin.requests("aliyun")
        assert len(sends) == 3 and {r.params["OutId"] for r in sends} == {message["message_id"]}
        assert await harness.published("notification.NotificationSent") == []


async def test_a_provider_that_comes_back_mid_retry_delivers_exactly_once(
    database_url: str, nats_url: str, standin: ProviderStandIn
) -> None:
    standin.fail_next("aliyun", "http_503", times=2)
    async with with_providers(database_url, nats_url, standin) as harness:
        await harness.customer("c1")
        await harness.progress("wo-1", "c1", "已更换机油")
        message = await harness.until_message(trigger="work_order_progress")
        for attempts, back_off in ((1, {"seconds": 30}), (2, {"minutes": 2})):
            await attempts_made(harness, message["message_id"], attempts)
            harness.advance(**back_off)
        sent = await harness.until_message(message_id=message["message_id"], status="sent")
        harness.advance(hours=1)
        await harness.timers_caught_up()
        assert sent["attempts"] == 3
        assert standin.successful_sends("aliyun") == {message["message_id"]: 1}
        [event] = await harness.published("notification.NotificationSent")
        assert event.data.notification_id == message["message_id"]
        assert await harness.published("notification.NotificationFailed") == []


async def test_marketing_to_a_customer_without_consent_is_not_sent_and_the_record_says_why(
    harness: Harness,
) -> None:
    await harness.customer("c-yes", phone="+8613812340001", marketing=[Channel.SMS])
    await harness.customer("c-no", phone="+8613812340002")
    for customer_id in ("c-yes", "c-no"):
        await tag(harness, customer_id, "vip")
    launched = await launch(harness, control_share_pct=0)
    assert (launched["recipients"], launched["skipped_without_consent"]) == (1, 1)
    sent = await harness.until_message(customer_id="c-yes", trigger="campaign", status="sent")
    assert sent["body"].endswith("回T退订")
    [refused] = await harness.messages(customer_id="c-no", trigger="campaign")
    assert (refused["status"], refused["status_reason"]) == ("suppressed", "no_consent")
    failed = await harness.published("notification.NotificationFailed")
    assert [(e.data.recipient_customer_id, e.data.reason) for e in failed] == [("c-no", "no_consent")]
    recipients = (await harness.get(f"/v1/campaigns/{launched['campaign_id']}/recipients")).json()[
        "recipients"
    ]
    assert {(r["customer_id"], r["outcome"]) for r in recipients} == {
        ("c-yes", "sent"),
        ("c-no", "no_consent"),
    }
    assert [m["address"] for m in await harness.recorded()] == ["13812340001"]


async def test_an_inbound_td_stops_the_next_campaign_message(harness: Harness) -> None:
    await harness.customer("c1", phone="+8613812340001", marketing=[Channel.SMS, Channel.EMAIL])
    await tag(harness, "c1", "vip")
    await launch(harness, control_share_pct=0)
    await harness.until_message(customer_id="c1", trigger="campaign", status="sent")

    reply = [
        {
            "phone_number": "13812340001",
            "content": "TD",
            "sign_name": "车友汽修",
            "send_time": "2026-12-01 09:05:00",
            "dest_code": "1234",
            "sequence_id": 1,
        }
    ]
    answered = await harness.client.post(
        "/v1/providers/aliyun/replies",
        params={"key": harness.settings.callback_key.get_secret_value()},
        json=reply,
    )
    assert answered.status_code == 200 and answered.json()["applied"] == 1
    harness.advance(days=31)  # past the contact-frequency limit: only the opt-out can stop the next one
    second = await launch(harness, control_share_pct=0)
    assert second["recipients"] == 0
    [stopped] = await harness.messages(campaign_id=second["campaign_id"])
    assert (stopped["status"], stopped["status_reason"]) == ("suppressed", "consent_withdrawn: sms_reply")
    assert len(await harness.recorded()) == 1
    unsubscribed = await harness.published("notification.CustomerUnsubscribed")
    assert {e.data.channel for e in unsubscribed} == {"sms", "wechat", "email"}
    assert {e.data.source for e in unsubscribed} == {"sms_reply"}


async def test_a_reply_other_than_an_opt_out_or_without_the_key_changes_nothing(harness: Harness) -> None:
    await harness.customer("c1", phone="+8613812340001", marketing=[Channel.SMS])
    key = harness.settings.callback_key.get_secret_value()
    chat = [
        {
            "phone_number": "13812340001",
            "content": "明天几点开门？",
            "sign_name": "车友汽修",
            "send_time": "2026-12-01 09:05:00",
        }
    ]
    assert (await harness.client.post("/v1/providers/aliyun/replies", params={"key": key}, json=chat)).json()[
        "applied"
    ] == 0
    td = [{**chat[0], "content": "TD"}]
    forged = await harness.client.post("/v1/providers/aliyun/replies", params={"key": "guess"}, json=td)
    assert forged.status_code == 403
    assert await harness.rows("SELECT * FROM consents WHERE granted = false") == []


async def test_a_wechat_send_refused_by_the_platform_falls_back_to_sms_once(
    database_url: str, nats_url: str, standin: ProviderStandIn
) -> None:
    standin.refuse_wechat_subscription("oWx-c1")
    async with with_providers(database_url, nats_url, standin) as harness:
        await harness.customer("c1", wechat="oWx-c1")
        granted = await harness.post(
            "/v1/wechat/subscriptions",
            {"customer_id": "c1", "template_id": "PITLANE_WORK_ORDER_PROGRESS", "count": 3},
        )
        assert granted.json()["remaining"] == 3
        await harness.progress("wo-1", "c1", "已更换机油")
        sms = await harness.until_message(trigger="work_order_progress", channel="sms", status="sent")
        harness.advance(hours=1)
        await harness.timers_caught_up()
        [wechat] = await harness.messages(trigger="work_order_progress", channel="wechat")
        assert wechat["status"] == "failed" and wechat["status_reason"].startswith("wechat_refused")
        assert len(await harness.messages(trigger="work_order_progress")) == 2
        assert standin.successful_sends("aliyun") == {sms["message_id"]: 1}
        assert [r.params["touser"] for r in standin.requests("wechat", "subscribe_send")] == ["oWx-c1"]
        [allowance] = await harness.rows("SELECT remaining FROM wechat_allowances WHERE customer_id = 'c1'")
        assert (
            allowance["remaining"] == 0
        )  # WeChat's refusal: no more sends of it until the customer re-subscribes
        [failed] = await harness.published("notification.NotificationFailed")
        assert failed.data.will_retry and failed.data.channel == "wechat"


async def test_two_replicas_over_1000_due_messages_send_each_exactly_once(
    database_url: str, nats_url: str, standin: ProviderStandIn
) -> None:
    clock = FixedClock(START)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            with_providers(
                database_url, nats_url, standin, clock=clock, channels=(Channel.SMS,), timer_concurrency=8
            )
        )
        customers = [f"c{n:04d}" for n in range(1000)]
        due = START.replace(hour=3)  # 11:00 in Shanghai
        async with first.service.runtime.driver.transaction() as unit:
            for n, customer_id in enumerate(customers):
                await queries.upsert_contact(unit, customer_id, full_name="张伟", phone=f"+86139{n:08d}")
                await first.service.service.delivery.queue(
                    unit,
                    MessageRequest(
                        trigger=Trigger.WORK_ORDER_PROGRESS,
                        purpose=Purpose.SERVICE,
                        customer_id=customer_id,
                        cause=f"bulk-{customer_id}",
                        due_at=due,
                        branch_id=BRANCH,
                        context={
                            "plate": "沪A12345",
                            "link": "https://shop.example.cn/c/x",
                            "progress": "完工",
                        },
                    ),
                )
        second = await stack.enter_async_context(
            running(
                database_url,
                nats_url,
                clock=clock,
                providers={Channel.SMS: build_provider(aliyun_config(standin))},
                channels=(Channel.SMS,),
                timer_concurrency=8,
            )
        )
        clock.set(due)

        async def all_sent() -> bool:
            rows = await first.rows("SELECT count(*) AS n FROM messages WHERE status = 'sent'")
            return rows[0]["n"] == len(customers)

        await wait_until(all_sent, timeout=240)
        fired = [h.service.runtime.timer_runner.status.fired for h in (first, second)]  # type: ignore[union-attr]
    sends = standin.successful_sends("aliyun")
    assert len(sends) == len(customers) and set(sends.values()) == {1}
    assert sum(fired) == len(customers) and all(fired), fired  # both replicas took part


async def attempts_made(harness: Harness, message_id: str, attempts: int) -> None:
    async def attempted() -> bool:
        return (await harness.messages(message_id=message_id))[0]["attempts"] >= attempts

    await wait_until(attempted)


async def tag(harness: Harness, customer_id: str, tag_name: str) -> None:
    await harness.emit_and_wait(
        "customer-profile", CustomerTagged(customer_id=customer_id, tag=tag_name), customer_id
    )


async def launch(harness: Harness, **changes: object) -> dict:
    created = await harness.post(
        "/v1/campaigns",
        {
            "name": "夏季空调清洗季",
            "channel": "sms",
            "audience_tags": ["vip"],
            "cost_fen": 50000,
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-31",
            "coupon_prefix": "AC",
            **changes,
        },
    )
    assert created.status_code == 201, created.text
    launched = await harness.post(f"/v1/campaigns/{created.json()['campaign_id']}/launch")
    assert launched.status_code == 200, launched.text
    return launched.json()
