"""What reminder learns from the other services' streams, and what it re-evaluates on each fact.

- `reminder.vehicle-facts` (customer-profile): vehicles, owners, mileage readings, insurance, consent,
  merges and erasure.
- `reminder.visits` (workorder): staff, bookings (a booking suppresses reminders and closes the customer's
  open tasks), work orders (a completion starts a new maintenance cycle), declined add-ons, stages of work
  orders past their time limit (a task for the stage's responsible role).
- `reminder.nps` (notification): a detractor's answer becomes a service-recovery task.

Every consumer runs on the driver; each event's effect commits with its inbox row.
"""

from __future__ import annotations

from datetime import timedelta

from pitlane_events.customer_profile import (
    ConsentChanged,
    CustomerErased,
    CustomersMerged,
    VehicleInsuranceUpdated,
    VehicleMileageRecorded,
    VehicleOwnerChanged,
    VehicleRegistered,
    VehicleUpdated,
)
from pitlane_events.notification import NpsAnswered
from pitlane_events.reminder import FollowUpKind, FollowUpOutcome, ReminderCancellation
from pitlane_events.types import StaffRole
from pitlane_events.workorder import (
    AddOnDeclined,
    AppointmentArrived,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    StaffMemberAdded,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderStageOverdue,
    WorkOrderVoided,
)
from pitlane_platform.db import execute_on_driver, fetch_on_driver
from pitlane_platform.messaging.consumer import Consumer, HandlerContext, advance_read_model
from pitlane_reminder.adapters import queries
from pitlane_reminder.domain.rules import detractor_task_due
from pitlane_reminder.service_layer.rules import effective_rules
from pitlane_reminder.service_layer.service import Reminder
from pitlane_reminder.service_layer.tasks import ACTOR, UNASSIGNED, NewTask

SERVICE = "reminder"


async def _newer(ctx: HandlerContext, read_model: str) -> bool:
    return await advance_read_model(
        ctx.unit, read_model, ctx.envelope.aggregate_id, ctx.envelope.aggregate_version
    )


def build_consumers(service: Reminder) -> list[Consumer]:
    return [_vehicle_facts(service), _visits(service), _nps(service)]


