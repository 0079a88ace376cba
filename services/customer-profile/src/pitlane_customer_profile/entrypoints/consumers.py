"""What other services tell us, kept in the 360° read model: visits and spend (workorder), the latest NPS
answer and unsubscribes, which withdraw consent (notification), the next reminders (reminder). Each handler runs in one transaction with its inbox
row, so a redelivered event has no second effect.

One consumer reads our own stream: after CustomerErased is published, it scrubs the published copies of the
customer's personal events from the stream, the dead letters and the replays (ADR 0006, 0013).
"""

from __future__ import annotations

import logging

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters import profile_queries, projections
from pitlane_customer_profile.adapters.erasure import personal_event_ids, personal_subjects
from pitlane_customer_profile.adapters.event_store import ProfileEventStore
from pitlane_customer_profile.adapters.profile_writer import fold_merged_customers
from pitlane_customer_profile.adapters.tables import (
    customers,
    declined_add_ons,
    erasures,
    reminders,
    vehicles,
    visits,
    work_order_refs,
)
from pitlane_customer_profile.domain.customer import ConsentDecision, Customer
from pitlane_customer_profile.domain.vehicle import MileageOutcome, Vehicle
from pitlane_customer_profile.service_layer.unit_of_work import UnitOfWork
from pitlane_events import Actor
from pitlane_events.customer_profile import ConsentSource, CustomerErased, CustomerSource, MileageSource
from pitlane_events.notification import CustomerUnsubscribed, NpsAnswered, UnsubscribeSource
from pitlane_events.reminder import ReminderCancelled, ReminderDue, ReminderRescheduled, ReminderScheduled
from pitlane_events.types import AddOnDecision
from pitlane_events.workorder import (
    AddOnDeclined,
    BookingChannel,
    CustomerIntroduced,
    VehicleIntroduced,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderVoided,
)
from pitlane_platform.errors import NotFoundError
from pitlane_platform.messaging.consumer import Consumer, HandlerContext, advance_read_model
from pitlane_platform.messaging.erasure import scrub_event_copies
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

SERVICE = "customer-profile"
MAX_MERGE_HOPS = 100
# How workorder met a customer, as the customer's source; a booking taken by staff is the shop's own contact.
MET_THROUGH = {
    BookingChannel.ONLINE: CustomerSource.ONLINE_BOOKING,
    BookingChannel.PHONE: CustomerSource.PHONE,
    BookingChannel.WALK_IN: CustomerSource.WALK_IN,
    BookingChannel.STAFF: CustomerSource.WALK_IN,
}
UNSUBSCRIBE_SOURCES = {
    UnsubscribeSource.LINK: ConsentSource.UNSUBSCRIBE_LINK,
    UnsubscribeSource.SMS_REPLY: ConsentSource.SMS_REPLY,
    UnsubscribeSource.WECHAT_MENU: ConsentSource.UNSUBSCRIBE_LINK,  # the customer's own action, like the link
    UnsubscribeSource.STAFF: ConsentSource.STAFF,
}


async def surviving_customer_id(session: AsyncSession, customer_id: str) -> str:
    """Events about a duplicate that was merged count for the customer it was merged into — through every
    later merge: a customer merged into one that was merged itself counts for the last survivor.

    Each row on the way is key-share locked until the handler commits, which a merge's lock waits for
    (handlers.merge_customers): a merge under way finishes first and the event counts for its survivor, or it
    waits for the event and then folds what the event added. Read without the lock, a visit completed during
    a merge stayed with the merged record. (An erasure's updates do not wait for a key-share lock.)"""
    for _ in range(MAX_MERGE_HOPS):
        merged_into = await session.scalar(
            select(customers.c.merged_into)
            .where(customers.c.customer_id == customer_id)
            .with_for_update(read=True, key_share=True)
        )
        if merged_into is None:
            return customer_id
        customer_id = merged_into
    raise RuntimeError(f"customer {customer_id}: more than {MAX_MERGE_HOPS} merges in a row")


def chain_wide(ctx: HandlerContext) -> CommandContext:
    """For our events caused by another service's: customers and vehicles are chain-wide, so the event
    carries no branch id even when its cause (a work order, a survey) belongs to a branch."""
    return CommandContext(
        actor=Actor.service(SERVICE),
        chain_id=ctx.envelope.chain_id,
        occurred_at=ctx.clock.now(),
        caused_by=ctx.envelope,
    )


