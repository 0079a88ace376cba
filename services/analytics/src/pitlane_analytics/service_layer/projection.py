"""What events make of the facts: one writer per event type, taking the transaction and the events of that
type (envelope and event, in stream order). The consumers call these, one event at a time live; a rebuild
replays the streams through the same writers into fresh tables, a batch of each type at once. A writer reads
nothing back: each fact row ends the same in any order of arrival (adapters/facts.py), which is what lets a
rebuild apply a batch type by type (`Consumer.on_many`).

The headline's projections follow the facts in the same transaction: after the writer, a type's follower
(`FOLLOWERS`) recomputes the customers whose visits the events may have changed (adapters/kpi_projections.py).
A follower reads the facts, all of them written by then, so it too ends the same in any order of arrival.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_analytics.adapters import tables
from pitlane_analytics.adapters.facts import (
    CustomerMerge,
    Merge,
    delete_answers_of,
    insert_rows,
    merge_customers,
    merge_rows,
)
from pitlane_analytics.adapters.kpi_projections import (
    hold_projections,
    recompute_appointment_customers,
    recompute_customers,
    recompute_customers_of_appointments,
    recompute_customers_of_orders,
    recount,
    recount_answers_of,
    recount_near_add_ons,
    recount_near_bookings,
    recount_near_orders,
)
from pitlane_events import DomainEvent, Envelope
from pitlane_events.customer_profile import CustomerErased, CustomersMerged
from pitlane_events.notification import (
    AudienceGroup,
    CampaignAudienceDrawn,
    CampaignLaunched,
    CampaignSent,
    NpsAnswered,
    NpsSurveySent,
)
from pitlane_events.reminder import ReminderDue
from pitlane_events.workorder import (
    AddOnApproved,
    AddOnDeclined,
    AddOnProposed,
    AppointmentArrived,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    AppointmentRescheduled,
    BranchOpened,
    BranchUpdated,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderVoided,
)
from pitlane_platform.db import Unit

Events = Sequence[tuple[Envelope[Any], Any]]
Writer = Callable[[Unit, Events], Awaitable[None]]
WRITERS: dict[type[DomainEvent], Writer] = {}
Follower = Callable[[Unit, Events, ZoneInfo], Awaitable[None]]
FOLLOWERS: dict[type[DomainEvent], Follower] = {}


def writes(model: type[DomainEvent]) -> Callable[[Writer], Writer]:
    def register(writer: Writer) -> Writer:
        WRITERS[model] = writer
        return writer

    return register


def follows(*models: type[DomainEvent]) -> Callable[[Follower], Follower]:
    """Register a follower, which runs holding the projections (`hold_projections`): of two consumers whose
    facts meet (a reminder, and a visit of its vehicle written at the same time by another), the one that
    follows second sees the other's facts, committed by then."""

    def register(follower: Follower) -> Follower:
        async def holding(unit: Unit, events: Events, zone: ZoneInfo) -> None:
            await hold_projections(unit)
            await follower(unit, events, zone)

        for model in models:
            FOLLOWERS[model] = holding
        return follower

    return register


def _event_id(envelope: Envelope[Any]) -> str:
    return str(envelope.event_id)


# ---- workorder: work orders --------------------------------------------------------------------------------


@writes(WorkOrderOpened)
async def work_orders_opened(unit: Unit, events: Events) -> None:
    rows = [
        Merge(
            event.work_order_id,
            {
                "customer_id": event.customer_id,
                "vehicle_id": event.vehicle_id,
                "branch_id": envelope.branch_id,
                "advisor_id": event.advisor_id,
                "appointment_id": event.appointment_id,
                "process_scope": event.process.scope.value,
                "process_version": event.process.version,
            },
            _event_id(envelope),
        )
        for envelope, event in events
    ]
    await merge_rows(unit, tables.work_orders, rows, authoritative=False)