def _vehicle_facts(service: Reminder) -> Consumer:
    facts = Consumer(
        service=SERVICE, purpose="vehicle-facts", source_service="customer-profile", on_driver=True
    )
    schedule = service.schedule

    @facts.on(VehicleRegistered)
    async def on_registered(ctx: HandlerContext, event: VehicleRegistered) -> None:
        if not await _newer(ctx, "vehicles"):
            return
        await queries.upsert_vehicle(
            ctx.unit,
            event.vehicle_id,
            customer_id=event.owner_customer_id,
            plate=event.plate,
            registration_date=event.registration_date,
            purchase_date=event.purchase_date,
        )
        if event.mileage_km is not None:
            await queries.add_reading(
                ctx.unit,
                event.vehicle_id,
                at=ctx.envelope.occurred_at,
                km=event.mileage_km,
                correction=False,
                event_id=str(ctx.envelope.event_id),
            )
        await schedule.evaluate(
            ctx.unit,
            event.vehicle_id,
            reason="the vehicle was registered",
            correlation_id=ctx.envelope.correlation_id,
        )

    @facts.on(VehicleUpdated)
    async def on_updated(ctx: HandlerContext, event: VehicleUpdated) -> None:
        if not await _newer(ctx, "vehicles"):
            return
        await queries.upsert_vehicle(
            ctx.unit,
            event.vehicle_id,
            plate=event.plate,
            registration_date=event.registration_date,
            purchase_date=event.purchase_date,
        )
        await schedule.evaluate(
            ctx.unit,
            event.vehicle_id,
            reason="the vehicle's details changed",
            correlation_id=ctx.envelope.correlation_id,
        )

    @facts.on(VehicleOwnerChanged)
    async def on_owner_changed(ctx: HandlerContext, event: VehicleOwnerChanged) -> None:
        if not await _newer(ctx, "vehicles"):
            return
        # Sold or given away: nothing more goes to anyone about it until the new owner brings it in.
        await queries.upsert_vehicle(
            ctx.unit,
            event.vehicle_id,
            customer_id=event.new_owner_customer_id,
            sold_at=ctx.envelope.occurred_at,
        )
        await schedule.cancel_all(
            ctx.unit,
            event.vehicle_id,
            ReminderCancellation.VEHICLE_SOLD,
            correlation_id=ctx.envelope.correlation_id,
        )

    @facts.on(VehicleMileageRecorded)
    async def on_mileage(ctx: HandlerContext, event: VehicleMileageRecorded) -> None:
        if not await _newer(ctx, "vehicles"):
            return
        await queries.upsert_vehicle(ctx.unit, event.vehicle_id)
        await queries.add_reading(
            ctx.unit,
            event.vehicle_id,
            at=event.recorded_at,
            km=event.mileage_km,
            correction=event.correction is not None,
            event_id=str(ctx.envelope.event_id),
        )
        await schedule.evaluate(
            ctx.unit,
            event.vehicle_id,
            reason=f"a reading of {event.mileage_km:,} km",
            correlation_id=ctx.envelope.correlation_id,
        )

    @facts.on(VehicleInsuranceUpdated)
    async def on_insurance(ctx: HandlerContext, event: VehicleInsuranceUpdated) -> None:
        if not await _newer(ctx, "vehicles"):
            return
        await queries.upsert_vehicle(ctx.unit, event.vehicle_id)
        await queries.upsert_policy(
            ctx.unit, event.vehicle_id, event.coverage.value, event.insurer, event.expires_on
        )
        await schedule.evaluate(
            ctx.unit,
            event.vehicle_id,
            reason=f"{event.coverage.value} insurance now expires {event.expires_on}",
            correlation_id=ctx.envelope.correlation_id,
        )

    @facts.on(ConsentChanged)
    async def on_consent(ctx: HandlerContext, event: ConsentChanged) -> None:
        if not await _newer(ctx, "customers") or event.purpose.value != "service":
            return
        await queries.record_consent(
            ctx.unit,
            event.customer_id,
            event.channel.value,
            event.purpose.value,
            granted=event.granted,
            at=ctx.envelope.occurred_at,
        )
        withdrawn = await queries.service_channels_withdrawn(
            ctx.unit, event.customer_id, ("sms", "wechat", "email")
        )
        for vehicle_id in await queries.vehicles_of(ctx.unit, event.customer_id):
            if withdrawn:
                await schedule.cancel_all(
                    ctx.unit,
                    vehicle_id,
                    ReminderCancellation.CONSENT_WITHDRAWN,
                    correlation_id=ctx.envelope.correlation_id,
                )
            else:
                await schedule.evaluate(
                    ctx.unit,
                    vehicle_id,
                    reason="the customer consents to service messages again",
                    correlation_id=ctx.envelope.correlation_id,
                )

    @facts.on(CustomersMerged)
    async def on_merged(ctx: HandlerContext, event: CustomersMerged) -> None:
        if not await _newer(ctx, "customers"):
            return
        for table in ("vehicles", "reminders", "tasks"):
            await execute_on_driver(
                ctx.unit,
                "merge customers",
                f"UPDATE {table} SET customer_id = %(s)s WHERE customer_id = ANY(%(m)s)",
                {"s": event.surviving_customer_id, "m": list(event.merged_customer_ids)},
            )

    @facts.on(CustomerErased)
    async def on_erased(ctx: HandlerContext, event: CustomerErased) -> None:
        if not await _newer(ctx, "customers"):
            return
        vehicle_ids = set(event.vehicle_ids) | set(await queries.vehicles_of(ctx.unit, event.customer_id))
        for vehicle_id in sorted(vehicle_ids):
            await execute_on_driver(
                ctx.unit,
                "erase vehicle",
                "UPDATE vehicles SET plate = NULL, erased_at = %(at)s WHERE vehicle_id = %(v)s",
                {"v": vehicle_id, "at": ctx.envelope.occurred_at},
            )
            await schedule.cancel_all(
                ctx.unit,
                vehicle_id,
                ReminderCancellation.CUSTOMER_ERASED,
                correlation_id=ctx.envelope.correlation_id,
            )
        open_tasks = await fetch_on_driver(
            ctx.unit,
            "erased customer's tasks",
            "SELECT task_id FROM tasks WHERE customer_id = %(c)s AND status = 'open' ORDER BY task_id",
            {"c": event.customer_id},
        )
        for (task_id,) in open_tasks:
            await service.tasks.complete(
                ctx.unit,
                task_id,
                FollowUpOutcome.UNREACHABLE,
                None,
                by=ACTOR,
                auto_closed="customer_erased",
                correlation_id=ctx.envelope.correlation_id,
            )
        await execute_on_driver(
            ctx.unit,
            "erase task notes",
            "UPDATE tasks SET note = NULL WHERE customer_id = %(c)s",
            {"c": event.customer_id},
        )

    return facts


