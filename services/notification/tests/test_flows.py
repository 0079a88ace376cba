"""What the other services' events make notification do, end to end against real servers on an injected
clock: appointments, reminders due, messages merged into one, the daily cap, delivery receipts, the
unsubscribe page, campaigns' control groups, merges and erasure."""

from __future__ import annotations

from datetime import date
from urllib.parse import parse_qs, urlsplit

import nats
from notification_harness import BRANCH, Harness, running, shanghai

from pitlane_events.customer_profile import CustomerErased, CustomersMerged, CustomerTagged, VehicleRegistered
from pitlane_events.reminder import ReminderDue, ReminderKind
from pitlane_events.types import Channel, TimeSlot
from pitlane_events.workorder import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentRescheduled,
    BookingChannel,
    ProgressRecorded,
)
from pitlane_notification.service_layer.campaigns import in_control_group
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.security.links import REMINDER_ANSWER, AttributionKind, claims_of, verify_attribution
from platform_flow import stream_messages, wait_until


def slot(day: int, hour: int) -> TimeSlot:
    return TimeSlot(start=shanghai(day, hour), end=shanghai(day, hour + 1))


async def test_a_booking_is_confirmed_at_once_and_reminded_the_day_before(harness: Harness) -> None:
    await harness.customer("c1")
    booked = AppointmentBooked(
        appointment_id="ap-1",
        channel=BookingChannel.ONLINE,
        customer_id="c1",
        plate="沪A12345",
        slot=slot(5, 10),
        service_requested="小保养",
    )
    await harness.emit_and_wait("workorder", booked, "ap-1", branch_id=BRANCH)
    confirmation = await harness.until_message(trigger="appointment_booked", status="sent")
    assert "2026-12-05 10:00" in confirmation["body"] and "小保养" in confirmation["body"]

    moved = AppointmentRescheduled(
        appointment_id="ap-1", customer_id="c1", previous_slot=slot(5, 10), slot=slot(6, 15)
    )
    await harness.emit_and_wait("workorder", moved, "ap-1", branch_id=BRANCH)
    harness.clock.set(shanghai(4, 10))  # the old reminder's time: moved, nothing due
    await harness.timers_caught_up()
    assert await harness.messages(trigger="appointment_reminder") == []
    harness.clock.set(shanghai(5, 15))
    reminder = await harness.until_message(trigger="appointment_reminder", status="sent")
    assert "2026-12-06 15:00" in reminder["body"]


async def test_a_cancelled_booking_gets_no_reminder(harness: Harness) -> None:
    await harness.customer("c1")
    for appointment_id, hour in (("ap-cancelled", 10), ("ap-kept", 11)):
        booked = AppointmentBooked(
            appointment_id=appointment_id,
            channel=BookingChannel.PHONE,
            customer_id="c1",
            plate="沪A12345",
            slot=slot(5, hour),
            service_requested="洗车",
        )
        await harness.emit_and_wait("workorder", booked, appointment_id, branch_id=BRANCH)
    cancelled = AppointmentCancelled(
        appointment_id="ap-cancelled", customer_id="c1", cancelled_by="customer", reason="有事"
    )
    await harness.emit_and_wait("workorder", cancelled, "ap-cancelled", branch_id=BRANCH)
    harness.clock.set(shanghai(4, 11))
    await harness.until_message(trigger="appointment_reminder", appointment_id="ap-kept", status="sent")
    await harness.timers_caught_up()
    assert await harness.messages(trigger="appointment_reminder", appointment_id="ap-cancelled") == []


async def test_a_reminder_due_goes_out_with_a_booking_link_that_attributes_the_booking(
    harness: Harness,
) -> None:
    await harness.customer("c1")
    vehicle = VehicleRegistered(
        vehicle_id="v1", owner_customer_id="c1", plate="沪B67890", brand="丰田", model="卡罗拉"
    )
    await harness.emit_and_wait("customer-profile", vehicle, "v1")
    due = ReminderDue(
        reminder_id="r-1",
        kind=ReminderKind.SERVICE_DUE_BY_MILEAGE,
        vehicle_id="v1",
        customer_id="c1",
        due_mileage_km=45000,
        preferred_branch_id=BRANCH,
    )
    await harness.emit_and_wait("reminder", due, "r-1")
    harness.advance(minutes=1)  # reminders gather for a minute
    message = await harness.until_message(trigger="reminder_due", status="sent")
    assert "沪B67890" in message["body"] and "即将到达保养里程" in message["body"]
    query = parse_qs(urlsplit(message["link"]).query)
    assert message["link"].startswith("https://shop.example.cn/book?") and query["branch"] == [BRANCH]
    attribution = verify_attribution(
        harness.settings.link_secret.get_secret_value(),
        query["attribution"][0],
        harness.clock.now(),
        field="a",
    )
    assert (attribution.kind, attribution.source_id) == (AttributionKind.REMINDER, "r-1")
    [sent] = await harness.published("notification.NotificationSent")
    assert sent.data.reminder_id == "r-1"
    answer = urlsplit(message["context"]["answer_link"])
    assert answer.path.startswith("/r/") and message["context"]["answer_link"] in message["body"]
    claims = claims_of(
        harness.settings.link_secret.get_secret_value(), answer.path.removeprefix("/r/"), REMINDER_ANSWER
    )
    assert claims is not None and claims["r"] == "r-1"


