"""Online booking by the customer, without a token: the day's free slots and the booking itself (with the
hold its form took, routes in holds.py). Anyone can call these, so a booking names no ids, answers none, and
is attributed to a campaign or reminder only through the signed token of its link (ADR 13)."""

from __future__ import annotations

from fastapi import APIRouter

from pitlane_events.workorder import BookingChannel
from pitlane_platform.security.links import AttributionKind, verify_attribution
from pitlane_workorder.entrypoints.http.appointments import LocalDay, ServiceQuery, VisitTypeQuery, day_slots
from pitlane_workorder.entrypoints.http.common import Service
from pitlane_workorder.entrypoints.http.responses import DaySlots, PublicBooking
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1/public", tags=["public"])


@router.post("/branches/{branch_id}/appointments", status_code=201)
async def book_online(branch_id: str, body: commands.BookOnline, service: Service) -> PublicBooking:
    """Online booking by the customer (no token): the channel is online; a campaign's or reminder's link
    passes its signed `attribution` token."""
    attribution = (
        verify_attribution(
            service.link_secret, body.attribution, service.handlers.clock.now(), field="body.attribution"
        )
        if body.attribution is not None
        else None
    )
    booked = await service.handlers.book(
        branch_id,
        body,
        BookingChannel.ONLINE,
        actor=None,
        campaign_id=attribution.source_id
        if attribution and attribution.kind is AttributionKind.CAMPAIGN
        else None,
        reminder_id=attribution.source_id
        if attribution and attribution.kind is AttributionKind.REMINDER
        else None,
        hold_id=body.hold_id,
    )
    return PublicBooking.model_validate(booked)


@router.get("/branches/{branch_id}/slots")
async def list_free_slots(
    branch_id: str,
    on: LocalDay,
    service: Service,
    visit_type: VisitTypeQuery = None,
    service_requested: ServiceQuery = None,
) -> DaySlots:
    """The grid an online booking form offers: each slot of the day with the places still free, and whether
    a booking fits it now under the booking rules."""
    return await day_slots(service, branch_id, on, visit_type, service_requested)