async def record_mileage(
    ctx: HandlerContext,
    store: ProfileEventStore,
    vehicle_id: str,
    mileage_km: int,
    source: MileageSource,
    work_order_id: str,
    correction: str | None = None,
) -> None:
    """A reading from a work order moves the vehicle's odometer (VehicleMileageRecorded, which reminder
    schedules by), back too when workorder accepted it as a correction; the same reading again records
    nothing, and a lower one without a correction is set aside, with a warning that says so."""
    uow = UnitOfWork(ctx.session, store)
    try:
        vehicle = await uow.vehicle(vehicle_id)
    except NotFoundError:
        return  # not a vehicle of ours (or erased): nothing to move
    context = chain_wide(ctx)
    outcome = vehicle.record_mileage(
        mileage_km,
        source=source,
        recorded_at=ctx.envelope.occurred_at,
        work_order_id=work_order_id,
        correction=correction,
        at=context.occurred_at,
    )
    if outcome is MileageOutcome.RECORDED:
        await uow.commit(context)
    elif outcome is MileageOutcome.SET_ASIDE:
        logger.warning(
            "mileage reading set aside: below the last reading and not a correction",
            extra={
                "vehicle_id": vehicle_id,
                "work_order_id": work_order_id,
                "mileage_km": mileage_km,
                "last_mileage_km": vehicle.mileage_km,
            },
        )