def _visits(service: Reminder) -> Consumer:
    visits = Consumer(service=SERVICE, purpose="visits", source_service="workorder", on_driver=True)
    schedule = service.schedule

    @visits.on(StaffMemberAdded)
    async def on_staff(ctx: HandlerContext, event: StaffMemberAdded) -> None:
        if ctx.envelope.branch_id is not None:
            await queries.add_staff(ctx.unit, ctx.envelope.branch_id, event.staff_id, event.role.value)

    @visits.on(AppointmentBooked)
    async def on_booked(ctx: HandlerContext, event: AppointmentBooked) -> None:
        vehicle_id = event.vehicle_id or await queries.vehicle_by_plate(ctx.unit, event.plate)
        if vehicle_id is not None:
            await queries.upsert_vehicle(ctx.unit, vehicle_id, customer_id=event.customer_id)
            await queries.mark_open(ctx.unit, vehicle_id, "open_bookings", event.appointment_id, is_open=True)
        await service.tasks.close_for_booking(
            ctx.unit, event.customer_id, vehicle_id, correlation_id=ctx.envelope.correlation_id
        )

    async def booking_over(ctx: HandlerContext, appointment_id: str) -> None:
        await execute_on_driver(
            ctx.unit,
            "booking over",
            "UPDATE vehicles SET open_bookings = open_bookings - %(a)s::text WHERE open_bookings ? %(a)s",
            {"a": appointment_id},
        )

    @visits.on(AppointmentCancelled)
    async def on_cancelled(ctx: HandlerContext, event: AppointmentCancelled) -> None:
        await booking_over(ctx, event.appointment_id)

    @visits.on(AppointmentNoShow)
    async def on_no_show(ctx: HandlerContext, event: AppointmentNoShow) -> None:
        await booking_over(ctx, event.appointment_id)

    @visits.on(AppointmentArrived)
    async def on_arrived(ctx: HandlerContext, event: AppointmentArrived) -> None:
        await booking_over(ctx, event.appointment_id)

    @visits.on(WorkOrderOpened)
    async def on_opened(ctx: HandlerContext, event: WorkOrderOpened) -> None:
        branch_id = ctx.envelope.branch_id or ""
        await queries.open_work_order(
            ctx.unit,
            event.work_order_id,
            vehicle_id=event.vehicle_id,
            customer_id=event.customer_id,
            branch_id=branch_id,
            advisor_id=event.advisor_id,
        )
        await queries.upsert_vehicle(
            ctx.unit, event.vehicle_id, customer_id=event.customer_id, plate=event.plate
        )
        await queries.mark_open(
            ctx.unit, event.vehicle_id, "open_work_orders", event.work_order_id, is_open=True
        )

    @visits.on(WorkOrderCompleted)
    async def on_completed(ctx: HandlerContext, event: WorkOrderCompleted) -> None:
        completed_on = event.completed_at.astimezone(schedule.timezone).date()
        await queries.open_work_order(
            ctx.unit,
            event.work_order_id,
            vehicle_id=event.vehicle_id,
            customer_id=event.customer_id,
            branch_id=event.branch_id,
            advisor_id=event.advisor_id,
        )
        await queries.complete_work_order(
            ctx.unit, event.work_order_id, completed_on=completed_on, mileage_km=event.mileage_km
        )
        await queries.mark_open(
            ctx.unit, event.vehicle_id, "open_work_orders", event.work_order_id, is_open=False
        )
        await queries.add_reading(
            ctx.unit,
            event.vehicle_id,
            at=event.completed_at,
            km=event.mileage_km,
            correction=False,
            event_id=str(ctx.envelope.event_id),
        )
        await _serviced(ctx, event.vehicle_id)
        # The visit's customer has the car now, unless it changed hands after this visit (the two streams
        # arrive in any order): then the new owner keeps it.
        await execute_on_driver(
            ctx.unit,
            "visit owner",
            """
            UPDATE vehicles SET customer_id = %(c)s, sold_at = NULL
            WHERE vehicle_id = %(v)s AND (sold_at IS NULL OR sold_at < %(at)s)
            """,
            {"v": event.vehicle_id, "c": event.customer_id, "at": event.completed_at},
        )
        await execute_on_driver(
            ctx.unit,
            "visit",
            "UPDATE vehicles SET last_visit_at = greatest(last_visit_at, %(at)s) WHERE vehicle_id = %(v)s",
            {"v": event.vehicle_id, "at": event.completed_at},
        )
        await schedule.evaluate(
            ctx.unit,
            event.vehicle_id,
            reason=f"serviced at {event.mileage_km:,} km on {completed_on.isoformat()}",
            correlation_id=ctx.envelope.correlation_id,
        )

    @visits.on(WorkOrderVoided)
    async def on_voided(ctx: HandlerContext, event: WorkOrderVoided) -> None:
        order = await queries.work_order(ctx.unit, event.work_order_id)
        await queries.void_work_order(ctx.unit, event.work_order_id)
        if order is None:
            return
        await queries.mark_open(
            ctx.unit, order["vehicle_id"], "open_work_orders", event.work_order_id, is_open=False
        )
        await _serviced(ctx, order["vehicle_id"])
        await schedule.evaluate(
            ctx.unit,
            order["vehicle_id"],
            reason="a visit was voided",
            correlation_id=ctx.envelope.correlation_id,
        )

    async def _serviced(ctx: HandlerContext, vehicle_id: str) -> None:
        """The vehicle's last service is its latest visit that still counts."""
        last = await queries.last_service(ctx.unit, vehicle_id)
        await execute_on_driver(
            ctx.unit,
            "serviced",
            """
            UPDATE vehicles SET last_service_on = %(on)s, last_service_km = %(km)s,
                first_service_on = %(first)s, last_branch_id = coalesce(%(b)s, last_branch_id),
                last_advisor_id = coalesce(%(a)s, last_advisor_id)
            WHERE vehicle_id = %(v)s
            """,
            {
                "v": vehicle_id,
                "on": last["completed_on"] if last else None,
                "km": last["mileage_km"] if last else None,
                "first": last["first_on"] if last else None,
                "b": last["branch_id"] if last else None,
                "a": last["advisor_id"] if last else None,
            },
        )

    @visits.on(WorkOrderStageOverdue)
    async def on_stage_overdue(ctx: HandlerContext, event: WorkOrderStageOverdue) -> None:
        """A task for whoever holds the stage's role: the order's advisor or technician as workorder names
        them, else (a manager's stage) the branch's manager; one per passage through the stage (its aggregate),
        however often the event arrives."""
        branch_id = ctx.envelope.branch_id or ""
        assignee = event.responsible_staff_id
        if assignee is None and event.responsible_role is StaffRole.MANAGER:
            assignee = await queries.branch_manager(ctx.unit, branch_id)
        await service.tasks.create(
            ctx.unit,
            NewTask(
                kind=FollowUpKind.STAGE_OVERDUE,
                source=f"stage-overdue:{ctx.envelope.aggregate_id}",
                branch_id=branch_id,
                advisor_id=assignee or UNASSIGNED,
                customer_id=event.customer_id,
                vehicle_id=event.vehicle_id,
                # Late already: to chase now.
                due_at=ctx.envelope.occurred_at,
                work_order_id=event.work_order_id,
                add_on_id=event.add_on_id,
                note=f"{event.stage.value} #{event.occurrence} over its {event.time_limit_minutes} min limit",
                stage=event.stage,
                responsible_role=event.responsible_role,
            ),
            correlation_id=ctx.envelope.correlation_id,
        )

    @visits.on(AddOnDeclined)
    async def on_declined(ctx: HandlerContext, event: AddOnDeclined) -> None:
        order = await queries.work_order(ctx.unit, event.work_order_id)
        if order is None:
            raise LookupError(f"work order {event.work_order_id} not opened yet")  # retried in order
        await schedule.declined(
            ctx.unit,
            vehicle_id=order["vehicle_id"],
            add_on_id=event.add_on_id,
            item=event.item,
            declined_at=event.decided_at,
            work_order_id=event.work_order_id,
            branch_id=order["branch_id"],
            advisor_id=order["advisor_id"],
            customer_id=order["customer_id"],
            correlation_id=ctx.envelope.correlation_id,
        )

    return visits