async def test_reminders_due_together_for_one_vehicle_go_out_as_one_message(harness: Harness) -> None:
    await harness.customer("c1")
    vehicle = VehicleRegistered(
        vehicle_id="v1", owner_customer_id="c1", plate="沪B67890", brand="丰田", model="卡罗拉"
    )
    await harness.emit_and_wait("customer-profile", vehicle, "v1")
    at = harness.clock.now()
    envelopes = [
        harness.envelope(
            "reminder",
            ReminderDue(
                reminder_id=reminder_id,
                kind=kind,
                vehicle_id="v1",
                customer_id="c1",
                due_on=date(2026, 12, 15),
            ),
            reminder_id,
        )
        for reminder_id, kind in (
            ("r-service", ReminderKind.SERVICE_DUE_BY_DATE),
            ("r-insurance", ReminderKind.INSURANCE_RENEWAL),
        )
    ]
    assert {envelope.occurred_at for envelope in envelopes} == {at}  # one transaction of reminder's
    await harness.consumed("reminder", await harness.publish(envelopes[0]))
    await harness.consumed("reminder", await harness.publish(envelopes[1]))  # in separate transactions
    harness.advance(minutes=1)

    async def both_sent() -> bool:
        return len(await harness.messages(trigger="reminder_due", status="sent")) == 2

    await wait_until(both_sent)
    [recorded] = await harness.recorded()
    assert (
        "2条新消息" in recorded["body"] and "即将到期" in recorded["body"] and "保养时间" in recorded["body"]
    )


async def test_messages_due_to_one_customer_at_once_go_as_one(harness: Harness) -> None:
    harness.clock.set(shanghai(1, 22))
    await harness.customer("c1")
    await harness.progress("wo-1", "c1", "已更换机油", "已更换机滤")
    harness.clock.set(shanghai(2, 8))

    async def both_sent() -> bool:
        return len(await harness.messages(trigger="work_order_progress", status="sent")) == 2

    await wait_until(both_sent)
    [recorded] = await harness.recorded()  # one SMS for both
    assert (
        "2条新消息" in recorded["body"]
        and "已更换机油" in recorded["body"]
        and "已更换机滤" in recorded["body"]
    )
    sent = await harness.messages(trigger="work_order_progress")
    assert len({m["provider_message_id"] for m in sent}) == 1
    assert len(await harness.published("notification.NotificationSent")) == 2  # each message is accounted for


async def test_a_number_at_its_daily_cap_gets_the_next_channel(database_url: str, nats_url: str) -> None:
    async with running(
        database_url, nats_url, sms_daily_cap_per_number=1, channels=(Channel.SMS, Channel.EMAIL)
    ) as harness:
        await harness.open_branch()
        await harness.customer("c1", email="zhang.wei@example.cn")
        await harness.visit("wo-1", "c1")
        first = await harness.until_message(trigger="work_order_completed", status="sent")
        assert first["channel"] == "sms"
        harness.advance(minutes=5)
        await harness.visit("wo-2", "c1")
        second = await harness.until_message(
            trigger="work_order_completed", work_order_id="wo-2", status="sent"
        )
        assert second["channel"] == "email"
        [capped] = await harness.messages(work_order_id="wo-2", channel="sms")
        assert (capped["status"], capped["status_reason"]) == ("failed", "daily_cap")


