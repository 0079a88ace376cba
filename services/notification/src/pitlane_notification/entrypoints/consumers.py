"""What notification learns from the other services' streams, and the messages their events trigger.

- `notification.contacts` (customer-profile): whom to reach and how — names, phones, WeChat open ids,
  e-mail addresses, consent per channel and purpose, tags, merges, erasure — and vehicles' plates.
- `notification.workorder-triggers` (workorder): branches, customers workorder met first, appointments
  (confirmation now, reminders the day before and two hours before, each with the appointment's link),
  places offered from waitlists, progress and add-ons (a link to the customer's page), the completed visit
  (thanks now, the NPS survey after the delay) and its void (no survey); the branch's staff, and an alert
  to its managers when a stage of a work order runs past its time limit.
- `notification.reminder-triggers` (reminder): a reminder due goes to the customer with a booking link.
- `notification.segments` (analytics): segments saved from analytics' KPI drill-downs, which campaigns can
  target once all their batches have arrived.

Every consumer runs on the driver; each event's effect commits with its inbox row, and the messages it
queues carry the event's id in their dedupe key, so a copy queues nothing.
"""

from __future__ import annotations

from typing import Any

from pitlane_events.analytics import SegmentSaved
from pitlane_events.customer_profile import (
    ConsentChanged,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerErased,
    CustomerRegistered,
    CustomersMerged,
    CustomerTagged,
    CustomerUntagged,
    CustomerUpdated,
    VehicleOwnerChanged,
    VehicleRegistered,
    VehicleUpdated,
)
from pitlane_events.notification import NpsAnswered
from pitlane_events.reminder import ReminderDue
from pitlane_events.types import Channel, Purpose
from pitlane_events.workorder import (
    AddOnProposed,
    AppointmentArrived,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    AppointmentRescheduled,
    BranchOpened,
    BranchUpdated,
    CustomerIntroduced,
    ProgressRecorded,
    StaffMemberAdded,
    WaitlistSlotOffered,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderStageOverdue,
    WorkOrderVoided,
)
from pitlane_notification.adapters import queries
from pitlane_notification.service_layer import staff_alerts
from pitlane_notification.service_layer.default_templates import reminder_phrase
from pitlane_notification.service_layer.requests import MessageRequest, Related, Trigger
from pitlane_notification.service_layer.service import APPOINTMENT_REMINDER, Notification
from pitlane_platform.db import fetch_on_driver
from pitlane_platform.messaging.consumer import Consumer, HandlerContext, advance_read_model
from pitlane_platform.messaging.erasure import event_subjects, scrub_event_copies
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.scheduling.timers import cancel_prefixed
from pitlane_platform.security.links import AttributionKind

SERVICE = "notification"
# Events of ours that carry what a customer wrote: erasure scrubs their copies from the stream.
PERSONAL_EVENTS = (NpsAnswered.event_type,)


async def _newer(ctx: HandlerContext, read_model: str) -> bool:
    return await advance_read_model(
        ctx.unit, read_model, ctx.envelope.aggregate_id, ctx.envelope.aggregate_version
    )


def build_consumers(runtime: ServiceRuntime, service: Notification) -> list[Consumer]:
    return [
        _contacts(runtime, service),
        _workorder_triggers(service),
        _reminder_triggers(service),
        _segments(service),
    ]


def _segments(service: Notification) -> Consumer:
    segments = Consumer(service=SERVICE, purpose="segments", source_service="analytics", on_driver=True)

    @segments.on(SegmentSaved)
    async def on_segment_saved(ctx: HandlerContext, event: SegmentSaved) -> None:
        await service.campaigns.save_segment_batch(ctx.unit, ctx.envelope, event)

    return segments