@writes(WorkOrderCompleted)
async def work_orders_completed(unit: Unit, events: Events) -> None:
    orders: list[Merge] = []
    lines: list[dict[str, Any]] = []
    for envelope, event in events:
        coupons = {event.coupon_code} | {d.coupon_code for d in event.discounts}
        orders.append(
            Merge(
                event.work_order_id,
                {
                    "customer_id": event.customer_id,
                    "vehicle_id": event.vehicle_id,
                    "branch_id": event.branch_id,
                    "advisor_id": event.advisor_id,
                    "technician_ids": list(event.technician_ids),
                    "appointment_id": event.appointment_id,
                    "coupon_codes": sorted(code for code in coupons if code is not None),
                    "completed_at": event.completed_at,
                    "paid_fen": event.paid_fen,
                },
                _event_id(envelope),
            )
        )
        # Numbered in the order the bill lists them.
        lines.extend(
            {
                "work_order_id": event.work_order_id,
                "line_no": number,
                "item_code": line.item_code,
                "name": line.name,
                "category": line.category.value,
                "quantity": line.quantity,
                "revenue_fen": line.line_total_fen,
                "cost_fen": line.cost_fen,
                "add_on_id": line.add_on_id,
                "event_id": _event_id(envelope),
            }
            for number, line in enumerate(event.line_items, start=1)
        )
    await merge_rows(unit, tables.work_orders, orders, authoritative=True)
    await insert_rows(unit, tables.visit_lines, lines)
    passages = [
        {
            "work_order_id": event.work_order_id,
            "stage": passage.stage.value,
            "occurrence": passage.occurrence,
            "add_on_id": passage.add_on_id,
            "entered_at": passage.entered_at,
            "completed_at": passage.completed_at,
            "due_at": passage.due_at,
            "event_id": _event_id(envelope),
        }
        for envelope, event in events
        for passage in event.stages
    ]
    await insert_rows(unit, tables.stage_passages, passages)


@writes(BranchOpened)
@writes(BranchUpdated)
async def branches_described(unit: Unit, events: Events) -> None:
    # One branch's events arrive in order: what the latest names replaces what the row holds (an update
    # leaves the fields it does not name as None, which keeps them).
    rows = [
        Merge(event.branch_id, {"name": event.branch_name, "timezone": event.timezone}, _event_id(envelope))
        for envelope, event in events
    ]
    await merge_rows(unit, tables.branches, rows, authoritative=True)


@writes(WorkOrderVoided)
async def work_orders_voided(unit: Unit, events: Events) -> None:
    rows = [
        Merge(
            event.work_order_id,
            {"customer_id": event.customer_id, "voided_at": envelope.occurred_at},
            _event_id(envelope),
        )
        for envelope, event in events
    ]
    await merge_rows(unit, tables.work_orders, rows, authoritative=False, earliest=("voided_at",))


# ---- workorder: appointments ---------------------------------------------------------------------------------


def _appointment(envelope: Envelope[Any], appointment_id: str, customer_id: str, **facts: Any) -> Merge:
    return Merge(
        appointment_id,
        {"customer_id": customer_id, "branch_id": envelope.branch_id, **facts},
        _event_id(envelope),
    )


@writes(AppointmentBooked)
async def appointments_booked(unit: Unit, events: Events) -> None:
    rows = [
        _appointment(
            envelope,
            event.appointment_id,
            event.customer_id,
            vehicle_id=event.vehicle_id,
            channel=event.channel.value,
            campaign_id=event.campaign_id,
            reminder_id=event.reminder_id,
            booked_at=envelope.occurred_at,
        )
        for envelope, event in events
    ]
    await merge_rows(unit, tables.appointments, rows, authoritative=True)


@writes(AppointmentRescheduled)
async def appointments_rescheduled(unit: Unit, events: Events) -> None:
    # The slot does not change any KPI; the event is still one behind the appointment's figures.
    rows = [_appointment(envelope, event.appointment_id, event.customer_id) for envelope, event in events]
    await merge_rows(unit, tables.appointments, rows, authoritative=True)


@writes(AppointmentCancelled)
async def appointments_cancelled(unit: Unit, events: Events) -> None:
    rows = [
        _appointment(envelope, event.appointment_id, event.customer_id, cancelled_at=envelope.occurred_at)
        for envelope, event in events
    ]
    await merge_rows(unit, tables.appointments, rows, authoritative=True)


@writes(AppointmentNoShow)
async def appointments_no_show(unit: Unit, events: Events) -> None:
    rows = [
        _appointment(envelope, event.appointment_id, event.customer_id, no_show_at=envelope.occurred_at)
        for envelope, event in events
    ]
    await merge_rows(unit, tables.appointments, rows, authoritative=True)


@writes(AppointmentArrived)
async def appointments_arrived(unit: Unit, events: Events) -> None:
    rows = [
        _appointment(
            envelope,
            event.appointment_id,
            event.customer_id,
            arrived_at=event.arrived_at,
            work_order_id=event.work_order_id,
        )
        for envelope, event in events
    ]
    await merge_rows(unit, tables.appointments, rows, authoritative=True)