def build_consumers(runtime: ServiceRuntime, store: ProfileEventStore) -> list[Consumer]:
    work = Consumer(service=SERVICE, purpose="visits", source_service="workorder")

    @work.on(WorkOrderOpened)
    async def on_opened(ctx: HandlerContext, event: WorkOrderOpened) -> None:
        await projections.refer_to_work_order(
            ctx.unit, event.work_order_id, event.customer_id, event.vehicle_id
        )
        await record_mileage(
            ctx,
            store,
            event.vehicle_id,
            event.mileage_km,
            MileageSource.CHECK_IN,
            event.work_order_id,
            correction=event.mileage_correction,
        )

    @work.on(CustomerIntroduced)
    async def on_customer_introduced(ctx: HandlerContext, event: CustomerIntroduced) -> None:
        """Adopt workorder's id for a customer it met first (ADR 11). If the phone is a customer's already —
        registered a moment before the booking — the new id is registered and merged into that customer at
        once, so every visit under it counts for the one customer. Visits its completions stored before it
        was introduced count for it from the start (`count_stored_visits`)."""
        await projections.lock_figures(ctx.unit, customer_id=event.customer_id)
        if await profile_queries.customer_state(ctx.session, event.customer_id) is not None:
            return  # adopted already
        context = chain_wide(ctx)
        uow = UnitOfWork(ctx.session, store)
        newcomer = Customer.register(
            event.customer_id,
            full_name=event.full_name,
            phone=event.phone,
            source=MET_THROUGH[event.met_through],
            registered_at_branch_id=ctx.envelope.branch_id,
            at=context.occurred_at,
        )
        uow.add(newcomer)
        holder = await profile_queries.customer_id_by_phone(ctx.session, event.phone)
        if holder is None:
            await uow.commit(context)
            await projections.count_stored_visits(ctx.unit, customer_id=newcomer.id)
            return
        survivor = await uow.customer(holder)
        survivor.absorb(
            [newcomer], "met by workorder under a phone already registered", at=context.occurred_at
        )
        await uow.commit(context)
        await projections.count_stored_visits(ctx.unit, customer_id=newcomer.id)
        await fold_merged_customers(ctx.session, survivor.id, [newcomer.id])

    @work.on(VehicleIntroduced)
    async def on_vehicle_introduced(ctx: HandlerContext, event: VehicleIntroduced) -> None:
        """Adopt workorder's id for a car it met first, owned by the owner's surviving record. A plate the
        chain already knows under another id keeps that vehicle: visits still name the plate. Visits stored
        before the car was introduced count for it from the start."""
        await projections.lock_figures(ctx.unit, vehicle_id=event.vehicle_id)
        uow = UnitOfWork(ctx.session, store)
        try:
            await uow.vehicle(event.vehicle_id)
            return  # adopted already
        except NotFoundError:
            pass
        if await profile_queries.vehicle_by_plate(ctx.session, event.plate) is not None:
            return
        owner = await surviving_customer_id(ctx.session, event.owner_customer_id)
        state = await profile_queries.customer_state(ctx.session, owner)
        if state is None:
            # The owner's introduction has not been applied yet: failing holds this car back and retries.
            raise NotFoundError(f"owner {owner} of introduced vehicle {event.vehicle_id} is not known yet")
        if state["erased_at"] is not None:
            return
        context = chain_wide(ctx)
        uow.add(
            Vehicle.register(
                event.vehicle_id,
                owner_customer_id=owner,
                plate=event.plate,
                brand=event.brand,
                model=event.model,
                vin=event.vin,
                at=context.occurred_at,
            )
        )
        await uow.commit(context)
        await projections.count_stored_visits(ctx.unit, vehicle_id=event.vehicle_id)

    @work.on(WorkOrderCompleted)
    async def on_completed(ctx: HandlerContext, event: WorkOrderCompleted) -> None:
        """Store the visit and count it for its customer and vehicle — for those whose introduction is not
        applied yet, their row counts it when it appears (ADR 11 addendum)."""
        await projections.lock_figures(ctx.unit, customer_id=event.customer_id, vehicle_id=event.vehicle_id)
        customer_id = await surviving_customer_id(ctx.session, event.customer_id)
        recorded = await projections.record_visit(
            ctx.unit,
            {
                "work_order_id": event.work_order_id,
                "customer_id": customer_id,
                "vehicle_id": event.vehicle_id,
                "branch_id": event.branch_id,
                "plate": event.plate,
                "mileage_km": event.mileage_km,
                "opened_at": event.opened_at,
                "completed_at": event.completed_at,
                "total_fen": event.total_fen,
                "paid_fen": event.paid_fen,
                "line_items": [line.model_dump(mode="json") for line in event.line_items],
            },
        )
        if not recorded:
            return
        for table, key, owner in (
            (customers, customers.c.customer_id, customer_id),
            (vehicles, vehicles.c.vehicle_id, event.vehicle_id),
        ):
            latest = table.c.last_service_at.is_(None) | (table.c.last_service_at <= event.completed_at)
            await ctx.session.execute(
                update(table)
                .where(key == owner)
                .values(
                    visit_count=table.c.visit_count + 1,
                    total_spend_fen=table.c.total_spend_fen + event.total_fen,
                    # A completion delivered late must not roll the last service back.
                    last_service_mileage_km=case(
                        (latest, event.mileage_km), else_=table.c.last_service_mileage_km
                    ),
                    last_service_at=func.greatest(table.c.last_service_at, event.completed_at),
                )
            )
        done = {line.name for line in event.line_items} | {line.item_code for line in event.line_items}
        await ctx.session.execute(
            update(declined_add_ons)
            .where(
                declined_add_ons.c.vehicle_id == event.vehicle_id,
                declined_add_ons.c.done_in_work_order_id.is_(None),
                declined_add_ons.c.work_order_id != event.work_order_id,
                declined_add_ons.c.item.in_(done),
            )
            .values(done_in_work_order_id=event.work_order_id)
        )
        for add_on in event.add_ons:
            if add_on.decision is AddOnDecision.DECLINED:
                await projections.record_declined_add_on(
                    ctx.unit,
                    {
                        "add_on_id": add_on.add_on_id,
                        "work_order_id": event.work_order_id,
                        "customer_id": customer_id,
                        "vehicle_id": event.vehicle_id,
                        "item": add_on.item,
                        "category": add_on.category.value,
                        "price_fen": add_on.price_fen,
                        "declined_at": event.completed_at,
                    },
                    from_summary=True,
                )
        await record_mileage(
            ctx, store, event.vehicle_id, event.mileage_km, MileageSource.WORK_ORDER, event.work_order_id
        )

    @work.on(AddOnDeclined)
    async def on_declined(ctx: HandlerContext, event: AddOnDeclined) -> None:
        ref = (
            await ctx.session.execute(
                select(work_order_refs).where(work_order_refs.c.work_order_id == event.work_order_id)
            )
        ).first()
        if ref is None:
            return  # opened before we listened; the completion's add-on summary brings it
        await projections.record_declined_add_on(
            ctx.unit,
            {
                "add_on_id": event.add_on_id,
                "work_order_id": event.work_order_id,
                "customer_id": await surviving_customer_id(ctx.session, ref.customer_id),
                "vehicle_id": ref.vehicle_id,
                "item": event.item,
                "category": event.category.value,
                "price_fen": event.price_fen,
                "declined_at": event.decided_at,
                "reason": event.reason,
            },
            from_summary=False,
        )

    @work.on(WorkOrderVoided)
    async def on_voided(ctx: HandlerContext, event: WorkOrderVoided) -> None:
        counted_for = (
            await ctx.session.execute(
                select(visits.c.customer_id, visits.c.vehicle_id).where(
                    visits.c.work_order_id == event.work_order_id
                )
            )
        ).first()
        if counted_for is None:
            return
        await projections.lock_figures(
            ctx.unit, customer_id=counted_for.customer_id, vehicle_id=counted_for.vehicle_id
        )
        voided = (
            await ctx.session.execute(
                update(visits)
                .where(visits.c.work_order_id == event.work_order_id, visits.c.voided.is_(False))
                .values(voided=True)
                .returning(visits.c.customer_id, visits.c.vehicle_id, visits.c.total_fen)
            )
        ).first()
        if voided is None:
            return
        for table, key, owner in (
            (customers, customers.c.customer_id, voided.customer_id),
            (vehicles, vehicles.c.vehicle_id, voided.vehicle_id),
        ):
            await ctx.session.execute(
                update(table)
                .where(key == owner)
                .values(
                    visit_count=table.c.visit_count - 1,
                    total_spend_fen=table.c.total_spend_fen - voided.total_fen,
                )
            )

    nps = Consumer(service=SERVICE, purpose="nps-and-consent", source_service="notification")

    @nps.on(NpsAnswered)
    async def on_nps(ctx: HandlerContext, event: NpsAnswered) -> None:
        answered_at = ctx.envelope.occurred_at
        await ctx.session.execute(
            update(customers)
            .where(
                customers.c.customer_id == await surviving_customer_id(ctx.session, event.customer_id),
                customers.c.erased_at.is_(None),
                customers.c.latest_nps_at.is_(None) | (customers.c.latest_nps_at < answered_at),
            )
            .values(latest_nps_score=event.score, latest_nps_comment=event.comment, latest_nps_at=answered_at)
        )

    @nps.on(CustomerUnsubscribed)
    async def on_unsubscribed(ctx: HandlerContext, event: CustomerUnsubscribed) -> None:
        """Consent is ours: an unsubscribe taken by notification becomes a withdrawn consent here."""
        uow = UnitOfWork(ctx.session, store)
        try:
            customer = await uow.customer(await surviving_customer_id(ctx.session, event.customer_id))
        except NotFoundError:
            return  # erased meanwhile: nothing left to withdraw
        context = chain_wide(ctx)
        customer.decide_consent(
            ConsentDecision(event.channel, event.purpose, granted=False),
            UNSUBSCRIBE_SOURCES[event.source],
            at=context.occurred_at,
        )
        await uow.commit(context)

    reminder = Consumer(service=SERVICE, purpose="reminders", source_service="reminder")

    async def newer(ctx: HandlerContext, reminder_id: str) -> bool:
        return await advance_read_model(ctx.session, "reminders", reminder_id, ctx.envelope.aggregate_version)

    @reminder.on(ReminderScheduled)
    async def on_scheduled(ctx: HandlerContext, event: ReminderScheduled) -> None:
        if await newer(ctx, event.reminder_id):
            await projections.schedule_reminder(
                ctx.unit,
                reminder_id=event.reminder_id,
                customer_id=await surviving_customer_id(ctx.session, event.customer_id),
                vehicle_id=event.vehicle_id,
                kind=event.kind.value,
                due_on=event.due_on,
                due_mileage_km=event.due_mileage_km,
            )

    @reminder.on(ReminderRescheduled)
    async def on_rescheduled(ctx: HandlerContext, event: ReminderRescheduled) -> None:
        if await newer(ctx, event.reminder_id):
            await ctx.session.execute(
                update(reminders)
                .where(reminders.c.reminder_id == event.reminder_id)
                .values(due_on=event.due_on, due_mileage_km=event.due_mileage_km, status="scheduled")
            )

    @reminder.on(ReminderDue)
    async def on_due(ctx: HandlerContext, event: ReminderDue) -> None:
        if await newer(ctx, event.reminder_id):
            await ctx.session.execute(
                update(reminders).where(reminders.c.reminder_id == event.reminder_id).values(status="due")
            )

    @reminder.on(ReminderCancelled)
    async def on_cancelled(ctx: HandlerContext, event: ReminderCancelled) -> None:
        if await newer(ctx, event.reminder_id):
            await ctx.session.execute(
                update(reminders)
                .where(reminders.c.reminder_id == event.reminder_id)
                .values(status="cancelled")
            )

    scrubber = Consumer(service=SERVICE, purpose="erasure-scrubber", source_service=SERVICE)

    @scrubber.on(CustomerErased)
    async def on_erased(ctx: HandlerContext, event: CustomerErased) -> None:
        if runtime.nats is None:
            raise RuntimeError("not connected to NATS yet")  # retried with back-off
        merged = await profile_queries.absorbed_customers(ctx.session, event.customer_id)
        event_ids = await personal_event_ids(ctx.session, [event.customer_id, *merged])
        await scrub_event_copies(
            runtime.nats.jetstream(),
            stream=stream_name(SERVICE),
            subjects=personal_subjects(),
            event_ids=event_ids,
        )
        await ctx.session.execute(
            update(erasures)
            .where(erasures.c.erasure_request_id == event.erasure_request_id)
            .values(stream_messages_scrubbed_at=ctx.clock.now())
        )

    return [work, nps, reminder, scrubber]