def _contacts(runtime: ServiceRuntime, service: Notification) -> Consumer:
    contacts = Consumer(
        service=SERVICE, purpose="contacts", source_service="customer-profile", on_driver=True
    )

    @contacts.on(CustomerRegistered)
    async def on_registered(ctx: HandlerContext, event: CustomerRegistered) -> None:
        if await _newer(ctx, "contacts"):
            await queries.upsert_contact(ctx.unit, event.customer_id, full_name=event.full_name, phone=None)
            await queries.set_contact_point(ctx.unit, event.customer_id, "phone", event.phone, primary=True)

    @contacts.on(CustomerUpdated)
    async def on_updated(ctx: HandlerContext, event: CustomerUpdated) -> None:
        if await _newer(ctx, "contacts") and event.full_name is not None:
            await queries.upsert_contact(ctx.unit, event.customer_id, full_name=event.full_name, phone=None)

    @contacts.on(CustomerContactAdded)
    async def on_contact_added(ctx: HandlerContext, event: CustomerContactAdded) -> None:
        if await _newer(ctx, "contacts"):
            await queries.set_contact_point(
                ctx.unit, event.customer_id, event.kind.value, event.value, primary=event.is_primary
            )

    @contacts.on(CustomerContactRemoved)
    async def on_contact_removed(ctx: HandlerContext, event: CustomerContactRemoved) -> None:
        if await _newer(ctx, "contacts"):
            await queries.clear_contact_point(ctx.unit, event.customer_id, event.kind.value, event.value)

    @contacts.on(ConsentChanged)
    async def on_consent(ctx: HandlerContext, event: ConsentChanged) -> None:
        if await _newer(ctx, "contacts"):
            await queries.record_consent(
                ctx.unit,
                event.customer_id,
                event.channel.value,
                event.purpose.value,
                granted=event.granted,
                source=event.source.value,
                at=ctx.envelope.occurred_at,
            )

    @contacts.on(CustomerTagged)
    async def on_tagged(ctx: HandlerContext, event: CustomerTagged) -> None:
        if await _newer(ctx, "contacts"):
            await queries.tag(ctx.unit, event.customer_id, event.tag, present=True)

    @contacts.on(CustomerUntagged)
    async def on_untagged(ctx: HandlerContext, event: CustomerUntagged) -> None:
        if await _newer(ctx, "contacts"):
            await queries.tag(ctx.unit, event.customer_id, event.tag, present=False)

    @contacts.on(CustomersMerged)
    async def on_merged(ctx: HandlerContext, event: CustomersMerged) -> None:
        if await _newer(ctx, "contacts"):
            await queries.merge_contacts(
                ctx.unit, event.surviving_customer_id, list(event.merged_customer_ids)
            )

    @contacts.on(CustomerErased)
    async def on_erased(ctx: HandlerContext, event: CustomerErased) -> None:
        if not await _newer(ctx, "contacts"):
            return
        if runtime.nats is None:
            raise RuntimeError("not connected to NATS yet")  # retried with back-off
        answers = await fetch_on_driver(
            ctx.unit,
            "answer events",
            """
            SELECT a.event_id FROM survey_answers a JOIN surveys s USING (survey_id)
            WHERE s.customer_id = %(c)s AND a.event_id IS NOT NULL
            """,
            {"c": event.customer_id},
        )
        await queries.erase_contact(ctx.unit, event.customer_id, ctx.envelope.occurred_at)
        await service.surveys_cancelled_for(ctx.unit, event.customer_id, ctx.clock.now())
        # Before the commit (ADR 13): a failed scrub rolls the erasure back, and the retry does it all again.
        await scrub_event_copies(
            runtime.nats.jetstream(),
            stream=stream_name(SERVICE),
            subjects=event_subjects(PERSONAL_EVENTS),
            event_ids={str(row[0]) for row in answers},
        )

    @contacts.on(VehicleRegistered)
    async def on_vehicle(ctx: HandlerContext, event: VehicleRegistered) -> None:
        if await _newer(ctx, "vehicles"):
            await queries.upsert_vehicle(
                ctx.unit, event.vehicle_id, plate=event.plate, owner_customer_id=event.owner_customer_id
            )

    @contacts.on(VehicleUpdated)
    async def on_vehicle_updated(ctx: HandlerContext, event: VehicleUpdated) -> None:
        if await _newer(ctx, "vehicles") and event.plate is not None:
            await queries.upsert_vehicle(
                ctx.unit, event.vehicle_id, plate=event.plate, owner_customer_id=None
            )

    @contacts.on(VehicleOwnerChanged)
    async def on_owner_changed(ctx: HandlerContext, event: VehicleOwnerChanged) -> None:
        if await _newer(ctx, "vehicles"):
            await queries.upsert_vehicle(
                ctx.unit, event.vehicle_id, plate=None, owner_customer_id=event.new_owner_customer_id
            )

    return contacts


