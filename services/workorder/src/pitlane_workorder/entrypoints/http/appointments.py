"""Appointments at the front desk: booking by phone or walk-in, the day's list, reschedule, cancel, no-show
and arrival (which opens the work order); a full slot is a 409 problem suggesting free ones."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response

from pitlane_events.identifiers import mask_mobile
from pitlane_events.workorder import BookingChannel
from pitlane_platform.errors import NotFoundError
from pitlane_platform.problems import problem_response
from pitlane_workorder.adapters import queries
from pitlane_workorder.domain.capacity import SlotFullError
from pitlane_workorder.entrypoints.http.common import AnyStaff, FrontDesk, Service, actor_of
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1", tags=["staff"])


async def slot_full_problem(request: Request, error: SlotFullError) -> Response:
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        detail=str(error),
        problem_type="urn:pitlane:problem:slot-fully-booked",
        next_free_slots=[slot.model_dump(mode="json") for slot in error.next_free],
    )


@router.post("/branches/{branch_id}/appointments", status_code=201)
async def book_by_staff(
    branch_id: str,
    body: commands.BookByStaff,
    service: Service,
    principal: FrontDesk,
) -> dict[str, Any]:
    return await service.handlers.book(branch_id, body, BookingChannel(body.channel), actor_of(principal))


@router.get("/branches/{branch_id}/appointments")
async def list_appointments(
    branch_id: str,
    service: Service,
    on: Annotated[date, Query(description="local date of the branch")],
    principal: AnyStaff,
) -> list[dict[str, Any]]:
    async with service.handlers.driver.transaction() as unit:
        branch = await queries.branch(unit, branch_id)
        if branch is None:
            raise NotFoundError(f"branch {branch_id} does not exist")
        start = datetime.combine(on, datetime.min.time(), ZoneInfo(branch["timezone"]))
        listed = await queries.appointments_between(unit, branch_id, start, start + timedelta(days=1))
    if not principal.sees_full_phone_numbers:
        for appointment in listed:
            appointment["phone"] = mask_mobile(appointment["phone"])
    return listed


@router.post("/branches/{branch_id}/appointments/{appointment_id}/reschedule", status_code=204)
async def reschedule(
    branch_id: str,
    appointment_id: str,
    body: commands.RescheduleAppointment,
    service: Service,
    principal: FrontDesk,
) -> None:
    await service.handlers.reschedule(branch_id, appointment_id, body, actor_of(principal))


@router.post("/branches/{branch_id}/appointments/{appointment_id}/cancel", status_code=204)
async def cancel(
    branch_id: str,
    appointment_id: str,
    body: commands.CancelAppointment,
    service: Service,
    principal: FrontDesk,
) -> None:
    await service.handlers.cancel(branch_id, appointment_id, body, actor_of(principal))


@router.post("/branches/{branch_id}/appointments/{appointment_id}/no-show", status_code=204)
async def mark_no_show(branch_id: str, appointment_id: str, service: Service, principal: FrontDesk) -> None:
    await service.handlers.mark_no_show(branch_id, appointment_id, actor_of(principal))


@router.post("/branches/{branch_id}/appointments/{appointment_id}/arrival", status_code=201)
async def arrive(
    branch_id: str,
    appointment_id: str,
    body: commands.CheckIn,
    service: Service,
    principal: FrontDesk,
) -> dict[str, str]:
    work_order_id = await service.handlers.check_in(branch_id, body, actor_of(principal), appointment_id)
    return {"work_order_id": work_order_id}
