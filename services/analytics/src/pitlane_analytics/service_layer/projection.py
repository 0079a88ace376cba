"""What each event makes of the facts: one writer per event type, taking the transaction, the envelope and
the event. The consumers call these; a rebuild replays the streams through the same writers into fresh
tables. A writer reads nothing back: each fact row ends the same in any order of arrival (adapters/facts.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pitlane_analytics.adapters.facts import (
    Line,
    delete_answers_of,
    insert_audience_members,
    insert_lines,
    insert_once,
    is_erased,
    merge_customers,
    merge_row,
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

Writer = Callable[[Unit, Envelope[Any], Any], Awaitable[None]]
WRITERS: dict[type[DomainEvent], Writer] = {}


def writes(model: type[DomainEvent]) -> Callable[[Writer], Writer]:
    def register(writer: Writer) -> Writer:
        WRITERS[model] = writer
        return writer

    return register


def _event_id(envelope: Envelope[Any]) -> str:
    return str(envelope.event_id)


# ---- workorder: work orders --------------------------------------------------------------------------------


@writes(WorkOrderOpened)
async def work_order_opened(unit: Unit, envelope: Envelope[Any], event: WorkOrderOpened) -> None:
    await merge_row(
        unit,
        "work_orders",
        ("work_order_id", event.work_order_id),
        {
            "customer_id": event.customer_id,
            "vehicle_id": event.vehicle_id,
            "branch_id": envelope.branch_id,
            "advisor_id": event.advisor_id,
            "appointment_id": event.appointment_id,
        },
        event_id=_event_id(envelope),
        authoritative=False,
    )


@writes(WorkOrderCompleted)
async def work_order_completed(unit: Unit, envelope: Envelope[Any], event: WorkOrderCompleted) -> None:
    coupons = {event.coupon_code} | {d.coupon_code for d in event.discounts}
    await merge_row(
        unit,
        "work_orders",
        ("work_order_id", event.work_order_id),
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
        event_id=_event_id(envelope),
        authoritative=True,
    )
    lines = [
        Line(
            item_code=line.item_code,
            name=line.name,
            category=line.category.value,
            quantity=line.quantity,
            revenue_fen=line.line_total_fen,
            cost_fen=line.cost_fen,
            add_on_id=line.add_on_id,
        )
        for line in event.line_items
    ]
    await insert_lines(unit, event.work_order_id, lines, event_id=_event_id(envelope))


@writes(BranchOpened)
@writes(BranchUpdated)
async def branch_described(unit: Unit, envelope: Envelope[Any], event: BranchOpened | BranchUpdated) -> None:
    # One branch's events arrive in order: what the latest names replaces what the row holds (an update
    # leaves the fields it does not name as None, which keeps them).
    await merge_row(
        unit,
        "branches",
        ("branch_id", event.branch_id),
        {"name": event.branch_name, "timezone": event.timezone},
        event_id=_event_id(envelope),
        authoritative=True,
    )


@writes(WorkOrderVoided)
async def work_order_voided(unit: Unit, envelope: Envelope[Any], event: WorkOrderVoided) -> None:
    await merge_row(
        unit,
        "work_orders",
        ("work_order_id", event.work_order_id),
        {"customer_id": event.customer_id, "voided_at": envelope.occurred_at},
        event_id=_event_id(envelope),
        authoritative=False,
        earliest=("voided_at",),
    )


# ---- workorder: appointments ---------------------------------------------------------------------------------


async def _appointment(
    unit: Unit, envelope: Envelope[Any], appointment_id: str, customer_id: str, **facts: Any
) -> None:
    await merge_row(
        unit,
        "appointments",
        ("appointment_id", appointment_id),
        {"customer_id": customer_id, "branch_id": envelope.branch_id, **facts},
        event_id=_event_id(envelope),
        authoritative=True,
    )


@writes(AppointmentBooked)
async def appointment_booked(unit: Unit, envelope: Envelope[Any], event: AppointmentBooked) -> None:
    await _appointment(
        unit,
        envelope,
        event.appointment_id,
        event.customer_id,
        vehicle_id=event.vehicle_id,
        channel=event.channel.value,
        campaign_id=event.campaign_id,
        reminder_id=event.reminder_id,
        booked_at=envelope.occurred_at,
    )


@writes(AppointmentRescheduled)
async def appointment_rescheduled(unit: Unit, envelope: Envelope[Any], event: AppointmentRescheduled) -> None:
    # The slot does not change any KPI; the event is still one behind the appointment's figures.
    await _appointment(unit, envelope, event.appointment_id, event.customer_id)


@writes(AppointmentCancelled)
async def appointment_cancelled(unit: Unit, envelope: Envelope[Any], event: AppointmentCancelled) -> None:
    await _appointment(
        unit, envelope, event.appointment_id, event.customer_id, cancelled_at=envelope.occurred_at
    )


@writes(AppointmentNoShow)
async def appointment_no_show(unit: Unit, envelope: Envelope[Any], event: AppointmentNoShow) -> None:
    await _appointment(
        unit, envelope, event.appointment_id, event.customer_id, no_show_at=envelope.occurred_at
    )


@writes(AppointmentArrived)
async def appointment_arrived(unit: Unit, envelope: Envelope[Any], event: AppointmentArrived) -> None:
    await _appointment(
        unit,
        envelope,
        event.appointment_id,
        event.customer_id,
        arrived_at=event.arrived_at,
        work_order_id=event.work_order_id,
    )


# ---- workorder: add-ons --------------------------------------------------------------------------------------


@writes(AddOnProposed)
async def add_on_proposed(unit: Unit, envelope: Envelope[Any], event: AddOnProposed) -> None:
    await merge_row(
        unit,
        "add_ons",
        ("add_on_id", event.add_on_id),
        {
            "work_order_id": event.work_order_id,
            "item": event.item,
            "item_code": event.item_code,
            "category": event.category.value,
            "price_fen": event.price_fen,
            "proposed_at": envelope.occurred_at,
        },
        event_id=_event_id(envelope),
        authoritative=True,
    )


async def _decided(
    unit: Unit, envelope: Envelope[Any], event: AddOnApproved | AddOnDeclined, when: str
) -> None:
    # The item and quote as the customer saw them fill what a proposal not seen yet would have given; the
    # earliest decision of each kind counts.
    await merge_row(
        unit,
        "add_ons",
        ("add_on_id", event.add_on_id),
        {
            "work_order_id": event.work_order_id,
            "item": event.item,
            "category": event.category.value,
            "price_fen": event.price_fen,
            when: event.decided_at,
        },
        event_id=_event_id(envelope),
        authoritative=False,
        earliest=(when,),
    )


@writes(AddOnApproved)
async def add_on_approved(unit: Unit, envelope: Envelope[Any], event: AddOnApproved) -> None:
    await _decided(unit, envelope, event, "approved_at")


@writes(AddOnDeclined)
async def add_on_declined(unit: Unit, envelope: Envelope[Any], event: AddOnDeclined) -> None:
    await _decided(unit, envelope, event, "declined_at")


# ---- notification --------------------------------------------------------------------------------------------


@writes(NpsSurveySent)
async def survey_sent(unit: Unit, envelope: Envelope[Any], event: NpsSurveySent) -> None:
    await insert_once(
        unit,
        "surveys",
        {
            "survey_id": event.survey_id,
            "work_order_id": event.work_order_id,
            "branch_id": event.branch_id,
            "sent_at": envelope.occurred_at,
            "event_id": _event_id(envelope),
        },
    )


@writes(NpsAnswered)
async def nps_answered(unit: Unit, envelope: Envelope[Any], event: NpsAnswered) -> None:
    # The comment stays with notification: it is the customer's own words.
    if await is_erased(unit, event.customer_id):
        return  # its event is scrubbed from the stream (see customer_erased): an erasure seen first keeps it out
    await insert_once(
        unit,
        "nps_answers",
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
        },
    )


@writes(CampaignLaunched)
async def campaign_launched(unit: Unit, envelope: Envelope[Any], event: CampaignLaunched) -> None:
    await insert_once(
        unit,
        "campaigns",
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
        },
    )


@writes(CampaignSent)
async def campaign_sent(unit: Unit, envelope: Envelope[Any], event: CampaignSent) -> None:
    await insert_once(
        unit,
        "campaign_sends",
        {
            "event_id": _event_id(envelope),
            "campaign_id": event.campaign_id,
            "channel": event.channel.value,
            "recipients": event.recipients,
        },
    )


@writes(CampaignAudienceDrawn)
async def campaign_audience_drawn(unit: Unit, envelope: Envelope[Any], event: CampaignAudienceDrawn) -> None:
    # The batch row says when the audience was drawn (the launch) and how many batches make it whole; the
    # incremental revenue of a campaign is shown only once every batch is here.
    await insert_once(
        unit,
        "campaign_audience_batches",
        {
            "campaign_id": event.campaign_id,
            "batch_number": event.batch_number,
            "batch_count": event.batch_count,
            "audience_group": event.group.value,
            "customers": len(event.customer_ids),
            "drawn_at": envelope.occurred_at,
            "event_id": _event_id(envelope),
        },
    )
    await insert_audience_members(
        unit,
        event.campaign_id,
        event.customer_ids,
        in_control_group=event.group is AudienceGroup.CONTROL,
        event_id=_event_id(envelope),
    )


# ---- reminder ------------------------------------------------------------------------------------------------


@writes(ReminderDue)
async def reminder_due(unit: Unit, envelope: Envelope[Any], event: ReminderDue) -> None:
    await insert_once(
        unit,
        "reminders_sent",
        {
            "event_id": _event_id(envelope),
            "reminder_id": event.reminder_id,
            "vehicle_id": event.vehicle_id,
            "branch_id": event.preferred_branch_id,
            "sent_at": envelope.occurred_at,
        },
    )


# ---- customer-profile ----------------------------------------------------------------------------------------


@writes(CustomersMerged)
async def customers_merged(unit: Unit, envelope: Envelope[Any], event: CustomersMerged) -> None:
    await merge_customers(
        unit, event.surviving_customer_id, event.merged_customer_ids, event_id=_event_id(envelope)
    )


@writes(CustomerErased)
async def customer_erased(unit: Unit, envelope: Envelope[Any], event: CustomerErased) -> None:
    # Analytics holds no personal data of the customer (ids and amounts only): the figures of their visits,
    # bookings and add-ons stay, and the drill-downs mark the id so nobody follows it up or puts it in a
    # segment. Their NPS answers go: notification securely deletes its NpsAnswered events from the stream on
    # erasure (they carry the customer's words), so a copy kept here would outlive its source and a rebuild
    # from the streams would no longer equal the live figures.
    await delete_answers_of(unit, event.customer_id)
    await insert_once(
        unit,
        "erased_customers",
        {
            "customer_id": event.customer_id,
            "erased_at": envelope.occurred_at,
            "event_id": _event_id(envelope),
        },
    )