# ---- workorder: add-ons --------------------------------------------------------------------------------------


@writes(AddOnProposed)
async def add_ons_proposed(unit: Unit, events: Events) -> None:
    rows = [
        Merge(
            event.add_on_id,
            {
                "work_order_id": event.work_order_id,
                "item": event.item,
                "item_code": event.item_code,
                "category": event.category.value,
                "price_fen": event.price_fen,
                "proposed_at": envelope.occurred_at,
            },
            _event_id(envelope),
        )
        for envelope, event in events
    ]
    await merge_rows(unit, tables.add_ons, rows, authoritative=True)


async def _decided(unit: Unit, events: Events, when: str) -> None:
    # The item and quote as the customer saw them fill what a proposal not seen yet would have given; the
    # earliest decision of each kind counts.
    rows = [
        Merge(
            event.add_on_id,
            {
                "work_order_id": event.work_order_id,
                "item": event.item,
                "category": event.category.value,
                "price_fen": event.price_fen,
                when: event.decided_at,
            },
            _event_id(envelope),
        )
        for envelope, event in events
    ]
    await merge_rows(unit, tables.add_ons, rows, authoritative=False, earliest=(when,))


@writes(AddOnApproved)
async def add_ons_approved(unit: Unit, events: Events) -> None:
    await _decided(unit, events, "approved_at")


@writes(AddOnDeclined)
async def add_ons_declined(unit: Unit, events: Events) -> None:
    await _decided(unit, events, "declined_at")


# ---- notification --------------------------------------------------------------------------------------------


@writes(NpsSurveySent)
async def surveys_sent(unit: Unit, events: Events) -> None:
    rows = [
        {
            "survey_id": event.survey_id,
            "work_order_id": event.work_order_id,
            "branch_id": event.branch_id,
            "sent_at": envelope.occurred_at,
            "event_id": _event_id(envelope),
        }
        for envelope, event in events
    ]
    await insert_rows(unit, tables.surveys, rows)


@writes(NpsAnswered)
async def nps_answered(unit: Unit, events: Events) -> None:
    # The comment stays with notification: it is the customer's own words. An answer of a customer erased
    # already is kept out: its event is scrubbed from the stream (see customers_erased).
    rows = [
        {
            "survey_id": event.survey_id,
            "work_order_id": event.work_order_id,
            "customer_id": event.customer_id,
            "branch_id": event.branch_id,
            "advisor_id": event.advisor_id,
            "technician_ids": list(event.technician_ids),
            "score": event.score,
            "answered_at": envelope.occurred_at,
            "event_id": _event_id(envelope),
        }
        for envelope, event in events
    ]
    await insert_rows(unit, tables.nps_answers, rows, unless_erased="customer_id")


@writes(CampaignLaunched)
async def campaigns_launched(unit: Unit, events: Events) -> None:
    rows = [
        {
            "campaign_id": event.campaign_id,
            "name": event.campaign_name,
            "cost_fen": event.cost_fen,
            "attribution_window_days": event.attribution_window_days,
            "starts_on": event.starts_on,
            "ends_on": event.ends_on,
            "coupon_codes": list(event.coupon_codes),
            "branch_ids": list(event.branch_ids),
            "event_id": _event_id(envelope),
        }
        for envelope, event in events
    ]
    await insert_rows(unit, tables.campaigns, rows)


@writes(CampaignSent)
async def campaigns_sent(unit: Unit, events: Events) -> None:
    rows = [
        {
            "event_id": _event_id(envelope),
            "campaign_id": event.campaign_id,
            "channel": event.channel.value,
            "recipients": event.recipients,
        }
        for envelope, event in events
    ]
    await insert_rows(unit, tables.campaign_sends, rows)


@writes(CampaignAudienceDrawn)
async def campaign_audiences_drawn(unit: Unit, events: Events) -> None:
    # The batch row says when the audience was drawn (the launch) and how many batches make it whole; the
    # incremental revenue of a campaign is shown only once every batch is here. The draw is deterministic: a
    # copy of a batch says the same, each customer once.
    batches: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    for envelope, event in events:
        batches.append(
            {
                "campaign_id": event.campaign_id,
                "batch_number": event.batch_number,
                "batch_count": event.batch_count,
                "audience_group": event.group.value,
                "customers": len(event.customer_ids),
                "drawn_at": envelope.occurred_at,
                "event_id": _event_id(envelope),
            }
        )
        members.extend(
            {
                "campaign_id": event.campaign_id,
                "customer_id": customer_id,
                "in_control_group": event.group is AudienceGroup.CONTROL,
                "event_id": _event_id(envelope),
            }
            for customer_id in event.customer_ids
        )
    await insert_rows(unit, tables.campaign_audience_batches, batches)
    await insert_rows(unit, tables.campaign_audience_members, members)


