"""Waitlists (ADR 25): a place that frees in a slot with a waitlist — a cancellation, a booking moved away, a
hold or an offer that expired, a shift added, a rule relaxed — is offered to the first customer waiting for
that slot whose booking fits, and held for them (`waitlist_hold_minutes`) by a hold like the online form's.
The offer is published (WaitlistSlotOffered: notification sends its link); the hold's durable timer lapses
it, and the place goes to the next in line.

Every function here runs under the branch row lock (`availability.branch_grid(lock=True)`), taken first in
the transaction, like every decision that takes or frees places: offers never double-book a place and never
go out of order. A transaction holding that lock never updates a timer that exists (it only schedules new
ones, under keys no other timer has), so a timer firing (which takes its own row first, then the branch
lock) and a booking never wait for each other in a circle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pitlane_events import Actor
from pitlane_events.types import TimeSlot
from pitlane_events.workorder import VisitType, WaitlistSlotOffered
from pitlane_platform.db import Unit
from pitlane_platform.errors import InvalidInputError
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import schedule
from pitlane_workorder.adapters import calendar
from pitlane_workorder.domain.capacity import Availability, BookingRequest
from pitlane_workorder.service_layer.availability import availability, branch_grid
from pitlane_workorder.service_layer.identities import new_id

HOLD_EXPIRY = "workorder.hold-expiry"
"""A hold's timer (key: the hold's id): at `expires_at`, a hold still held expires and its place is offered."""
WAITLIST = Actor(kind="system", id="workorder.waitlist")


async def take_hold(
    unit: Unit,
    branch_id: str,
    slot: TimeSlot,
    request: BookingRequest,
    expires_at: datetime,
    *,
    waitlist_entry_id: str | None = None,
) -> str:
    """Hold a place in the slot until `expires_at` (the caller checked there is room); its id."""
    hold_id = new_id()
    await calendar.add_hold(
        unit,
        {
            "hold_id": hold_id,
            "branch_id": branch_id,
            "slot_start": slot.start,
            "slot_end": slot.end,
            "visit_type": request.visit_type.value,
            "service_requested": request.service,
            "expires_at": expires_at,
            "waitlist_entry_id": waitlist_entry_id,
        },
    )
    await schedule(unit, HOLD_EXPIRY, hold_id, expires_at, {"branch_id": branch_id})
    return hold_id


def held_until(entry: dict[str, Any], hold: dict[str, Any] | None, now: datetime) -> datetime | None:
    """Until when the place offered to the waitlist entry is held for it (`hold`: the offer's); None once
    the offer is over (taken, lapsed) or before there is one."""
    if entry["status"] != "offered" or hold is None or hold["status"] != "held" or hold["expires_at"] <= now:
        return None
    return hold["expires_at"]  # type: ignore[no-any-return]


async def offer_freed_places(unit: Unit, branch_id: str, chain_id: str, now: datetime) -> int:
    """Offer every place free in a slot with customers waiting to the first of them it fits; how many were
    offered. Takes the branch row lock (a no-op when the transaction holds it)."""
    await branch_grid(unit, branch_id, lock=True)
    offered = 0
    # Waiting entries are few (a slot's, a day's): each is decided on the places as they are after the
    # offers before it, read again in this transaction.
    for entry in await calendar.waiting(unit, branch_id, now):
        slot = TimeSlot(start=entry["slot_start"], end=entry["slot_end"])
        request = BookingRequest(VisitType(entry["visit_type"]), entry["service_requested"])
        free = await availability(unit, branch_id, slot.start, now, lock=False)
        if not free.fits(slot, request):
            continue
        expires_at = min(now + free.rules.waitlist_hold, slot.start)
        hold_id = await take_hold(
            unit, branch_id, slot, request, expires_at, waitlist_entry_id=entry["entry_id"]
        )
        await calendar.offer(unit, entry["entry_id"], hold_id)
        await _publish_offer(unit, entry, slot, expires_at, chain_id, branch_id, now)
        offered += 1
    return offered


async def _publish_offer(
    unit: Unit,
    entry: dict[str, Any],
    slot: TimeSlot,
    expires_at: datetime,
    chain_id: str,
    branch_id: str,
    now: datetime,
) -> None:
    # An entry is offered a place once: its stream holds the one offer (a lapsed or taken offer ends it).
    await eventstore.append(
        unit,
        entry["entry_id"],
        0,
        [
            WaitlistSlotOffered(
                waitlist_entry_id=entry["entry_id"],
                customer_id=entry["customer_id"],
                slot=slot,
                service_requested=entry["service_requested"],
                offer_expires_at=expires_at,
            )
        ],
        CommandContext(actor=WAITLIST, chain_id=chain_id, occurred_at=now, branch_id=branch_id),
    )


async def expire_hold(unit: Unit, branch_id: str, hold_id: str, chain_id: str, now: datetime) -> bool:
    """The hold's time is up: a hold still held expires (a waitlist offer lapses) and its place is offered
    to whoever waits. False if it had become a booking or expired already."""
    await branch_grid(unit, branch_id, lock=True)
    expired = await calendar.expire_hold(unit, hold_id)
    if expired is None:
        return False
    _, entry_id = expired
    if entry_id is not None:
        await calendar.lapse(unit, entry_id, hold_id)
    await offer_freed_places(unit, branch_id, chain_id, now)
    return True


async def without_own_hold(
    unit: Unit, free: Availability, branch_id: str, hold_id: str, slot_start: datetime
) -> Availability:
    """The availability with the booking's own hold not counted against it: a hold of the branch for the slot
    asked for (else a 422 naming `body.hold_id`). A hold that expired or was used meanwhile counts for
    nothing either way: the booking goes on against the slot as it is."""
    hold = await calendar.hold(unit, branch_id, hold_id)
    if hold is None:
        raise InvalidInputError("body.hold_id", f"branch {branch_id} holds nothing under {hold_id}")
    if hold["slot_start"] != slot_start:
        raise InvalidInputError(
            "body.hold_id", f"the hold is for the slot at {hold['slot_start'].isoformat()}"
        )
    return free.without(hold_id)
