"""Reminders against real PostgreSQL and NATS on an injected clock: predicted from the mileage history, fired
when due and not before, moved by a completion and never duplicated, deaf to a reading 10× too high, silent
while the car is booked, closed by "done elsewhere", and no rung sent twice across a restart."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from reminder_harness import BRANCH, Harness, running, shanghai

from pitlane_events.types import TimeSlot
from pitlane_events.workorder import AppointmentBooked, AppointmentCancelled, BookingChannel
from pitlane_platform.clock import FixedClock
from pitlane_platform.security.links import REMINDER_ANSWER, sign_claims
from platform_flow import wait_until


async def serviced_car(harness: Harness, *, ladder: list[int] | None = None) -> dict:
    """A car that did 34,000 km by 3 September 2025 and was serviced at 40,000 km on 1 January 2026: about
    50 km a day. Its maintenance reminder."""
    if ladder is not None:
        changed = await harness.put("/v1/rules/maintenance", {"ladder": ladder})
        assert changed.status_code == 200, changed.text
    await harness.vehicle("v1", "c1")
    await harness.reading("v1", 34_000, shanghai(2025, 9, 3, 16))
    await harness.visit("wo-1", "v1", "c1", km=40_000, completed_at=shanghai(2026, 1, 1, 16))
    return await harness.maintenance("v1")


async def test_a_car_doing_50_km_a_day_serviced_at_40000_km_on_1_january_is_reminded_100_days_later_not_before(
    harness: Harness,
) -> None:
    reminder = await serviced_car(harness, ladder=[0])
    assert (reminder["due_on"], reminder["due_mileage_km"], reminder["due_by"]) == (
        date(2026, 4, 11),
        45_000,
        "mileage",
    )
    assert "about 50 km a day" in reminder["basis"]
    view = (await harness.get("/v1/vehicles/v1/reminders")).json()
    assert "about 50 km a day" in view["estimate"] and view["km_per_day"] == 50.0

    await harness.at(shanghai(2026, 4, 11, 9, 59))
    assert await harness.due() == []
    await harness.at(shanghai(2026, 4, 11, 10, 0))
    [due] = await harness.due()
    assert (due.data.reminder_id, due.data.kind, due.data.due_on) == (
        reminder["reminder_id"],
        "service_due_by_mileage",
        date(2026, 4, 11),
    )
    assert (due.data.due_mileage_km, due.data.customer_id, due.data.preferred_branch_id) == (
        45_000,
        "c1",
        BRANCH,
    )
    [scheduled] = await harness.published("reminder.ReminderScheduled")
    assert scheduled.data.due_on == date(2026, 4, 11)


async def test_a_completion_before_the_due_date_reschedules_the_reminder_and_never_duplicates_it(
    harness: Harness,
) -> None:
    first = await serviced_car(harness, ladder=[0])
    harness.clock.set(shanghai(2026, 3, 1, 17))
    await harness.visit("wo-2", "v1", "c1", km=43_000, completed_at=shanghai(2026, 3, 1, 16))
    moved = await harness.maintenance("v1")
    assert moved["reminder_id"] == first["reminder_id"] and len(await harness.reminders("v1")) == 1
    # 3,000 km in 59 days since the last service, over the whole history: 9,000 km in 179 days ≈ 50.3 km a day.
    assert moved["cycle"] == "service:2026-03-01" and moved["due_mileage_km"] == 48_000
    assert moved["due_on"] > date(2026, 5, 1)
    await harness.at(shanghai(2026, 4, 11, 10))  # the old due date: nothing
    assert await harness.due() == []
    await harness.at(datetime_of(moved["due_on"]))
    [due] = await harness.due()
    assert due.data.reminder_id == first["reminder_id"] and due.data.due_on == moved["due_on"]
    assert len(await harness.published("reminder.ReminderScheduled")) == 1
    [rescheduled] = await harness.published("reminder.ReminderRescheduled")
    assert "serviced at 43,000 km" in rescheduled.data.reason


async def test_a_reading_ten_times_too_high_is_set_aside_and_turns_no_reminder_overdue(
    harness: Harness,
) -> None:
    before = await serviced_car(harness, ladder=[0])
    harness.clock.set(shanghai(2026, 1, 8, 12))
    await harness.reading("v1", 400_000, shanghai(2026, 1, 8, 11))  # a digit too many at the counter
    after = await harness.maintenance("v1")
    assert (after["due_on"], after["due_mileage_km"]) == (before["due_on"], before["due_mileage_km"])
    readings = (await harness.get("/v1/vehicles/v1/reminders")).json()["readings"]
    set_aside = [r for r in readings if r["set_aside_reason"]]
    assert [r["km"] for r in set_aside] == [400_000] and "km a day" in set_aside[0]["set_aside_reason"]
    await harness.at(shanghai(2026, 1, 9, 10))
    assert await harness.due() == []  # not overdue because of it


async def test_a_vehicle_with_an_open_booking_gets_no_reminder(harness: Harness) -> None:
    reminder = await serviced_car(harness, ladder=[0, 7])
    booked = AppointmentBooked(
        appointment_id="ap-1",
        channel=BookingChannel.ONLINE,
        customer_id="c1",
        vehicle_id="v1",
        plate="沪A12345",
        slot=TimeSlot(start=shanghai(2026, 4, 20, 10), end=shanghai(2026, 4, 20, 11)),
        service_requested="小保养",
    )
    await harness.emit_and_wait("workorder", booked, "ap-1", branch_id=BRANCH)
    await harness.at(shanghai(2026, 4, 11, 10))
    assert await harness.due() == []
    [step] = await harness.rows(
        "SELECT skip_reason FROM reminder_steps WHERE reminder_id = %(r)s AND offset_days = 0",
        r=reminder["reminder_id"],
    )
    assert step["skip_reason"] == "open_booking"
    cancelled = AppointmentCancelled(
        appointment_id="ap-1", customer_id="c1", cancelled_by="customer", reason="改期"
    )
    await harness.emit_and_wait("workorder", cancelled, "ap-1", branch_id=BRANCH)
    await harness.at(shanghai(2026, 4, 18, 10))  # the next rung, with the booking gone
    [due] = await harness.due()
    assert due.data.reminder_id == reminder["reminder_id"]


async def test_done_elsewhere_from_the_link_closes_the_cycle(harness: Harness) -> None:
    reminder = await serviced_car(harness, ladder=[0, 7, 30])
    await harness.at(shanghai(2026, 4, 11, 10))
    assert len(await harness.due()) == 1
    token = sign_claims(
        harness.settings.link_secret.get_secret_value(),
        REMINDER_ANSWER,
        {"r": reminder["reminder_id"], "exp": int((harness.clock.now() + timedelta(days=30)).timestamp())},
    )
    page = await harness.client.get(f"/r/{token}")
    assert page.status_code == 200 and "已在别处完成" in page.text and "mileage_km" in page.text
    done = await harness.client.post(f"/r/{token}/done", data={"mileage_km": "45200"})
    assert done.status_code == 200
    after = await harness.maintenance("v1")
    assert after["cycle"] == "service:2026-04-11" and after["due_mileage_km"] == 50_200
    await harness.at(shanghai(2026, 5, 11, 10))  # the old cycle's later rungs: none goes
    assert len(await harness.due()) == 1
    forged = await harness.client.get(f"/r/{token[:-2]}xx")
    assert forged.status_code == 403 and "链接无效" in forged.text


async def test_a_restart_in_the_middle_of_a_ladder_sends_no_rung_twice(
    database_url: str, nats_url: str
) -> None:
    clock = FixedClock(shanghai(2026, 1, 2, 9))
    async with running(database_url, nats_url, clock=clock) as harness:
        reminder = await serviced_car(
            harness
        )  # the default ladder: 30 and 7 days before, on the day, 7 and 30 after
        await harness.at(shanghai(2026, 3, 12, 10))
        await harness.at(shanghai(2026, 4, 4, 10))
        assert len(await harness.due()) == 2
    async with running(database_url, nats_url, clock=clock) as restarted:
        await restarted.at(shanghai(2026, 4, 4, 18))  # the same day again, after the restart
        await restarted.at(shanghai(2026, 4, 11, 10))
        sent = await restarted.due(reminder["reminder_id"])
        assert len(sent) == 3
        steps = await restarted.rows(
            "SELECT offset_days, sent_at IS NOT NULL AS sent FROM reminder_steps WHERE reminder_id = %(r)s ORDER BY offset_days",
            r=reminder["reminder_id"],
        )
        assert [(s["offset_days"], s["sent"]) for s in steps] == [
            (-30, True),
            (-7, True),
            (0, True),
            (7, False),
            (30, False),
        ]


def datetime_of(day: date) -> datetime:
    """10:00 in Shanghai on that day: when the day's reminders go out."""
    return shanghai(day.year, day.month, day.day, 10)