async def test_a_delivery_receipt_marks_the_message_and_the_survey_delivered(harness: Harness) -> None:
    await harness.customer("c1")
    await harness.visit("wo-1", "c1")
    harness.advance(hours=2)
    survey_message = await harness.until_message(trigger="nps_survey", status="sent")
    receipt = [
        {
            "phone_number": "13812345678",
            "success": True,
            "biz_id": survey_message["provider_message_id"],
            "out_id": survey_message["message_id"],
            "err_code": "DELIVERED",
            "err_msg": "用户接收成功",
            "send_time": "2026-12-01 11:00:00",
            "report_time": "2026-12-01 11:00:05",
            "sms_size": "1",
        }
    ]
    # The recording provider stands for Alibaba Cloud here: the receipt names its id.
    await harness.rows(
        "UPDATE messages SET provider = 'aliyun' WHERE message_id = %(m)s RETURNING 1",
        m=survey_message["message_id"],
    )
    key = harness.settings.callback_key.get_secret_value()
    for _ in range(2):  # pushed twice: applied once
        pushed = await harness.client.post("/v1/providers/aliyun/receipts", params={"key": key}, json=receipt)
        assert pushed.status_code == 200 and pushed.json()["code"] == 0
    [delivered] = await harness.messages(message_id=survey_message["message_id"])
    assert delivered["status"] == "delivered" and delivered["delivered_at"] == harness.clock.now()
    [survey] = await harness.rows("SELECT delivered_at FROM surveys")
    assert survey["delivered_at"] == harness.clock.now()
    [event] = await harness.published("notification.NotificationDelivered")
    assert event.data.survey_id == survey_message["survey_id"]
    malformed = await harness.client.post(
        "/v1/providers/aliyun/receipts", params={"key": key}, json=[{"success": "maybe"}]
    )
    assert malformed.status_code == 422


async def test_the_unsubscribe_link_works_without_logging_in_on_every_channel(harness: Harness) -> None:
    await harness.customer("c1", email="zhang.wei@example.cn", marketing=[Channel.SMS, Channel.EMAIL])
    await harness.emit_and_wait("customer-profile", CustomerTagged(customer_id="c1", tag="vip"), "c1")
    created = await harness.post(
        "/v1/campaigns",
        {
            "name": "冬季检测",
            "channel": "email",
            "audience_tags": ["vip"],
            "cost_fen": 1000,
            "control_share_pct": 0,
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-31",
        },
    )
    await harness.post(f"/v1/campaigns/{created.json()['campaign_id']}/launch")
    message = await harness.until_message(trigger="campaign", status="sent")
    unsubscribe = urlsplit(message["context"]["unsubscribe_url"]).path
    assert unsubscribe in message["body"]  # e-mail marketing carries its unsubscribe link
    page = await harness.client.get(unsubscribe)
    assert page.status_code == 200 and "确认退订" in page.text
    done = await harness.client.post(unsubscribe)
    assert done.status_code == 200 and "您已退订" in done.text
    consents = await harness.rows(
        "SELECT channel, granted, source FROM consents WHERE purpose = 'marketing' ORDER BY channel"
    )
    assert consents == [
        {"channel": channel, "granted": False, "source": "unsubscribe_link"}
        for channel in ("email", "sms", "wechat")
    ]
    forged = await harness.client.get(unsubscribe[:-3] + "abc")
    assert forged.status_code == 403


async def test_a_campaign_holds_out_its_control_group_and_gives_everyone_else_a_coupon_of_their_own(
    harness: Harness,
) -> None:
    customers = [f"c{n:02d}" for n in range(40)]
    for n, customer_id in enumerate(customers):
        await harness.customer(customer_id, phone=f"+86138000000{n:02d}", marketing=[Channel.SMS])
        await harness.emit_and_wait(
            "customer-profile", CustomerTagged(customer_id=customer_id, tag="lapsed"), customer_id
        )
    created = await harness.post(
        "/v1/campaigns",
        {
            "name": "老客召回",
            "channel": "sms",
            "audience_tags": ["lapsed"],
            "cost_fen": 200000,
            "control_share_pct": 25,
            "coupon_prefix": "BACK",
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-31",
        },
    )
    campaign_id = created.json()["campaign_id"]
    launched = (await harness.post(f"/v1/campaigns/{campaign_id}/launch")).json()
    control = {c for c in customers if in_control_group(campaign_id, c, 25)}
    assert 0 < len(control) < len(customers)
    assert (launched["control_group"], launched["recipients"]) == (
        len(control),
        len(customers) - len(control),
    )
    recipients = (await harness.get(f"/v1/campaigns/{campaign_id}/recipients")).json()["recipients"]
    assert {r["customer_id"] for r in recipients if r["outcome"] == "control"} == control
    coupons = [r["coupon_code"] for r in recipients if r["outcome"] == "sent"]
    assert len(set(coupons)) == len(customers) - len(control) and all(c.startswith("BACK-") for c in coupons)

    async def all_sent() -> bool:
        return len(await harness.messages(trigger="campaign", status="sent")) == len(customers) - len(control)

    await wait_until(all_sent)
    messaged = {m["customer_id"] for m in await harness.messages(trigger="campaign")}
    assert messaged.isdisjoint(control)  # the control group gets nothing at all
    [launch_event] = await harness.published("notification.CampaignLaunched")
    assert sorted(launch_event.data.coupon_codes) == sorted(coupons) and launch_event.data.cost_fen == 200000
    again = await harness.post(f"/v1/campaigns/{campaign_id}/launch")
    assert again.status_code == 409


