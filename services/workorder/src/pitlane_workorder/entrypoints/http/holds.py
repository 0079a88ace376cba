"""Holds (ADR 25): the online booking form holds the slot the customer picked for `hold_minutes` while they
fill in the rest; the booking sends the hold's id and is not counted against its own hold. A hold counts
against the slot like a booking until it expires (a durable timer then offers its place to the waitlist)."""

from __future__ import annotations

from fastapi import APIRouter

from pitlane_workorder.entrypoints.http.calendar_views import HoldAnswer
from pitlane_workorder.entrypoints.http.common import Service
from pitlane_workorder.service_layer.calendar_commands import HoldSlot

router = APIRouter(prefix="/v1/public", tags=["public"])


@router.post("/branches/{branch_id}/holds", status_code=201)
async def hold_slot(branch_id: str, body: HoldSlot, service: Service) -> HoldAnswer:
    """Hold a place in the slot (409 naming the rule, with the next free slots, when it has none)."""
    held = await service.calendar.hold(branch_id, body)
    return HoldAnswer(hold_id=held.hold_id, slot=held.slot, expires_at=held.expires_at)
