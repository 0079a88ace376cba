"""workorder's booking calendar through notification's pipeline (workorder ADR 25): a booking's confirmation
and its day-before and two-hours-before reminders carry the link to workorder's appointment page (confirm or
move it), and a place offered from a waitlist goes out with the offer's link and how long it is held."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from notification_harness import BRANCH, Harness, shanghai

from pitlane_events.types import TimeSlot
from pitlane_events.workorder import (
    AppointmentBooked,
    AppointmentCancelled,
    BookingChannel,
    WaitlistSlotOffered,
)
from pitlane_platform.security.links import BookingLinkKind, verify_booking_link


def booked(appointment_id: str, day: int, hour: int) -> AppointmentBooked:
    return AppointmentBooked(
        appointment_id=appointment_id,
        channel=BookingChannel.ONLINE,
        customer_id="c1",
        plate="沪A12345",
        slot=TimeSlot(start=shanghai(day, hour), end=shanghai(day, hour + 1)),
        service_requested="小保养",
    )


def linked(harness: Harness, message: dict[str, object], kind: BookingLinkKind, prefix: str) -> str:
    """The record the message's link opens, checked as workorder checks it."""
    link = str(message["link"])
    assert link in str(message["body"])
    path = urlsplit(link).path
    assert link.startswith("https://shop.example.cn/") and path.startswith(prefix)
    opened = verify_booking_link(
        harness.settings.link_secret.get_secret_value(), path.removeprefix(prefix), kind, harness.clock.now()
    )
    assert opened.branch_id == BRANCH
    return opened.record_id


async def test_a_booking_is_reminded_the_day_before_and_two_hours_before_with_its_appointment_page(
    harness: Harness,
) -> None:
    await harness.open_branch()
    await harness.customer("c1")
    await harness.emit_and_wait("workorder", booked("ap-1", 5, 10), "ap-1", branch_id=BRANCH)
    await harness.emit_and_wait("workorder", booked("ap-2", 5, 15), "ap-2", branch_id=BRANCH)
    confirmation = await harness.until_message(trigger="appointment_booked", appointment_id="ap-1")
    assert linked(harness, confirmation, BookingLinkKind.APPOINTMENT, "/c/appointments/") == "ap-1"
    cancelled = AppointmentCancelled(
        appointment_id="ap-2", customer_id="c1", cancelled_by="customer", reason="有事"
    )
    await harness.emit_and_wait("workorder", cancelled, "ap-2", branch_id=BRANCH)

    harness.clock.set(shanghai(4, 10))
    day_before = await harness.until_message(trigger="appointment_reminder", status="sent")
    assert "明天2026-12-05 10:00" in day_before["body"]
    assert linked(harness, day_before, BookingLinkKind.APPOINTMENT, "/c/appointments/") == "ap-1"
    harness.clock.set(shanghai(5, 7, 59))
    await harness.timers_caught_up()
    assert await harness.messages(trigger="appointment_soon") == []
    harness.clock.set(shanghai(5, 8))
    soon = await harness.until_message(trigger="appointment_soon", status="sent")
    assert "两小时后开始" in soon["body"] and soon["appointment_id"] == "ap-1"
    assert linked(harness, soon, BookingLinkKind.APPOINTMENT, "/c/appointments/") == "ap-1"
    harness.clock.set(shanghai(5, 13))  # the cancelled 15:00 booking's reminders would be due by now
    await harness.timers_caught_up()
    assert [m["appointment_id"] for m in await harness.messages(trigger="appointment_soon")] == ["ap-1"]
    assert len(await harness.messages(trigger="appointment_reminder")) == 1


async def test_a_booking_made_on_the_day_gets_the_two_hours_reminder_only(harness: Harness) -> None:
    await harness.open_branch()
    await harness.customer("c1")
    await harness.emit_and_wait("workorder", booked("ap-1", 1, 15), "ap-1", branch_id=BRANCH)  # today, 15:00
    harness.clock.set(shanghai(1, 13))
    soon = await harness.until_message(trigger="appointment_soon", status="sent")
    assert "2026-12-01 15:00" in soon["body"]
    assert await harness.messages(trigger="appointment_reminder") == []


async def test_a_place_offered_from_a_waitlist_goes_out_with_its_link_and_how_long_it_is_held(
    harness: Harness,
) -> None:
    await harness.open_branch()
    await harness.customer("c1")
    offered = WaitlistSlotOffered(
        waitlist_entry_id="wl-1",
        customer_id="c1",
        slot=TimeSlot(start=shanghai(1, 14), end=shanghai(1, 15)),
        service_requested="小保养",
        offer_expires_at=harness.clock.now() + timedelta(minutes=30),
    )
    await harness.emit_and_wait("workorder", offered, "wl-1", branch_id=BRANCH)

    message = await harness.until_message(trigger="waitlist_offer", status="sent")
    assert "2026-12-01 14:00有空位" in message["body"] and "保留到09:30" in message["body"]
    assert linked(harness, message, BookingLinkKind.WAITLIST_OFFER, "/c/waitlist/") == "wl-1"