async def test_a_merged_customer_is_messaged_as_the_survivor(harness: Harness) -> None:
    await harness.customer("c-old", phone="+8613812340001")
    await harness.customer("c-new", phone="+8613812340002")
    merged = CustomersMerged(surviving_customer_id="c-new", merged_customer_ids=("c-old",))
    await harness.emit_and_wait("customer-profile", merged, "c-new")
    await harness.visit("wo-1", "c-old")  # workorder still knew the old id
    message = await harness.until_message(trigger="work_order_completed", status="sent")
    assert message["customer_id"] == "c-new" and message["address"] == "+8613812340002"


async def test_erasure_removes_everything_personal_and_scrubs_the_published_answers(harness: Harness) -> None:
    await harness.customer("c1")
    await harness.visit("wo-1", "c1")
    harness.advance(hours=2)
    survey = await harness.until_message(trigger="nps_survey", status="sent")
    path = urlsplit(survey["link"]).path
    await harness.client.post(path, data={"score": "3", "comment": "张伟：师傅态度差，电话13812345678"})
    [answered] = await harness.published("notification.NpsAnswered")
    await harness.visit("wo-2", "c1")  # a second visit whose survey is still to come
    await harness.emit_and_wait(
        "customer-profile", CustomerErased(customer_id="c1", erasure_request_id="er-1"), "c1"
    )

    [contact] = await harness.rows(
        "SELECT full_name, phone, erased_at FROM contacts WHERE customer_id = 'c1'"
    )
    assert contact["full_name"] is None and contact["phone"] is None and contact["erased_at"] is not None
    messages = await harness.rows("SELECT address, body, link FROM messages WHERE customer_id = 'c1'")
    assert messages and all(m == {"address": None, "body": None, "link": None} for m in messages)
    assert await harness.recorded() == []
    [answer] = await harness.rows("SELECT score, comment FROM survey_answers")
    assert answer == {"score": 3, "comment": None}  # the score stays for the NPS figure; the words go
    harness.advance(hours=3)
    await harness.timers_caught_up()
    assert [m["work_order_id"] for m in await harness.messages(trigger="nps_survey")] == ["wo-1"]
    connection = await nats.connect(harness.settings.nats_url)
    try:
        stored = await stream_messages(connection.jetstream(), stream_name("notification"))
    finally:
        await connection.close()
    assert all(
        b"13812345678" not in message.data and "态度差".encode() not in message.data for message in stored
    )
    assert str(answered.event_id).encode() not in b"".join(m.data for m in stored)


async def test_surveys_and_marketing_share_one_contact_frequency_limit(harness: Harness) -> None:
    await harness.customer("c1", marketing=[Channel.SMS])
    await harness.emit_and_wait("customer-profile", CustomerTagged(customer_id="c1", tag="vip"), "c1")
    await harness.visit("wo-1", "c1")
    harness.advance(hours=2)
    await harness.until_message(trigger="nps_survey", status="sent")
    harness.advance(days=29)
    created = await harness.post(
        "/v1/campaigns",
        {
            "name": "会员日",
            "channel": "sms",
            "audience_tags": ["vip"],
            "cost_fen": 100,
            "control_share_pct": 0,
            "starts_on": "2026-12-30",
            "ends_on": "2026-12-31",
        },
    )
    launched = (await harness.post(f"/v1/campaigns/{created.json()['campaign_id']}/launch")).json()
    assert launched["recipients"] == 0
    [limited] = await harness.messages(trigger="campaign")
    assert (limited["status"], limited["status_reason"]) == ("suppressed", "frequency_limit")
    # A visit's thanks is a service message: never held back by the limit.
    await harness.visit("wo-2", "c1")
    await harness.until_message(trigger="work_order_completed", work_order_id="wo-2", status="sent")
    harness.advance(
        hours=2
    )  # wo-2's survey: the campaign was not sent, so the survey 29 days ago is the one contact
    await harness.timers_caught_up()
    [survey_two] = await harness.rows(
        "SELECT status, status_reason FROM surveys WHERE work_order_id = 'wo-2'"
    )
    assert survey_two == {"status": "cancelled", "status_reason": "frequency_limit"}
    harness.advance(days=2)  # past 30 days since the first survey
    again = await harness.post(
        "/v1/campaigns",
        {
            "name": "会员日2",
            "channel": "sms",
            "audience_tags": ["vip"],
            "cost_fen": 100,
            "control_share_pct": 0,
            "starts_on": "2027-01-01",
            "ends_on": "2027-01-31",
        },
    )
    assert (await harness.post(f"/v1/campaigns/{again.json()['campaign_id']}/launch")).json()[
        "recipients"
    ] == 1


