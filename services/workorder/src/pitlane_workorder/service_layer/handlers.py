"""Command handlers: each loads what it needs in one unit of work, lets the domain decide, appends the
events (published through the outbox) and updates the read models in the same transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pitlane_events import Actor
from pitlane_events.types import (
    Attachment,
    Bay,
    Discount,
    InspectionItem,
    LineItem,
    Payment,
)
from pitlane_events.workorder import (
    AddOnProposed,
    AppointmentBooked,
    BookingChannel,
    BranchOpened,
    DecidedBy,
    DecisionMethod,
    DispatchSuggestion,
    StaffMemberAdded,
    VisitType,
    WorkOrderOpened,
)
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, Unit
from pitlane_platform.errors import (
    ConcurrencyError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_workorder.adapters import calendar, directory, process_definitions, queries
from pitlane_workorder.adapters.read_models import branch_of_work_order, project_work_order
from pitlane_workorder.domain.appointment import Appointment
from pitlane_workorder.domain.capacity import Availability, BookingRequest, SlotCapacity
from pitlane_workorder.domain.settlement import checked_bill
from pitlane_workorder.domain.workorder import WorkOrder
from pitlane_workorder.service_layer import commands, identities, stage_deadlines
from pitlane_workorder.service_layer.availability import availability, branch_grid, day_availability
from pitlane_workorder.service_layer.commands import plain
from pitlane_workorder.service_layer.confirmations import (
    CONFIRMATIONS,
    UNCONFIRMED,
    confirmation_deadline,
)
from pitlane_workorder.service_layer.identities import Visitor, new_id
from pitlane_workorder.service_layer.unit_of_work import UnitOfWork, unit_of_work
from pitlane_workorder.service_layer.waitlist import offer_freed_places, without_own_hold

WorkOrderChange = Callable[[WorkOrder, UnitOfWork, datetime], Awaitable[Any]]


@dataclass
class Handlers:
    driver: DriverPool
    clock: Clock
    chain_id: str
    no_show_grace: timedelta

    def context(self, actor: Actor, branch_id: str, now: datetime) -> CommandContext:
        return CommandContext(actor=actor, chain_id=self.chain_id, occurred_at=now, branch_id=branch_id)

    # Branches and staff ------------------------------------------------------------------------------------

    async def open_branch(self, command: commands.OpenBranch, actor: Actor) -> None:
        try:
            ZoneInfo(command.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInputError("body.timezone", f"unknown IANA time zone {command.timezone}") from None
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            row = {
                "branch_id": command.branch_id,
                "name": command.name,
                "address": command.address,
                "timezone": command.timezone,
                "opening_hours": [hours.model_dump(mode="json") for hours in command.opening_hours],
                "bays": [bay.model_dump(mode="json") for bay in command.bays],
                "slot_minutes": command.slot_minutes,
                "opened_at": now,
            }
            if not await queries.open_branch(uow.unit, row):
                raise ConflictError(f"branch {command.branch_id} is already open")
            opened = BranchOpened(
                branch_id=command.branch_id,
                branch_name=command.name,
                address=command.address,
                timezone=command.timezone,
                opening_hours=tuple(command.opening_hours),
                bays=plain(Bay, command.bays),
            )
            await eventstore.append(
                uow.unit, command.branch_id, 0, [opened], self.context(actor, command.branch_id, now)
            )

    async def add_staff_member(self, branch_id: str, command: commands.AddStaffMember, actor: Actor) -> None:
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=True)
            if not await queries.add_staff_member(uow.unit, branch_id, command.model_dump(mode="json")):
                raise ConflictError(f"{command.staff_id} is already on the staff of branch {branch_id}")
            added = StaffMemberAdded(
                staff_id=command.staff_id, display_name=command.display_name, role=command.role
            )
            version = await eventstore.stream_version(uow.unit, branch_id)
            await eventstore.append(
                uow.unit, branch_id, version, [added], self.context(actor, branch_id, now)
            )

    # Appointments ------------------------------------------------------------------------------------------

    async def book(
        self,
        branch_id: str,
        command: commands.BookAppointment,
        channel: BookingChannel,
        actor: Actor | None,
        *,
        customer_id: str | None = None,
        vehicle_id: str | None = None,
        campaign_id: str | None = None,
        reminder_id: str | None = None,
        hold_id: str | None = None,
    ) -> dict[str, Any]:
        """Book a slot. Only staff name the customer, vehicle, campaign or reminder; an online booking's
        campaign or reminder comes from a verified attribution token (the public route), and its `hold_id`
        is the hold the form took on the slot."""
        async with unit_of_work(self.driver) as uow:
            return await self.book_in(
                uow,
                branch_id,
                command,
                channel,
                actor,
                self.clock.now(),
                customer_id=customer_id,
                vehicle_id=vehicle_id,
                campaign_id=campaign_id,
                reminder_id=reminder_id,
                hold_id=hold_id,
            )

    async def book_in(
        self,
        uow: UnitOfWork,
        branch_id: str,
        command: commands.BookAppointment,
        channel: BookingChannel,
        actor: Actor | None,
        now: datetime,
        *,
        customer_id: str | None = None,
        vehicle_id: str | None = None,
        campaign_id: str | None = None,
        reminder_id: str | None = None,
        hold_id: str | None = None,
    ) -> dict[str, Any]:
        """`book` in the caller's unit of work (a waitlist offer taken is booked with its entry's update)."""
        # The branch row lock serialises the decisions that take or free places at the branch, so two
        # requests cannot both take the last free place of a slot.
        free = await availability(uow.unit, branch_id, command.slot_start, now, lock=True)
        request = BookingRequest(VisitType(command.visit_type), command.service_requested)
        if hold_id is not None:
            free = await without_own_hold(uow.unit, free, branch_id, hold_id, command.slot_start)
        slot = free.slot_at(command.slot_start, request, field="body.slot_start")
        free.ensure_room(slot, request)
        resolution = await identities.resolve(
            uow.unit,
            Visitor(
                channel,
                customer_id=customer_id,
                full_name=command.customer_name,
                phone=command.phone,
                vehicle_id=vehicle_id,
                plate=command.plate,
                brand=command.brand,
                model=command.model,
                vin=command.vin,
            ),
            vehicle_required=False,
        )
        # Staff book with the customer on the line; a customer booking online with more no-shows than the
        # chain allows has to confirm.
        confirmation_required = channel is BookingChannel.ONLINE and free.rules.needs_confirmation(
            await calendar.no_shows(uow.unit, resolution.customer_id)
        )
        appointment = Appointment.book(
            AppointmentBooked(
                appointment_id=new_id(),
                channel=channel,
                campaign_id=campaign_id,
                customer_id=resolution.customer_id,
                vehicle_id=resolution.vehicle_id,
                plate=command.plate,
                slot=slot,
                service_requested=command.service_requested,
                reminder_id=reminder_id,
                visit_type=request.visit_type,
                confirmation_required=confirmation_required,
            ),
            now,
        )
        actor = actor or Actor(kind="customer", id=resolution.customer_id)
        # The visit's correlation is born here; the customer and vehicle the booking introduces share it.
        context = self.context(actor, branch_id, now).in_new_correlation()
        await resolution.publish(uow.unit, context)
        await uow.save(appointment, context)
        await queries.insert_appointment(
            uow.unit,
            {
                "appointment_id": appointment.id,
                "branch_id": branch_id,
                "slot_start": slot.start,
                "slot_end": slot.end,
                "status": appointment.status.value,
                "channel": channel.value,
                "campaign_id": campaign_id,
                "customer_id": resolution.customer_id,
                "customer_name": command.customer_name,
                "phone": command.phone,
                "plate": command.plate,
                "service_requested": command.service_requested,
                "version": appointment.version,
                "visit_type": request.visit_type.value,
                "confirmation_required": confirmation_required,
            },
        )
        if hold_id is not None:
            await calendar.use_hold(uow.unit, hold_id)
        await confirmation_deadline(uow.unit, branch_id, appointment, free.rules, now)
        return {
            "appointment_id": appointment.id,
            "customer_id": resolution.customer_id,
            "slot": slot.model_dump(mode="json"),
        }

    async def reschedule(
        self,
        branch_id: str,
        appointment_id: str,
        command: commands.RescheduleAppointment,
        actor: Actor | None,
        *,
        field: str = "body.slot_start",
    ) -> None:
        """Move the appointment to the slot at `command.slot_start` if the slot has room for it (its own
        place not counted against it), and offer the place it leaves to whoever waits for it. `actor` None:
        the customer, through the appointment's link (`field` names the form's field)."""
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            free = await availability(uow.unit, branch_id, command.slot_start, now, lock=True)
            appointment = await self._appointment(uow, branch_id, appointment_id)
            free = free.without(appointment.id)
            request = BookingRequest(
                appointment.visit_type or VisitType.WAITING, appointment.service_requested
            )
            slot = free.slot_at(command.slot_start, request, field=field)
            if appointment.slot == slot:
                raise InvalidInputError(field, "the appointment is already in this slot")
            free.ensure_room(slot, request)
            appointment.reschedule(slot, command.reason, now)
            actor = actor or Actor(kind="customer", id=appointment.customer_id)
            await self._save_appointment(uow, appointment, self.context(actor, branch_id, now))
            await confirmation_deadline(uow.unit, branch_id, appointment, free.rules, now)
            await offer_freed_places(uow.unit, branch_id, self.chain_id, now)

    async def cancel(
        self, branch_id: str, appointment_id: str, command: commands.CancelAppointment, actor: Actor
    ) -> None:
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=True)  # the place it frees may be offered
            appointment = await self._appointment(uow, branch_id, appointment_id)
            appointment.cancel(command.cancelled_by, command.reason, now)
            await self._save_appointment(uow, appointment, self.context(actor, branch_id, now))
            await offer_freed_places(uow.unit, branch_id, self.chain_id, now)

    async def confirm(self, branch_id: str, appointment_id: str, actor: Actor | None) -> None:
        """Record that the customer is coming, on their word to `actor` (staff) or, `actor` None, by the
        customer through the appointment's link; once: a second confirmation records nothing."""
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            appointment = await self._appointment(uow, branch_id, appointment_id)
            confirmed_by: Literal["customer", "branch"] = "customer" if actor is None else "branch"
            if appointment.confirm(confirmed_by, now):
                actor = actor or Actor(kind="customer", id=appointment.customer_id)
                await self._save_appointment(uow, appointment, self.context(actor, branch_id, now))
                await calendar.confirmed(uow.unit, appointment.id, now)

    async def release_unconfirmed(
        self, uow: UnitOfWork, branch_id: str, appointment_id: str, slot_start: datetime, now: datetime
    ) -> bool:
        """At its confirmation deadline, an appointment still waiting for its confirmation in the slot the
        deadline was set for is cancelled, and its place offered to whoever waits. False if it was
        confirmed, moved or ended meanwhile."""
        await branch_grid(uow.unit, branch_id, lock=True)
        appointment = await self._appointment(uow, branch_id, appointment_id)
        if not appointment.awaits_confirmation() or appointment.slot.start != slot_start:
            return False
        appointment.cancel("branch", UNCONFIRMED, now)
        await self._save_appointment(uow, appointment, self.context(CONFIRMATIONS, branch_id, now))
        await offer_freed_places(uow.unit, branch_id, self.chain_id, now)
        return True

    async def mark_no_show(self, branch_id: str, appointment_id: str, actor: Actor) -> None:
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            appointment = await self._appointment(uow, branch_id, appointment_id)
            appointment.mark_no_show(now, self.no_show_grace)
            await self._save_appointment(uow, appointment, self.context(actor, branch_id, now))
            await calendar.count_no_show(uow.unit, appointment.customer_id)

    async def capacity_on(
        self, branch_id: str, day: date, request: BookingRequest | None
    ) -> tuple[Availability, list[SlotCapacity]]:
        """The branch's availability and each slot of its local `day`: places, bookings, holds, room left,
        and whether a booking (of `request`, if given) fits."""
        async with self.driver.transaction() as unit:
            free = await day_availability(unit, branch_id, day, self.clock.now())
        return free, free.capacity_on(day, request)

    async def missed_appointments(self) -> list[tuple[str, str]]:
        """(branch, appointment) of every booking whose grace period has run out."""
        async with self.driver.transaction() as unit:
            return await queries.missed_appointments(unit, self.clock.now() - self.no_show_grace)

    async def appointment(self, branch_id: str, appointment_id: str) -> Appointment:
        """The appointment of this branch as its events have it (for the customer's appointment page)."""
        async with unit_of_work(self.driver) as uow:
            return await self._appointment(uow, branch_id, appointment_id)

    async def _appointment(self, uow: UnitOfWork, branch_id: str, appointment_id: str) -> Appointment:
        appointment, _ = await self._appointment_and_row(uow, branch_id, appointment_id)
        return appointment

    async def _appointment_and_row(
        self, uow: UnitOfWork, branch_id: str, appointment_id: str
    ) -> tuple[Appointment, dict[str, Any]]:
        """The appointment of this branch, and its read-model row (what the booking said: name, phone)."""
        row = await queries.appointment(uow.unit, appointment_id)
        if row is None or row["branch_id"] != branch_id:
            raise NotFoundError(f"branch {branch_id} has no appointment {appointment_id}")
        return await uow.load(Appointment, appointment_id), row

    async def _save_appointment(
        self, uow: UnitOfWork, appointment: Appointment, context: CommandContext
    ) -> None:
        await uow.save(appointment, context)
        await queries.update_appointment(
            uow.unit,
            {
                "appointment_id": appointment.id,
                "status": appointment.status.value,
                "slot_start": appointment.slot.start,
                "slot_end": appointment.slot.end,
                "work_order_id": appointment.work_order_id,
                "version": appointment.version,
            },
        )

    # Work orders -------------------------------------------------------------------------------------------

    async def check_in(
        self, branch_id: str, command: commands.CheckIn, actor: Actor, appointment_id: str | None = None
    ) -> WorkOrder:
        """Open a work order: on arrival for an appointment (which is marked arrived), or for a walk-in."""
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            await branch_grid(uow.unit, branch_id, lock=False)
            definition, _ = await process_definitions.effective(uow.unit, branch_id)
            await _ensure_media(uow.unit, branch_id, command.photo_hashes, "body.photo_hashes")
            for index, item in enumerate(command.inspection):
                await _ensure_media(
                    uow.unit, branch_id, item.photo_hashes, f"body.inspection.{index}.photo_hashes"
                )
            customer_name = command.customer_name
            customer_id, plate, vehicle_id = command.customer_id, command.plate, command.vehicle_id
            channel = BookingChannel.WALK_IN
            appointment: Appointment | None = None
            if appointment_id is not None:
                appointment, booked = await self._appointment_and_row(uow, branch_id, appointment_id)
                customer_id = customer_id or appointment.customer_id
                plate = plate or appointment.plate
                vehicle_id = vehicle_id or appointment.vehicle_id
                customer_name = customer_name or booked["customer_name"]
            resolution = await identities.resolve(
                uow.unit,
                Visitor(
                    channel,
                    customer_id=customer_id,
                    full_name=customer_name,
                    phone=command.phone,
                    vehicle_id=vehicle_id,
                    plate=plate,
                    brand=command.brand,
                    model=command.model,
                    vin=command.vin,
                ),
                vehicle_required=True,
            )
            assert resolution.vehicle_id is not None  # resolve refuses a check-in without one
            # A car named by its id alone is checked in under the plate the chain knows for it.
            plate = plate or await directory.plate_of(uow.unit, resolution.vehicle_id)
            if plate is None:
                raise InvalidInputError(
                    "body.plate", f"the chain knows no plate for vehicle {resolution.vehicle_id}: give it"
                )
            order = WorkOrder.open(
                WorkOrderOpened(
                    work_order_id=new_id(),
                    customer_id=resolution.customer_id,
                    vehicle_id=resolution.vehicle_id,
                    plate=plate,
                    mileage_km=command.mileage_km,
                    complaint=command.complaint,
                    inspection=plain(InspectionItem, command.inspection),
                    photo_hashes=tuple(command.photo_hashes),
                    advisor_id=command.advisor_id or actor.id,
                    appointment_id=appointment_id,
                    mileage_correction=command.mileage_correction,
                    process=definition.ref,
                    work_categories=tuple(command.work_categories),
                ),
                now,
                definition,
            )
            # An arrival goes on in its appointment's correlation; a walk-in's visit starts its own here.
            context = self.context(actor, branch_id, now)
            context = (
                context.in_new_correlation()
                if appointment is None
                else replace(context, correlation_id=appointment.correlation_id)
            )
            await resolution.publish(uow.unit, context)
            await _check_mileage(uow.unit, resolution.vehicle_id, command)
            if appointment is not None:
                appointment.arrive(order.id, now)
                await self._save_appointment(uow, appointment, context)
            await uow.save(order, context)
            await project_work_order(uow.unit, order, branch_id=branch_id, customer_name=customer_name)
            await stage_deadlines.follow(uow.unit, order, [], branch_id, now)
        return order

    async def change_work_order(
        self,
        branch_id: str,
        work_order_id: str,
        actor: Actor,
        change: WorkOrderChange,
        *,
        expected_version: int | None = None,
        link_generation: int | None = None,
    ) -> WorkOrder:
        """Load, change and save one work order. `expected_version` (the client's If-Match) makes a command
        based on a stale view a 409 instead of a silent overwrite of someone else's change.
        `link_generation`: the command comes through a customer link of that generation, which must still
        be the order's."""
        now = self.clock.now()
        async with unit_of_work(self.driver) as uow:
            if link_generation is not None:
                # Checked again here, under the lock a revocation takes, and before the order is loaded: a
                # revocation that committed after the page's check would otherwise be answered while the
                # decision through the withdrawn link is still recorded, and the second of two taps on the
                # same button would meet the first's append as a 409 instead of the decision on record.
                await queries.lock_links(uow.unit, work_order_id)
                if await queries.link_generation(uow.unit, work_order_id) != link_generation:
                    raise ForbiddenError("this link was withdrawn; ask the branch for a new one")
            order = await self.work_order(uow, branch_id, work_order_id)
            if expected_version is not None and expected_version != order.version:
                raise ConcurrencyError(work_order_id, expected_version, order.version)
            stages_before = order.open_passages
            await change(order, uow, now)
            if order.pending:
                await uow.save(order, self.context(actor, branch_id, now))
                await project_work_order(uow.unit, order, branch_id=branch_id)
                await stage_deadlines.follow(uow.unit, order, stages_before, branch_id, now)
        return order

    async def work_order(self, uow: UnitOfWork, branch_id: str, work_order_id: str) -> WorkOrder:
        if await branch_of_work_order(uow.unit, work_order_id) != branch_id:
            raise NotFoundError(f"branch {branch_id} has no work order {work_order_id}")
        order = await uow.load(WorkOrder, work_order_id)
        order.definition, _ = await process_definitions.version(uow.unit, order.facts.process, branch_id)
        return order

    async def assign_technician(
        self,
        branch_id: str,
        work_order_id: str,
        command: commands.AssignTechnician,
        actor: Actor,
        *,
        suggestion: DispatchSuggestion | None = None,
        **options: Any,
    ) -> WorkOrder:
        """`suggestion`: the dispatch suggestion the advisor was shown (its token verified by the caller)."""

        async def assign(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            if await queries.staff_role(uow.unit, branch_id, command.technician_id) != "technician":
                raise InvalidInputError(
                    "body.technician_id", f"no technician {command.technician_id} at {branch_id}"
                )
            if command.bay_id is not None:
                branch = await queries.branch(uow.unit, branch_id)
                assert branch is not None  # the work order is of this branch
                if command.bay_id not in {bay["bay_id"] for bay in branch["bays"]}:
                    raise InvalidInputError("body.bay_id", f"branch {branch_id} has no bay {command.bay_id}")
            order.assign_technician(command.technician_id, command.bay_id, now, suggestion=suggestion)

        return await self.change_work_order(branch_id, work_order_id, actor, assign, **options)

    async def record_progress(
        self,
        branch_id: str,
        work_order_id: str,
        command: commands.RecordProgress,
        actor: Actor,
        **options: Any,
    ) -> WorkOrder:
        async def record(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            attachments = await _ensure_media(uow.unit, branch_id, command.attachments, "body.attachments")
            order.record_progress(actor.id, command.text, attachments, now, work_done=command.work_done)

        return await self.change_work_order(branch_id, work_order_id, actor, record, **options)

    async def propose_add_on(
        self, branch_id: str, work_order_id: str, command: commands.ProposeAddOn, actor: Actor, **options: Any
    ) -> WorkOrder:
        async def propose(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            await _ensure_media(uow.unit, branch_id, command.photo_hashes, "body.photo_hashes")
            proposal = AddOnProposed(
                work_order_id=order.id,
                add_on_id=new_id(),
                item=command.item,
                item_code=command.item_code,
                category=command.category,
                price_fen=command.price_fen,
                reason=command.reason,
                photo_hashes=tuple(command.photo_hashes),
                estimate_revision=order.estimate_revision + 1,
                proposed_by=actor.id,
            )
            order.propose_add_on(proposal, now)

        return await self.change_work_order(branch_id, work_order_id, actor, propose, **options)

    async def decide_add_on(
        self,
        branch_id: str,
        work_order_id: str,
        add_on_id: str,
        *,
        approve: bool,
        estimate_revision_seen: int,
        decided_by: DecidedBy,
        method: DecisionMethod,
        actor: Actor,
        reason: str | None = None,
        expected_version: int | None = None,
        link_generation: int | None = None,
    ) -> tuple[WorkOrder, bool]:
        """The order, and True if the decision was recorded now, False if the same decision was already on
        record. `link_generation`: the customer decides through a link of that generation."""
        recorded = False

        async def decide(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            nonlocal recorded
            recorded = order.decide_add_on(
                add_on_id,
                approve=approve,
                estimate_revision_seen=estimate_revision_seen,
                decided_by=decided_by,
                method=method,
                at=now,
                reason=reason,
            )

        order = await self.change_work_order(
            branch_id,
            work_order_id,
            actor,
            decide,
            expected_version=expected_version,
            link_generation=link_generation,
        )
        return order, recorded

    async def record_quality_check(
        self,
        branch_id: str,
        work_order_id: str,
        command: commands.RecordQualityCheck,
        actor: Actor,
        **options: Any,
    ) -> WorkOrder:
        async def check(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            if command.passed:
                order.pass_quality_check(actor.id, command.note, now)
            else:
                order.fail_quality_check(actor.id, command.reasons, now)

        return await self.change_work_order(branch_id, work_order_id, actor, check, **options)

    async def settle(
        self,
        branch_id: str,
        work_order_id: str,
        command: commands.SettleWorkOrder,
        actor: Actor,
        **options: Any,
    ) -> WorkOrder:
        async def settle(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            bill = checked_bill(
                plain(LineItem, command.line_items),
                plain(Discount, command.discounts),
                [
                    Payment(
                        method=payment.method,
                        amount_fen=payment.amount_fen,
                        paid_at=payment.paid_at or now,
                        reference=payment.reference,
                    )
                    for payment in command.payments
                ],
                stated_total_fen=command.total_fen,
                approved_add_on_ids=order.approved_add_on_ids,
            )
            order.settle(
                bill,
                coupon_code=command.coupon_code,
                campaign_id=command.campaign_id,
                settled_by=actor.id,
                at=now,
            )

        return await self.change_work_order(branch_id, work_order_id, actor, settle, **options)

    async def complete(self, branch_id: str, work_order_id: str, actor: Actor, **options: Any) -> WorkOrder:
        async def complete(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            order.complete(branch_id, now)

        return await self.change_work_order(branch_id, work_order_id, actor, complete, **options)

    async def void(
        self,
        branch_id: str,
        work_order_id: str,
        command: commands.VoidWorkOrder,
        actor: Actor,
        **options: Any,
    ) -> WorkOrder:
        async def void(order: WorkOrder, uow: UnitOfWork, now: datetime) -> None:
            order.void(actor.id, command.reason, command.refunded_fen, now)

        return await self.change_work_order(branch_id, work_order_id, actor, void, **options)


async def _check_mileage(unit: Unit, vehicle_id: str, command: commands.CheckIn) -> None:
    """A reading below the last known one is a typo or a replaced odometer: refused unless corrected with a
    reason; the accepted reading becomes the last known at once."""
    last = await directory.last_reading(unit, vehicle_id)
    if last is not None and command.mileage_km < last and command.mileage_correction is None:
        raise InvalidInputError(
            "body.mileage_km",
            f"{command.mileage_km} km is below the last reading of {last} km; if the odometer was replaced"
            " or the last reading was wrong, send mileage_correction with the reason",
        )
    await directory.record_reading(unit, vehicle_id, command.mileage_km)


async def _ensure_media(unit: Unit, branch_id: str, hashes: Sequence[str], field: str) -> list[Attachment]:
    """The stored files' attachments, or a 422 naming the first hash the branch uploaded nothing under (a
    file of another branch is not this order's to show)."""
    if not hashes:
        return []
    known = await queries.media(unit, branch_id, hashes)
    for index, hash_ in enumerate(hashes):
        if hash_ not in known:
            raise InvalidInputError(f"{field}.{index}", f"branch {branch_id} uploaded no file under {hash_}")
    return [
        Attachment(
            content_hash=hash_,
            media_type=known[hash_]["media_type"],
            size_bytes=known[hash_]["size_bytes"],
        )
        for hash_ in hashes
    ]
