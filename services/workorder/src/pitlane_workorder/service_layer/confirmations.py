"""Bookings that need the customer's confirmation (ADR 25): a customer booking online with more no-shows than
the chain allows (`no_show_threshold`) must confirm — through the appointment's link, sent with the booking
confirmation and the reminders, or on the phone to the branch. One still unconfirmed at its deadline
(`confirmation_deadline_minutes` before the slot) is released: cancelled by the branch, its place offered
to whoever waits. A booking made after its deadline has passed is not released (there was no time to
confirm): the front desk sees it unconfirmed on the day's list."""

from __future__ import annotations

from datetime import datetime

from pitlane_events import Actor
from pitlane_platform.db import Unit
from pitlane_platform.scheduling.timers import schedule
from pitlane_workorder.domain.appointment import Appointment
from pitlane_workorder.domain.booking_rules import BookingRules

CONFIRMATION_DEADLINE = "workorder.confirmation-deadline"
"""A booking's release timer (key: the appointment and its version, so a moved booking gets a new one and the
old one finds the slot changed)."""
CONFIRMATIONS = Actor(kind="system", id="workorder.confirmations")
UNCONFIRMED = "未按时确认预约 / not confirmed in time"


async def confirmation_deadline(
    unit: Unit, branch_id: str, appointment: Appointment, rules: BookingRules, now: datetime
) -> None:
    """Set the release timer of an appointment waiting for its confirmation (saved: its version is final)."""
    if not appointment.awaits_confirmation():
        return
    deadline = appointment.slot.start - rules.confirmation_deadline
    if deadline <= now:
        return
    await schedule(
        unit,
        CONFIRMATION_DEADLINE,
        f"{appointment.id}:{appointment.version}",
        deadline,
        {
            "branch_id": branch_id,
            "appointment_id": appointment.id,
            "slot_start": appointment.slot.start.isoformat(),
        },
    )