def _nps(service: Reminder) -> Consumer:
    answers = Consumer(service=SERVICE, purpose="nps", source_service="notification", on_driver=True)

    @answers.on(NpsAnswered)
    async def on_answered(ctx: HandlerContext, event: NpsAnswered) -> None:
        if event.score > 6:
            return
        rules = await effective_rules(ctx.unit, event.branch_id)
        if not rules.nps_detractor.enabled:
            return
        manager = await queries.branch_manager(ctx.unit, event.branch_id)
        await service.tasks.create(
            ctx.unit,
            NewTask(
                kind=FollowUpKind.NPS_DETRACTOR,
                source=f"survey:{event.survey_id}",
                branch_id=event.branch_id,
                advisor_id=manager or event.advisor_id or UNASSIGNED,
                customer_id=event.customer_id,
                due_at=detractor_task_due(
                    ctx.envelope.occurred_at, within=timedelta(hours=rules.nps_detractor.within_hours)
                ),
                work_order_id=event.work_order_id,
                survey_id=event.survey_id,
                # The score, not the comment: what the customer wrote stays with notification (its erasure
                # scrubs it there), and the advisor reads it through the survey.
                note=f"NPS {event.score}",
            ),
            correlation_id=ctx.envelope.correlation_id,
        )

    return answers