async def test_the_rules_channel_and_template_travel_with_the_reminder(harness: Harness) -> None:
    changed = await harness.put(
        "/v1/rules/maintenance", {"ladder": [0], "channel": "email", "template": "service_due_vip"}
    )
    assert changed.status_code == 200, changed.text
    await serviced_car(harness)
    await harness.at(shanghai(2026, 4, 11, 10))
    [due] = await harness.due()
    assert (due.data.channel, due.data.template) == ("email", "service_due_vip")


async def test_a_cycle_closed_as_done_elsewhere_is_not_reopened_by_a_new_fact(harness: Harness) -> None:
    await serviced_car(harness, ladder=[0])
    reminder = await harness.maintenance("v1")
    token = sign_claims(
        harness.settings.link_secret.get_secret_value(),
        REMINDER_ANSWER,
        {"r": reminder["reminder_id"], "exp": int((harness.clock.now() + timedelta(days=30)).timestamp())},
    )
    assert (await harness.client.post(f"/r/{token}/done")).status_code == 200  # no mileage given
    after = await harness.maintenance("v1")
    # The next cycle counts from today and the odometer as projected today: not due at once.
    assert after["cycle"] == "service:2026-01-02" and after["due_on"] > date(2026, 4, 1)
    await harness.at(shanghai(2026, 1, 3, 10))
    assert await harness.due() == []


async def test_a_rule_turned_off_withdraws_its_reminders_and_a_new_ladder_lays_the_rungs_again(
    harness: Harness,
) -> None:
    reminder = await serviced_car(harness, ladder=[0])
    relaid = await harness.put("/v1/rules/maintenance", {"ladder": [-7, 0]})
    assert relaid.status_code == 200

    async def relaid_rungs() -> bool:
        rows = await harness.rows(
            "SELECT offset_days FROM reminder_steps WHERE reminder_id = %(r)s ORDER BY offset_days",
            r=reminder["reminder_id"],
        )
        return [row["offset_days"] for row in rows] == [-7, 0]

    await wait_until(relaid_rungs)
    assert (await harness.put("/v1/rules/maintenance", {"enabled": False})).status_code == 200

    async def withdrawn() -> bool:
        return (await harness.maintenance("v1"))["status"] == "cancelled"

    await wait_until(withdrawn)
    await harness.at(shanghai(2026, 4, 11, 10))
    assert await harness.due() == []
    [cancelled] = await harness.published("reminder.ReminderCancelled")
    assert cancelled.data.reason == "superseded"