def _workorder_triggers(service: Notification) -> Consumer:
    triggers = Consumer(
        service=SERVICE, purpose="workorder-triggers", source_service="workorder", on_driver=True
    )

    @triggers.on(BranchOpened)
    async def on_branch(ctx: HandlerContext, event: BranchOpened) -> None:
        await queries.upsert_branch(
            ctx.unit, event.branch_id, name=event.branch_name, timezone=event.timezone
        )

    @triggers.on(BranchUpdated)
    async def on_branch_updated(ctx: HandlerContext, event: BranchUpdated) -> None:
        await queries.upsert_branch(
            ctx.unit, event.branch_id, name=event.branch_name, timezone=event.timezone
        )

    @triggers.on(StaffMemberAdded)
    async def on_staff(ctx: HandlerContext, event: StaffMemberAdded) -> None:
        await staff_alerts.staff_member_added(
            ctx.unit, _branch(ctx), event.staff_id, event.role, event.display_name
        )

    @triggers.on(WorkOrderStageOverdue)
    async def on_stage_overdue(ctx: HandlerContext, event: WorkOrderStageOverdue) -> None:
        await staff_alerts.alert_managers(
            service.delivery,
            ctx.unit,
            event,
            passage_id=ctx.envelope.aggregate_id,
            branch_id=_branch(ctx),
            now=ctx.clock.now(),
        )

    @triggers.on(CustomerIntroduced)
    async def on_introduced(ctx: HandlerContext, event: CustomerIntroduced) -> None:
        # workorder met the customer first (a booking, a walk-in): reachable before customer-profile says so.
        # Once customer-profile has spoken of the customer, its word on their phones stands (a phone the
        # customer removed is not put back by a later booking).
        if await queries.known_to_profile(ctx.unit, event.customer_id):
            return
        await queries.upsert_contact(
            ctx.unit, event.customer_id, full_name=event.full_name, phone=event.phone
        )

    @triggers.on(AppointmentBooked)
    async def on_booked(ctx: HandlerContext, event: AppointmentBooked) -> None:
        branch_id = _branch(ctx)
        await queries.book_appointment(
            ctx.unit,
            event.appointment_id,
            branch_id=branch_id,
            customer_id=event.customer_id,
            plate=event.plate,
            slot_start=event.slot.start,
            service_requested=event.service_requested,
        )
        await service.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=Trigger.APPOINTMENT_BOOKED,
                purpose=Purpose.SERVICE,
                customer_id=event.customer_id,
                cause=str(ctx.envelope.event_id),
                correlation_id=ctx.envelope.correlation_id,
                due_at=ctx.clock.now(),
                branch_id=branch_id,
                context=await service.appointment_variables(ctx.unit, event.appointment_id),
                related=Related(appointment_id=event.appointment_id),
            ),
        )
        await service.schedule_appointment_reminders(
            ctx.unit, event.appointment_id, event.slot.start, ctx.clock.now(), ctx.envelope.correlation_id
        )

    @triggers.on(AppointmentRescheduled)
    async def on_rescheduled(ctx: HandlerContext, event: AppointmentRescheduled) -> None:
        await queries.update_appointment(ctx.unit, event.appointment_id, slot_start=event.slot.start)
        await service.schedule_appointment_reminders(
            ctx.unit, event.appointment_id, event.slot.start, ctx.clock.now(), ctx.envelope.correlation_id
        )

    @triggers.on(WaitlistSlotOffered)
    async def on_waitlist_offer(ctx: HandlerContext, event: WaitlistSlotOffered) -> None:
        await service.offer_waitlist_place(ctx.unit, _branch(ctx), event, ctx.envelope)

    async def appointment_over(ctx: HandlerContext, appointment_id: str, status: str) -> None:
        await queries.update_appointment(ctx.unit, appointment_id, status=status)
        await cancel_prefixed(ctx.unit, APPOINTMENT_REMINDER, f"{appointment_id}:", now=ctx.clock.now())

    @triggers.on(AppointmentCancelled)
    async def on_cancelled(ctx: HandlerContext, event: AppointmentCancelled) -> None:
        await appointment_over(ctx, event.appointment_id, "cancelled")

    @triggers.on(AppointmentArrived)
    async def on_arrived(ctx: HandlerContext, event: AppointmentArrived) -> None:
        await appointment_over(ctx, event.appointment_id, "arrived")

    @triggers.on(AppointmentNoShow)
    async def on_no_show(ctx: HandlerContext, event: AppointmentNoShow) -> None:
        await appointment_over(ctx, event.appointment_id, "no_show")

    @triggers.on(WorkOrderOpened)
    async def on_opened(ctx: HandlerContext, event: WorkOrderOpened) -> None:
        await queries.open_work_order(
            ctx.unit,
            event.work_order_id,
            branch_id=_branch(ctx),
            customer_id=event.customer_id,
            plate=event.plate,
            advisor_id=event.advisor_id,
        )

    async def about_the_order(
        ctx: HandlerContext, work_order_id: str, trigger: Trigger, **variables: Any
    ) -> None:
        order = await queries.work_order(ctx.unit, work_order_id)
        if order is None:
            raise LookupError(f"work order {work_order_id} not opened yet")  # retried in order
        now = ctx.clock.now()
        await service.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=trigger,
                purpose=Purpose.SERVICE,
                customer_id=order["customer_id"],
                cause=str(ctx.envelope.event_id),
                correlation_id=ctx.envelope.correlation_id,
                due_at=now,
                branch_id=order["branch_id"],
                context={
                    "plate": order["plate"] or "",
                    "link": service.links.work_order_page(work_order_id, order["branch_id"], now),
                    **variables,
                },
                related=Related(work_order_id=work_order_id),
            ),
        )

    @triggers.on(ProgressRecorded)
    async def on_progress(ctx: HandlerContext, event: ProgressRecorded) -> None:
        await about_the_order(
            ctx, event.work_order_id, Trigger.WORK_ORDER_PROGRESS, progress=event.text[:200]
        )

    @triggers.on(AddOnProposed)
    async def on_add_on(ctx: HandlerContext, event: AddOnProposed) -> None:
        await about_the_order(
            ctx,
            event.work_order_id,
            Trigger.ADD_ON_PROPOSED,
            item=event.item,
            price=_yuan(event.price_fen),
            reason=event.reason[:200],
        )

    @triggers.on(WorkOrderCompleted)
    async def on_completed(ctx: HandlerContext, event: WorkOrderCompleted) -> None:
        await queries.complete_work_order(
            ctx.unit,
            event.work_order_id,
            branch_id=event.branch_id,
            customer_id=event.customer_id,
            plate=event.plate,
            advisor_id=event.advisor_id,
            technician_ids=event.technician_ids,
            completed_at=event.completed_at,
        )
        await service.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=Trigger.WORK_ORDER_COMPLETED,
                purpose=Purpose.SERVICE,
                customer_id=event.customer_id,
                cause=str(ctx.envelope.event_id),
                correlation_id=ctx.envelope.correlation_id,
                due_at=ctx.clock.now(),
                branch_id=event.branch_id,
                context={"plate": event.plate, "total": _yuan(event.total_fen)},
                related=Related(work_order_id=event.work_order_id),
            ),
        )
        await service.surveys.visit_completed(
            ctx.unit,
            work_order_id=event.work_order_id,
            customer_id=event.customer_id,
            branch_id=event.branch_id,
            advisor_id=event.advisor_id,
            technician_ids=event.technician_ids,
            completed_at=event.completed_at,
            correlation_id=ctx.envelope.correlation_id,
        )

    @triggers.on(WorkOrderVoided)
    async def on_voided(ctx: HandlerContext, event: WorkOrderVoided) -> None:
        await queries.void_work_order(ctx.unit, event.work_order_id, ctx.envelope.occurred_at)
        await service.surveys.visit_voided(ctx.unit, event.work_order_id, ctx.clock.now())

    return triggers


