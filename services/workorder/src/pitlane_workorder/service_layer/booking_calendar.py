"""The booking calendar's commands (ADR 25): a day's shifts and staff leave (branch managers), the booking
rules of the chain and its branches, holds taken by the online form, waitlists, offers taken through their
links, and what the customer's appointment and offer pages show (confirming and moving an appointment are
the appointment handlers'). Each command runs in one unit of work under the branch row lock, like the
bookings whose capacity it changes; whatever frees places offers them to the waitlists in the same
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_events import Actor
from pitlane_events.types import TimeSlot
from pitlane_events.workorder import BookingChannel, VisitType
from pitlane_platform.errors import ConflictError, InvalidInputError, NotFoundError
from pitlane_workorder.adapters import calendar, queries
from pitlane_workorder.domain.appointment import Appointment
from pitlane_workorder.domain.booking_rules import BookingRules, effective_rules
from pitlane_workorder.domain.capacity import BookingRequest, NoRoomError
from pitlane_workorder.service_layer import identities
from pitlane_workorder.service_layer.availability import availability, branch_grid
from pitlane_workorder.service_layer.calendar_commands import (
    BookingRulesInput,
    DayShifts,
    HoldSlot,
    JoinWaitlist,
    RecordLeave,
)
from pitlane_workorder.service_layer.commands import BookOnline
from pitlane_workorder.service_layer.handlers import Handlers
from pitlane_workorder.service_layer.identities import Visitor, new_id
from pitlane_workorder.service_layer.unit_of_work import unit_of_work
from pitlane_workorder.service_layer.waitlist import held_until, offer_freed_places, take_hold


@dataclass(frozen=True)
class Held:
    hold_id: str
    slot: TimeSlot
    expires_at: datetime


@dataclass(frozen=True)
class Waiting:
    waitlist_entry_id: str
    ahead: int


@dataclass(frozen=True)
class AppointmentPage:
    """What the customer's appointment page shows: the appointment, its branch, the confirmation deadline
    (while it waits for one) and the free slots of `day` it may move to."""

    appointment: Appointment
    branch_name: str
    timezone: ZoneInfo
    deadline: datetime | None
    day: date
    free_slots: list[TimeSlot]


@dataclass(frozen=True)
class OfferPage:
    entry: dict[str, Any]
    hold: dict[str, Any] | None
    branch_name: str
    timezone: ZoneInfo


@dataclass
class BookingCalendar:
    handlers: Handlers

    @property
    def now(self) -> datetime:
        return self.handlers.clock.now()

    # Shifts and leave ---------------------------------------------------------------------------------------

    async def set_shifts(self, branch_id: str, day: date, command: DayShifts) -> None:
        """The day's shifts become these; a place this frees goes to the waitlists."""
        now = self.now
        async with unit_of_work(self.handlers.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=True)
            staff = {row["staff_id"] for row in await queries.staff_of(uow.unit, branch_id)}
            seen: set[str] = set()
            for index, shift in enumerate(command.shifts):
                field = f"body.shifts.{index}.staff_id"
                if shift.staff_id not in staff:
                    raise InvalidInputError(
                        field, f"{shift.staff_id} is not on the staff of branch {branch_id}"
                    )
                if shift.staff_id in seen:
                    raise InvalidInputError(field, f"{shift.staff_id} has a shift on this day already")
                seen.add(shift.staff_id)
            await calendar.replace_day(
                uow.unit,
                branch_id,
                day,
                [
                    {
                        "staff_id": shift.staff_id,
                        "starts_at": shift.starts_at,
                        "ends_at": shift.ends_at,
                        "breaks": [pause.model_dump(mode="json") for pause in shift.breaks],
                    }
                    for shift in command.shifts
                ],
            )
            await offer_freed_places(uow.unit, branch_id, self.handlers.chain_id, now)

    async def roster(self, branch_id: str, first: date, last: date) -> dict[str, Any]:
        """The shifts of [first, last] and the leave overlapping those days."""
        async with self.handlers.driver.transaction() as unit:
            grid = await branch_grid(unit, branch_id, lock=False)
            start, end = (
                datetime.combine(day, time(), grid.timezone).astimezone(UTC)
                for day in (first, last + timedelta(days=1))
            )
            return {
                "plans_by_shifts": await calendar.plans_by_shifts(unit, branch_id),
                "shifts": await calendar.shifts(unit, branch_id, first, last),
                "leave": await calendar.leave(unit, branch_id, start, end),
            }

    async def record_leave(self, branch_id: str, staff_id: str, command: RecordLeave, actor: Actor) -> str:
        async with unit_of_work(self.handlers.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=True)
            if await queries.staff_member(uow.unit, branch_id, staff_id) is None:
                raise NotFoundError(f"branch {branch_id} has no staff member {staff_id}")
            leave_id = new_id()
            await calendar.add_leave(
                uow.unit,
                {
                    "leave_id": leave_id,
                    "branch_id": branch_id,
                    "staff_id": staff_id,
                    "starts_at": command.starts_at,
                    "ends_at": command.ends_at,
                    "kind": command.kind,
                    "recorded_by": actor.id,
                    "recorded_at": self.now,
                },
            )
        return leave_id

    async def cancel_leave(self, branch_id: str, staff_id: str, leave_id: str) -> None:
        now = self.now
        async with unit_of_work(self.handlers.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=True)
            if not await calendar.remove_leave(uow.unit, branch_id, staff_id, leave_id):
                raise NotFoundError(f"{staff_id} of branch {branch_id} has no leave {leave_id}")
            await offer_freed_places(uow.unit, branch_id, self.handlers.chain_id, now)

    # Booking rules ----------------------------------------------------------------------------------------

    async def set_rules(self, scope: str, command: BookingRulesInput, actor: Actor) -> None:
        """The chain's rules (`scope` is calendar.CHAIN_SCOPE) or a branch's overrides become these."""
        seen: set[date] = set()
        for index, entry in enumerate(command.dates or []):
            if entry.on in seen:
                raise InvalidInputError(f"body.dates.{index}.on", f"{entry.on.isoformat()} is listed twice")
            seen.add(entry.on)
        now = self.now
        async with unit_of_work(self.handlers.driver) as uow:
            if scope == calendar.CHAIN_SCOPE:
                branches = [row["branch_id"] for row in await queries.branches(uow.unit)]
            else:
                await branch_grid(uow.unit, scope, lock=True)
                branches = [scope]
            await calendar.set_rules(
                uow.unit, scope, command.model_dump(mode="json", exclude_none=True), actor.id, now
            )
            # Rules relaxed may free places: each branch's waitlists are looked at under its lock.
            for branch_id in branches:
                await offer_freed_places(uow.unit, branch_id, self.handlers.chain_id, now)

    async def rules(self, branch_id: str) -> tuple[dict[str, Any], dict[str, Any], BookingRules]:
        """What the chain sets, what the branch overrides, and the rules it books by."""
        async with self.handlers.driver.transaction() as unit:
            await branch_grid(unit, branch_id, lock=False)
            chain, branch = await calendar.rules(unit, branch_id)
        return chain, branch, effective_rules(chain, branch)

    async def chain_rules(self) -> dict[str, Any]:
        async with self.handlers.driver.transaction() as unit:
            chain, _ = await calendar.rules(unit, calendar.CHAIN_SCOPE)
        return chain

    # Holds and waitlists ----------------------------------------------------------------------------------

    async def hold(self, branch_id: str, command: HoldSlot) -> Held:
        """Hold a place in the slot for `hold_minutes` while the customer completes the form."""
        now = self.now
        async with unit_of_work(self.handlers.driver) as uow:
            free = await availability(uow.unit, branch_id, command.slot_start, now, lock=True)
            request = BookingRequest(VisitType(command.visit_type), command.service_requested)
            slot = free.slot_at(command.slot_start, request, field="body.slot_start")
            free.ensure_room(slot, request)
            expires_at = min(now + free.rules.hold, slot.start)
            hold_id = await take_hold(uow.unit, branch_id, slot, request, expires_at)
        return Held(hold_id=hold_id, slot=slot, expires_at=expires_at)

    async def join_waitlist(self, branch_id: str, command: JoinWaitlist) -> Waiting:
        """Wait for a place in a slot that has no room for the booking now (one with room is a 409: book
        it); the customer is offered the first place that frees and fits, in the order they joined."""
        now = self.now
        async with unit_of_work(self.handlers.driver) as uow:
            free = await availability(uow.unit, branch_id, command.slot_start, now, lock=True)
            request = BookingRequest(VisitType(command.visit_type), command.service_requested)
            slot = free.slot_at(command.slot_start, request, field="body.slot_start")
            try:
                free.ensure_room(slot, request)
            except NoRoomError:
                pass
            else:
                raise SlotHasRoomError(f"the slot at {slot.start.isoformat()} has room: book it")
            resolution = await identities.resolve(
                uow.unit,
                Visitor(
                    BookingChannel.ONLINE,
                    full_name=command.customer_name,
                    phone=command.phone,
                    plate=command.plate,
                    brand=command.brand,
                    model=command.model,
                    vin=command.vin,
                ),
                vehicle_required=False,
            )
            _, already = await calendar.in_line(
                uow.unit, branch_id, slot.start, position=0, customer_id=resolution.customer_id
            )
            if already:
                raise ConflictError("this customer already waits for this slot")
            await resolution.publish(
                uow.unit,
                self.handlers.context(Actor(kind="customer", id=resolution.customer_id), branch_id, now),
            )
            entry_id = new_id()
            position = await calendar.join_waitlist(
                uow.unit,
                {
                    "entry_id": entry_id,
                    "branch_id": branch_id,
                    "slot_start": slot.start,
                    "slot_end": slot.end,
                    "customer_id": resolution.customer_id,
                    "customer_name": command.customer_name,
                    "phone": command.phone,
                    "plate": command.plate,
                    "vehicle_id": resolution.vehicle_id,
                    "service_requested": command.service_requested,
                    "visit_type": command.visit_type,
                    "joined_at": now,
                },
            )
            ahead, _ = await calendar.in_line(
                uow.unit, branch_id, slot.start, position=position, customer_id=resolution.customer_id
            )
        return Waiting(waitlist_entry_id=entry_id, ahead=ahead)

    async def waitlist(self, branch_id: str, day: date) -> list[dict[str, Any]]:
        async with self.handlers.driver.transaction() as unit:
            grid = await branch_grid(unit, branch_id, lock=False)
            start, end = (
                datetime.combine(local_day, time(), grid.timezone).astimezone(UTC)
                for local_day in (day, day + timedelta(days=1))
            )
            return await calendar.entries_between(unit, branch_id, start, end)

    async def offer_page(self, branch_id: str, entry_id: str) -> OfferPage:
        """The waitlist entry, the hold of its offer (None before a place was offered) and its branch."""
        async with self.handlers.driver.transaction() as unit:
            entry = await calendar.entry(unit, branch_id, entry_id)
            if entry is None:
                raise NotFoundError(f"branch {branch_id} has no waitlist entry {entry_id}")
            hold = await calendar.hold(unit, branch_id, entry["hold_id"]) if entry["hold_id"] else None
            branch = await queries.branch(unit, branch_id)
        assert branch is not None  # the entry is of this branch, and branches are never removed
        return OfferPage(entry, hold, branch["name"], ZoneInfo(branch["timezone"]))

    async def appointment_page(
        self, branch_id: str, appointment_id: str, day: date | None
    ) -> AppointmentPage:
        appointment = await self.handlers.appointment(branch_id, appointment_id)
        async with self.handlers.driver.transaction() as unit:
            branch = await queries.branch(unit, branch_id)
        assert branch is not None  # the appointment is of this branch, and branches are never removed
        zone = ZoneInfo(branch["timezone"])
        day = day or appointment.slot.start.astimezone(zone).date()
        request = BookingRequest(appointment.visit_type or VisitType.WAITING, appointment.service_requested)
        free, capacity = await self.handlers.capacity_on(branch_id, day, request)
        return AppointmentPage(
            appointment=appointment,
            branch_name=branch["name"],
            timezone=zone,
            deadline=appointment.slot.start - free.rules.confirmation_deadline
            if appointment.awaits_confirmation()
            else None,
            day=day,
            free_slots=[
                entry.slot for entry in capacity if entry.bookable and entry.slot != appointment.slot
            ],
        )

    async def take_offer(self, branch_id: str, entry_id: str) -> str:
        """Book the place offered to the entry while its hold lasts; the appointment's id (the same again
        for a second tap). An offer that lapsed is a 409."""
        now = self.now
        async with unit_of_work(self.handlers.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=True)
            entry = await calendar.entry(uow.unit, branch_id, entry_id)
            if entry is None:
                raise NotFoundError(f"branch {branch_id} has no waitlist entry {entry_id}")
            if entry["status"] == "booked":
                return str(entry["appointment_id"])
            if entry["phone"] is None:  # the customer was erased while waiting
                raise OfferLapsedError("this offer is no longer open")
            hold = await calendar.hold(uow.unit, branch_id, entry["hold_id"]) if entry["hold_id"] else None
            if held_until(entry, hold, now) is None:
                raise OfferLapsedError("the place offered is no longer held; it went to the next in line")
            booked = await self.handlers.book_in(
                uow,
                branch_id,
                BookOnline(
                    slot_start=entry["slot_start"],
                    customer_name=entry["customer_name"],
                    phone=entry["phone"],
                    plate=entry["plate"],
                    service_requested=entry["service_requested"],
                    visit_type=entry["visit_type"],
                ),
                BookingChannel.ONLINE,
                Actor(kind="customer", id=entry["customer_id"]),
                now,
                customer_id=entry["customer_id"],
                vehicle_id=entry["vehicle_id"],
                hold_id=entry["hold_id"],
            )
            await calendar.taken(uow.unit, entry_id, booked["appointment_id"])
        return str(booked["appointment_id"])


class SlotHasRoomError(ConflictError):
    title = "Slot has room"


class OfferLapsedError(ConflictError):
    title = "Offer lapsed"