# ---- reminder ------------------------------------------------------------------------------------------------


@writes(ReminderDue)
async def reminders_due(unit: Unit, events: Events) -> None:
    rows = [
        {
            "event_id": _event_id(envelope),
            "reminder_id": event.reminder_id,
            "vehicle_id": event.vehicle_id,
            "branch_id": event.preferred_branch_id,
            "sent_at": envelope.occurred_at,
        }
        for envelope, event in events
    ]
    await insert_rows(unit, tables.reminders_sent, rows)


# ---- customer-profile ----------------------------------------------------------------------------------------


@writes(CustomersMerged)
async def customers_merged(unit: Unit, events: Events) -> None:
    await merge_customers(
        unit,
        [
            CustomerMerge(event.surviving_customer_id, event.merged_customer_ids, _event_id(envelope))
            for envelope, event in events
        ],
    )


@writes(CustomerErased)
async def customers_erased(unit: Unit, events: Events) -> None:
    # Analytics holds no personal data of the customer (ids and amounts only): the figures of their visits,
    # bookings and add-ons stay, and the drill-downs mark the id so nobody follows it up or puts it in a
    # segment. Their NPS answers go: notification securely deletes its NpsAnswered events from the stream on
    # erasure (they carry the customer's words), so a copy kept here would outlive its source and a rebuild
    # from the streams would no longer equal the live figures.
    for _, event in events:
        await delete_answers_of(unit, event.customer_id)
    rows = [
        {"customer_id": event.customer_id, "erased_at": envelope.occurred_at, "event_id": _event_id(envelope)}
        for envelope, event in events
    ]
    await insert_rows(unit, tables.erased_customers, rows)


# ---- the headline's projections ------------------------------------------------------------------------------


@follows(WorkOrderOpened)
async def orders_opened(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    # An opening adds an event behind its visit, and gives its add-ons their branch and vehicle; it makes no
    # visit and moves none.
    orders = [event.work_order_id for _, event in events]
    await recount(unit, "visit", orders, zone)
    await recount_near_orders(unit, orders, zone, reminders=False)


@follows(WorkOrderCompleted, WorkOrderVoided)
async def visits_changed(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    orders = [event.work_order_id for _, event in events]
    await recompute_customers_of_orders(unit, orders, zone)
    await recount(unit, "visit", orders, zone)
    await recount_near_orders(unit, orders, zone, reminders=True)


@follows(AppointmentBooked, AppointmentArrived)
async def bookings_changed(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    appointments = [event.appointment_id for _, event in events]
    await recompute_customers_of_appointments(unit, appointments, zone)
    await recount(unit, "booking", appointments, zone)
    await recount_near_bookings(unit, appointments, zone)


@follows(AppointmentRescheduled, AppointmentCancelled, AppointmentNoShow)
async def bookings_noted(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    # The booking's customer, time and arrival stay: only the events behind it change.
    await recount(unit, "booking", [event.appointment_id for _, event in events], zone)


@follows(AddOnProposed, AddOnApproved, AddOnDeclined)
async def add_ons_changed(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    await recount_near_add_ons(unit, [event.add_on_id for _, event in events], zone)


@follows(NpsAnswered)
async def answers_changed(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    await recount(unit, "answer", [event.survey_id for _, event in events], zone)


@follows(NpsSurveySent)
async def surveys_changed(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    await recount(unit, "survey", [event.survey_id for _, event in events], zone)


@follows(ReminderDue)
async def reminders_changed(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    await recount(unit, "reminder", [_event_id(envelope) for envelope, _ in events], zone)


@follows(CustomersMerged)
async def customers_joined(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    customers = [
        customer
        for _, event in events
        for customer in (event.surviving_customer_id, *event.merged_customer_ids)
    ]
    await recompute_customers(unit, customers, zone)
    await recompute_appointment_customers(unit, customers, zone)


@follows(CustomerErased)
async def answers_erased(unit: Unit, events: Events, zone: ZoneInfo) -> None:
    await recount_answers_of(unit, [event.customer_id for _, event in events], zone)
