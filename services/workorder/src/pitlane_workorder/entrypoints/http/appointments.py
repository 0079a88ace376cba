"""Appointments at the front desk: the day's free slots, booking by phone or walk-in, the day's list,
reschedule, confirmation, cancel, no-show and arrival (which opens the work order). A slot without room is a
409 problem naming the rule and suggesting the next free slots, a time that cannot be booked a 422 naming the
field and suggesting the nearest ones."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response

from pitlane_events.identifiers import mask_mobile
from pitlane_events.inputs import DateInput
from pitlane_events.workorder import BookingChannel, VisitType
from pitlane_platform.auth import Principal, Role, require_roles
from pitlane_platform.errors import NotFoundError
from pitlane_platform.problems import FieldProblem, problem_response, problem_type_of
from pitlane_platform.security.links import Attribution, AttributionKind, sign_attribution
from pitlane_workorder.adapters import queries
from pitlane_workorder.domain.capacity import BookingRequest, NoRoomError, UnbookableTimeError
from pitlane_workorder.entrypoints.http.common import (
    AnyStaff,
    FrontDesk,
    Service,
    WorkorderContext,
    actor_of,
    order_response,
    sees_personal_data,
)
from pitlane_workorder.entrypoints.http.responses import (
    AppointmentView,
    AttributionToken,
    Booked,
    DaySlots,
    SlotView,
    WorkOrderAnswer,
)
from pitlane_workorder.service_layer import commands

router = APIRouter(prefix="/v1", tags=["staff"])
# Campaigns and reminders are the chain's and the branch managers' to run.
CampaignOwner = Annotated[Principal, Depends(require_roles(Role.OWNER, Role.MANAGER))]


async def no_room_problem(request: Request, error: NoRoomError) -> Response:
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        detail=str(error),
        problem_type=problem_type_of(type(error)),
        rule=error.rule,
        next_free_slots=[slot.model_dump(mode="json") for slot in error.next_free],
    )


async def unbookable_problem(request: Request, error: UnbookableTimeError) -> Response:
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        detail=str(error),
        problem_type=problem_type_of(UnbookableTimeError),
        errors=[FieldProblem(field=error.field, message=error.message)],
        nearest_free_slots=[slot.model_dump(mode="json") for slot in error.nearest_free],
    )


LocalDay = Annotated[DateInput, Query(description="local date of the branch, YYYY-MM-DD")]
VisitTypeQuery = Annotated[
    Literal["waiting", "drop_off"] | None,
    Query(description="with `service`: whether the slots are bookable for this visit type and service"),
]
ServiceQuery = Annotated[
    str | None, Query(min_length=1, max_length=2000, description="the service the booking form asks about")
]


async def day_slots(
    service: WorkorderContext, branch_id: str, on: date, visit_type: str | None, service_requested: str | None
) -> DaySlots:
    """Every slot of the branch's local day with its places and what takes them: what the booking grid
    offers (for a visit type and service, under their caps too, when both are given)."""
    request = (
        BookingRequest(VisitType(visit_type), service_requested)
        if visit_type is not None and service_requested is not None
        else None
    )
    free, capacity = await service.handlers.capacity_on(branch_id, on, request)
    return DaySlots(
        branch_id=branch_id,
        on=on,
        timezone=free.grid.timezone.key,
        slot_minutes=free.grid.slot_minutes,
        bays=free.grid.bays,
        slots=[
            SlotView(
                start=entry.slot.start,
                end=entry.slot.end,
                places=entry.places,
                booked=entry.booked,
                held=entry.held,
                remaining=entry.remaining,
                bookable=entry.bookable,
            )
            for entry in capacity
        ],
    )


@router.get("/branches/{branch_id}/slots")
async def list_slots(
    branch_id: str,
    on: LocalDay,
    service: Service,
    principal: AnyStaff,
    visit_type: VisitTypeQuery = None,
    service_requested: ServiceQuery = None,
) -> DaySlots:
    return await day_slots(service, branch_id, on, visit_type, service_requested)


@router.post("/branches/{branch_id}/appointments", status_code=201)
async def book_by_staff(
    branch_id: str,
    body: commands.BookByStaff,
    service: Service,
    principal: FrontDesk,
) -> Booked:
    booked = await service.handlers.book(
        branch_id,
        body,
        BookingChannel(body.channel),
        actor_of(principal),
        customer_id=body.customer_id,
        vehicle_id=body.vehicle_id,
        campaign_id=body.campaign_id,
        reminder_id=body.reminder_id,
    )
    return Booked.model_validate(booked)


@router.get("/branches/{branch_id}/appointments")
async def list_appointments(
    branch_id: str,
    service: Service,
    on: LocalDay,
    principal: AnyStaff,
) -> list[AppointmentView]:
    async with service.handlers.driver.transaction() as unit:
        branch = await queries.branch(unit, branch_id)
        if branch is None:
            raise NotFoundError(f"branch {branch_id} does not exist")
        start = datetime.combine(on, datetime.min.time(), ZoneInfo(branch["timezone"]))
        listed = await queries.appointments_between(unit, branch_id, start, start + timedelta(days=1))
    for appointment in listed:
        if not sees_personal_data(principal):
            appointment["customer_name"] = appointment["phone"] = None
        elif appointment["phone"] is not None and not principal.sees_full_phone_numbers:
            appointment["phone"] = mask_mobile(appointment["phone"])
    return [AppointmentView.model_validate(appointment) for appointment in listed]


@router.post("/attribution-tokens", status_code=201)
async def mint_attribution(
    body: commands.MintAttribution, service: Service, principal: CampaignOwner
) -> AttributionToken:
    """The token a campaign's or reminder's booking link carries (`attribution`): online bookings made from
    the link count for it; a typed id counts for nothing (ADR 13)."""
    expires_at = service.handlers.clock.now() + timedelta(days=body.valid_days)
    attribution = Attribution(AttributionKind(body.kind), body.source_id, expires_at)
    return AttributionToken(
        attribution=sign_attribution(service.link_secret, attribution),
        kind=body.kind,
        source_id=body.source_id,
        expires_at=expires_at,
    )


@router.post("/branches/{branch_id}/appointments/{appointment_id}/reschedule", status_code=204)
async def reschedule(
    branch_id: str,
    appointment_id: str,
    body: commands.RescheduleAppointment,
    service: Service,
    principal: FrontDesk,
) -> None:
    await service.handlers.reschedule(branch_id, appointment_id, body, actor_of(principal))


@router.post("/branches/{branch_id}/appointments/{appointment_id}/confirmation", status_code=204)
async def confirm(branch_id: str, appointment_id: str, service: Service, principal: FrontDesk) -> None:
    """The customer told the branch they are coming (a booking that needs confirmation stands)."""
    await service.handlers.confirm(branch_id, appointment_id, actor_of(principal))


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
    response: Response,
    principal: FrontDesk,
) -> WorkOrderAnswer:
    order = await service.handlers.check_in(branch_id, body, actor_of(principal), appointment_id)
    return order_response(order, response)
