"""Online booking by the customer, without a token: the day's free slots and the booking itself."""

from __future__ import annotations

from fastapi import APIRouter

from pitlane_events.workorder import BookingChannel
from pitlane_workorder.entrypoints.http.appointments import LocalDay, day_slots
from pitlane_workorder.entrypoints.http.common import Service
from pitlane_workorder.entrypoints.http.responses import Booked, DaySlots
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1/public", tags=["public"])


@router.post("/branches/{branch_id}/appointments", status_code=201)
async def book_online(branch_id: str, body: commands.BookAppointment, service: Service) -> Booked:
    """Online booking by the customer (no token): the channel is online; a campaign link passes its id."""
    return Booked.model_validate(
        await service.handlers.book(branch_id, body, BookingChannel.ONLINE, actor=None)
    )


@router.get("/branches/{branch_id}/slots")
async def list_free_slots(branch_id: str, on: LocalDay, service: Service) -> DaySlots:
    """The grid an online booking form offers: each slot of the day with the bays still free."""
    return await day_slots(service, branch_id, on)
