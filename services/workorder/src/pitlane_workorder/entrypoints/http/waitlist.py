"""Waitlists (ADR 25): a customer joins the waitlist of a slot that has no room for them (online, without a
token); the front desk reads a day's waitlists. A place that frees is offered to the first in line whose
booking fits, held for `waitlist_hold_minutes`, through the link notification sends (booking_links.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_events.identifiers import mask_mobile
from pitlane_platform.auth import Principal
from pitlane_workorder.entrypoints.http.appointments import LocalDay
from pitlane_workorder.entrypoints.http.calendar_views import WaitlistEntryView, WaitlistJoined
from pitlane_workorder.entrypoints.http.common import AnyStaff, Service, sees_personal_data
from pitlane_workorder.service_layer.calendar_commands import JoinWaitlist

router = APIRouter(prefix="/v1", tags=["staff"])
public = APIRouter(prefix="/v1/public", tags=["public"])


@public.post("/branches/{branch_id}/waitlist", status_code=201)
async def join_waitlist(branch_id: str, body: JoinWaitlist, service: Service) -> WaitlistJoined:
    """Wait for a place in a full slot (a slot with room is a 409: book it instead)."""
    waiting = await service.calendar.join_waitlist(branch_id, body)
    return WaitlistJoined(waitlist_entry_id=waiting.waitlist_entry_id, ahead=waiting.ahead)


@router.get("/branches/{branch_id}/waitlist")
async def read_waitlist(
    branch_id: str, on: LocalDay, service: Service, principal: AnyStaff
) -> list[WaitlistEntryView]:
    """The waitlists of the day's slots, first in line first."""
    entries = await service.calendar.waitlist(branch_id, on)
    return [WaitlistEntryView.model_validate(_shown(entry, principal)) for entry in entries]


def _shown(entry: dict[str, Any], principal: Principal) -> dict[str, Any]:
    shown = {**entry, "waitlist_entry_id": entry["entry_id"]}
    if not sees_personal_data(principal):
        shown["customer_name"] = shown["phone"] = None
    elif shown["phone"] is not None and not principal.sees_full_phone_numbers:
        shown["phone"] = mask_mobile(shown["phone"])
    return shown