async def test_a_message_joining_a_batch_that_already_went_out_still_goes(harness: Harness) -> None:
    await harness.customer("c1")
    await harness.progress("wo-1", "c1", "已更换机油")
    first = await harness.until_message(trigger="work_order_progress", status="sent")
    # The same customer, channel and instant (the clock stands still): the same batch, whose timer fired.
    posted = ProgressRecorded(work_order_id="wo-1", recorded_by="tom", text="已更换机滤")
    await harness.emit_and_wait("workorder", posted, "wo-1", branch_id=BRANCH)

    async def both_sent() -> bool:
        return len(await harness.messages(trigger="work_order_progress", status="sent")) == 2

    await wait_until(both_sent)
    second = [
        m
        for m in await harness.messages(trigger="work_order_progress")
        if m["message_id"] != first["message_id"]
    ]
    assert second[0]["batch_key"] == first["batch_key"] and "已更换机滤" in second[0]["body"]


async def test_a_reminder_goes_first_on_the_channel_its_rule_names(harness: Harness) -> None:
    await harness.customer("c1", email="zhang.wei@example.cn")
    vehicle = VehicleRegistered(
        vehicle_id="v1", owner_customer_id="c1", plate="沪B67890", brand="丰田", model="卡罗拉"
    )
    await harness.emit_and_wait("customer-profile", vehicle, "v1")
    due = ReminderDue(
        reminder_id="r-1",
        kind=ReminderKind.ANNUAL_INSPECTION,
        vehicle_id="v1",
        customer_id="c1",
        due_on=date(2026, 12, 31),
        channel=Channel.EMAIL,
    )
    await harness.emit_and_wait("reminder", due, "r-1")
    harness.advance(minutes=1)
    message = await harness.until_message(trigger="reminder_due", status="sent")
    assert message["channel"] == "email" and "年检" in message["body"]


async def test_a_booking_moved_after_its_reminder_went_is_reminded_again_for_the_new_slot(
    harness: Harness,
) -> None:
    await harness.customer("c1")
    booked = AppointmentBooked(
        appointment_id="ap-1",
        channel=BookingChannel.ONLINE,
        customer_id="c1",
        plate="沪A12345",
        slot=slot(5, 10),
        service_requested="小保养",
    )
    await harness.emit_and_wait("workorder", booked, "ap-1", branch_id=BRANCH)
    harness.clock.set(shanghai(4, 10))
    await harness.until_message(trigger="appointment_reminder", status="sent")
    harness.clock.set(shanghai(4, 15))
    moved = AppointmentRescheduled(
        appointment_id="ap-1", customer_id="c1", previous_slot=slot(5, 10), slot=slot(8, 11)
    )
    await harness.emit_and_wait("workorder", moved, "ap-1", branch_id=BRANCH)
    harness.clock.set(shanghai(7, 11))

    async def reminded_twice() -> bool:
        return len(await harness.messages(trigger="appointment_reminder", status="sent")) == 2

    await wait_until(reminded_twice)
    latest = (await harness.messages(trigger="appointment_reminder"))[-1]
    assert "2026-12-08 11:00" in latest["body"]


async def test_a_trigger_handled_in_the_night_waits_for_the_morning(harness: Harness) -> None:
    await harness.customer("c1")
    vehicle = VehicleRegistered(
        vehicle_id="v1", owner_customer_id="c1", plate="沪B67890", brand="丰田", model="卡罗拉"
    )
    await harness.emit_and_wait("customer-profile", vehicle, "v1")
    due = ReminderDue(
        reminder_id="r-1",
        kind=ReminderKind.SERVICE_DUE_BY_DATE,
        vehicle_id="v1",
        customer_id="c1",
        due_on=date(2026, 12, 2),
    )
    envelope = harness.envelope("reminder", due, "r-1")  # reminder's moment: 09:00
    harness.clock.set(shanghai(1, 22, 30))  # handled late: a backlog after an outage
    await harness.consumed("reminder", await harness.publish(envelope))
    queued = await harness.until_message(trigger="reminder_due")
    assert queued["status"] == "queued" and queued["due_at"] == shanghai(2, 8)