def _reminder_triggers(service: Notification) -> Consumer:
    reminders = Consumer(
        service=SERVICE, purpose="reminder-triggers", source_service="reminder", on_driver=True
    )

    @reminders.on(ReminderDue)
    async def on_due(ctx: HandlerContext, event: ReminderDue) -> None:
        now = ctx.clock.now()
        contact = await queries.contact(ctx.unit, event.customer_id)
        locale = (contact or {}).get("locale") or "zh-CN"
        await service.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=Trigger.REMINDER_DUE,
                purpose=Purpose.SERVICE,
                customer_id=event.customer_id,
                cause=str(ctx.envelope.event_id),
                correlation_id=ctx.envelope.correlation_id,
                # The reminder's moment, not ours: what reminder sends one vehicle at once (one transaction,
                # one instant) falls into one batch here, gathered for a minute, and goes out as one message.
                due_at=ctx.envelope.occurred_at + service.delivery.policy.reminder_gather,
                branch_id=event.preferred_branch_id,
                context={
                    "plate": await queries.vehicle_plate(ctx.unit, event.vehicle_id) or "",
                    "reminder": reminder_phrase(event.kind.value, locale),
                    "due_on": event.due_on.isoformat() if event.due_on else "",
                    "due_mileage_km": str(event.due_mileage_km or ""),
                    "link": service.links.booking(
                        AttributionKind.REMINDER, event.reminder_id, event.preferred_branch_id, now
                    ),
                    "answer_link": service.links.reminder_answer(event.reminder_id, now),
                },
                related=Related(reminder_id=event.reminder_id),
                # The rule's channel first, then the chain's order for the rest.
                channels=_first(event.channel, service.delivery.channel_order),
                template=event.template,
            ),
        )

    return reminders


def _first(channel: Channel | None, order: tuple[Channel, ...]) -> tuple[Channel, ...] | None:
    if channel is None:
        return None
    return (channel, *(other for other in order if other is not channel))


def _branch(ctx: HandlerContext) -> str:
    if ctx.envelope.branch_id is None:
        raise ValueError(f"{ctx.envelope.event_type} carries no branch")
    return ctx.envelope.branch_id


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"
