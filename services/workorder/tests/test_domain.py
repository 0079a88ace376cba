"""The pure domain: the work order's state machine, booking capacity on the slot grid, settlement arithmetic."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pitlane_events.types import (
    AddOnDecision,
    Discount,
    DiscountKind,
    LineCategory,
    LineItem,
    OpeningHours,
    Payment,
    PaymentMethod,
    TimeSlot,
)
from pitlane_events.workorder import (
    BUILT_IN_PROCESS,
    AddOnApproved,
    AddOnDeclined,
    AddOnProposed,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    AppointmentRescheduled,
    BookingChannel,
    DecidedBy,
    DecisionMethod,
    QualityCheckPassed,
    VisitType,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderSettled,
    WorkOrderVoided,
)
from pitlane_platform.errors import ConflictError, InvalidInputError
from pitlane_workorder.domain.appointment import Appointment, AppointmentStatus
from pitlane_workorder.domain.booking_rules import BookingRules
from pitlane_workorder.domain.capacity import (
    SUGGESTION_HORIZON,
    Availability,
    BookingGrid,
    BookingRequest,
    Place,
    SlotFullError,
    UnbookableTimeError,
)
from pitlane_workorder.domain.process import BUILT_IN
from pitlane_workorder.domain.settlement import checked_bill, line_total_fen
from pitlane_workorder.domain.workorder import WorkOrder, WorkOrderState

T0 = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
PHOTO = "sha256:" + "ab" * 32


def opened_order() -> WorkOrder:
    return WorkOrder.open(
        WorkOrderOpened(
            work_order_id="wo-1",
            customer_id="c-1",
            vehicle_id="v-1",
            plate="沪A12345",
            mileage_km=42_000,
            complaint="刹车异响",
            advisor_id="amy",
            process=BUILT_IN_PROCESS,
        ),
        T0,
        BUILT_IN,
    )


def proposal(add_on_id: str = "ao-1") -> AddOnProposed:
    return AddOnProposed(
        work_order_id="wo-1",
        add_on_id=add_on_id,
        item="更换前刹车片",
        category=LineCategory.PARTS,
        price_fen=48_000,
        reason="刹车片剩余2mm",
        photo_hashes=(PHOTO,),
        estimate_revision=1,
        proposed_by="tom",
    )


def line(total: int | None = None, *, quantity: str = "1", unit: int = 10_000, add_on_id=None) -> LineItem:
    return LineItem(
        item_code="BRK-01",
        name="更换前刹车片",
        category=LineCategory.PARTS,
        quantity=Decimal(quantity),
        unit_price_fen=unit,
        line_total_fen=line_total_fen(Decimal(quantity), unit) if total is None else total,
        add_on_id=add_on_id,
    )


def cash(amount: int) -> Payment:
    return Payment(method=PaymentMethod.CASH, amount_fen=amount, paid_at=T0)


def test_the_whole_state_machine_and_what_completion_carries():
    order = opened_order()
    order.assign_technician("tom", "bay-1", T0 + timedelta(minutes=5))
    assert order.state is WorkOrderState.DISPATCHED
    order.record_progress("tom", "拆下前轮", (), T0 + timedelta(minutes=20))
    assert order.state is WorkOrderState.IN_PROGRESS
    order.propose_add_on(proposal(), T0 + timedelta(minutes=30))
    assert order.state is WorkOrderState.AWAITING_APPROVAL
    assert order.add_ons["ao-1"].estimate_revision == 2
    assert order.decide_add_on(
        "ao-1",
        approve=True,
        estimate_revision_seen=2,
        decided_by=DecidedBy.CUSTOMER,
        method=DecisionMethod.SIGNED_LINK,
        at=T0 + timedelta(minutes=40),
    )
    assert order.state is WorkOrderState.IN_PROGRESS
    order.fail_quality_check("lee", ["左前轮螺栓未紧固"], T0 + timedelta(minutes=60))
    assert order.state is WorkOrderState.IN_PROGRESS  # a failed check returns the car to work
    order.pass_quality_check("lee", "复检螺栓已紧固", T0 + timedelta(minutes=70))
    assert order.pending[-1] == QualityCheckPassed(
        work_order_id="wo-1", inspector_id="lee", note="复检螺栓已紧固"
    )
    bill = checked_bill(
        [line(unit=50_000, add_on_id="ao-1")],
        [Discount(kind=DiscountKind.COUPON, amount_fen=2_000, coupon_code="NEW20")],
        [cash(48_000)],
        stated_total_fen=48_000,
        approved_add_on_ids=order.approved_add_on_ids,
    )
    order.settle(
        bill, coupon_code="NEW20", campaign_id="camp-1", settled_by="amy", at=T0 + timedelta(minutes=80)
    )
    settled = order.pending[-1]
    assert isinstance(settled, WorkOrderSettled)
    assert (settled.coupon_code, settled.campaign_id, settled.total_fen) == ("NEW20", "camp-1", 48_000)
    order.complete("b1", T0 + timedelta(minutes=90))
    assert order.state is WorkOrderState.COMPLETED

    completed = order.pending[-1]
    assert isinstance(completed, WorkOrderCompleted)
    # What the visit carries on to the customer's history and the campaign's results.
    assert (completed.coupon_code, completed.campaign_id) == ("NEW20", "camp-1")
    assert (completed.subtotal_fen, completed.discount_fen) == (50_000, 2_000)
    assert completed.technician_ids == ("tom",)
    assert completed.opened_at == T0 and completed.completed_at == T0 + timedelta(minutes=90)
    assert [(a.add_on_id, a.decision) for a in completed.add_ons] == [("ao-1", AddOnDecision.APPROVED)]
    assert completed.total_fen == completed.paid_fen == 48_000
    time_in = order.time_in_states(T0 + timedelta(minutes=90))
    assert time_in[WorkOrderState.IN_PROGRESS] == timedelta(minutes=10 + 20 + 10)
    assert time_in[WorkOrderState.AWAITING_APPROVAL] == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("command", "state_named"),
    [
        (lambda o: o.record_progress("tom", "x", (), T0), "is opened"),
        (lambda o: o.pass_quality_check("lee", None, T0), "is opened"),
        (lambda o: o.complete("b1", T0), "is opened"),
    ],
)
def test_an_invalid_transition_is_a_conflict_naming_the_current_state(command, state_named):
    order = opened_order()
    with pytest.raises(ConflictError, match=state_named):
        command(order)
    assert len(order.pending) == 1  # only the opening


def test_quality_check_waits_for_every_add_on_decision():
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.propose_add_on(proposal(), T0)
    with pytest.raises(ConflictError, match="awaiting_approval"):
        order.pass_quality_check("lee", None, T0)


def test_a_decision_twice_records_once_and_a_contrary_one_is_refused():
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.propose_add_on(proposal(), T0)
    decide = dict(
        estimate_revision_seen=2, decided_by=DecidedBy.CUSTOMER, method=DecisionMethod.SIGNED_LINK, at=T0
    )
    assert order.decide_add_on("ao-1", approve=True, **decide) is True
    assert order.decide_add_on("ao-1", approve=True, **decide) is False
    with pytest.raises(ConflictError, match="already approved"):
        order.decide_add_on("ao-1", approve=False, **decide)
    approvals = [e for e in order.pending if isinstance(e, AddOnApproved)]
    assert len(approvals) == 1
    assert approvals[0].photo_hashes_seen == (PHOTO,) and approvals[0].estimate_revision_seen == 2


def test_a_decision_on_a_stale_estimate_is_refused():
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.propose_add_on(proposal("ao-1"), T0)
    order.propose_add_on(proposal("ao-2"), T0)
    with pytest.raises(ConflictError, match="revision 1 was seen"):
        order.decide_add_on(
            "ao-2",
            approve=True,
            estimate_revision_seen=1,
            decided_by=DecidedBy.ADVISOR,
            method=DecisionMethod.PHONE_CALL,
            at=T0,
        )


def settled_order(paid_fen: int = 10_000) -> WorkOrder:
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.record_progress("tom", "更换机油", (), T0)
    order.pass_quality_check("lee", None, T0)
    bill = checked_bill(
        [line(unit=paid_fen)], [], [cash(paid_fen)], stated_total_fen=paid_fen, approved_add_on_ids=set()
    )
    order.settle(bill, coupon_code=None, campaign_id=None, settled_by="amy", at=T0)
    return order


def test_void_refunds_at_most_what_was_paid_and_a_voided_order_takes_no_command():
    order = opened_order()
    with pytest.raises(InvalidInputError) as refused:
        order.void("mgr", "客户取消", 100, T0)
    assert (refused.value.field, refused.value.message) == (
        "body.refunded_fen",
        "only 0 fen were paid; 100 cannot be refunded",
    )
    order.void("mgr", "客户取消", 0, T0)
    assert order.state is WorkOrderState.VOIDED
    with pytest.raises(ConflictError, match="is voided"):
        order.void("mgr", "again", 0, T0)


def test_a_voided_settled_order_records_the_refund():
    order = settled_order(paid_fen=10_000)
    with pytest.raises(InvalidInputError, match="only 10000 fen were paid; 10001 cannot be refunded"):
        order.void("max", "客户投诉，全额退款", 10_001, T0)
    order.void("max", "客户投诉，全额退款", 10_000, T0)
    assert order.pending[-1] == WorkOrderVoided(
        work_order_id="wo-1",
        customer_id="c-1",
        reason="客户投诉，全额退款",
        manager_id="max",
        refunded_fen=10_000,
    )


def test_an_add_on_is_proposed_once():
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.propose_add_on(proposal("ao-1"), T0)
    with pytest.raises(ConflictError) as again:
        order.propose_add_on(proposal("ao-1"), T0)
    assert str(again.value) == "add-on ao-1 was already proposed on work order wo-1"
    assert order.estimate_revision == 2 and len(order.pending) == 3  # opened, assigned, proposed


@pytest.mark.parametrize(
    ("decided_by", "method"),
    [(DecidedBy.ADVISOR, DecisionMethod.SIGNED_LINK), (DecidedBy.CUSTOMER, DecisionMethod.PHONE_CALL)],
)
def test_the_customer_decides_through_the_link_and_an_advisor_by_call_or_visit(decided_by, method):
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.propose_add_on(proposal(), T0)
    with pytest.raises(InvalidInputError) as refused:
        order.decide_add_on(
            "ao-1", approve=True, estimate_revision_seen=2, decided_by=decided_by, method=method, at=T0
        )
    assert refused.value.field == "body.method"
    assert order.state is WorkOrderState.AWAITING_APPROVAL and len(order.pending) == 3


def test_a_declined_add_on_keeps_the_customers_reason():
    order = opened_order()
    order.assign_technician("tom", None, T0)
    order.propose_add_on(proposal(), T0)
    assert order.decide_add_on(
        "ao-1",
        approve=False,
        estimate_revision_seen=2,
        decided_by=DecidedBy.ADVISOR,
        method=DecisionMethod.PHONE_CALL,
        at=T0,
        reason="下次保养时再换",
    )
    declined = order.pending[-1]
    assert isinstance(declined, AddOnDeclined)
    assert (declined.add_on_id, declined.reason) == ("ao-1", "下次保养时再换")
    assert order.add_ons["ao-1"].decision is AddOnDecision.DECLINED and order.approved_add_on_ids == set()


# Capacity (the booking calendar's rules, shifts and waitlists: test_booking_calendar_domain.py) -------------

GRID = BookingGrid(
    timezone=SHANGHAI,
    opening_hours=(OpeningHours(weekday=1, opens_at=time(9), closes_at=time(12)),),
    bays=3,
    slot_minutes=60,
)


EARLIER = T0 - timedelta(hours=1)  # "now" in the capacity tests: the Monday's slots are all ahead
SERVICE = BookingRequest(VisitType.WAITING, "小保养")


def free(
    booked: dict[datetime, int] | None = None, *, now: datetime = EARLIER, grid: BookingGrid = GRID
) -> Availability:
    """The grid at `now` with `booked[start]` cars booked in the slot starting at `start`."""
    taken = [
        Place(start, start + grid.slot_length, VisitType.WAITING, "小保养", f"ap-{start:%d%H}-{n}")
        for start, cars in (booked or {}).items()
        for n in range(cars)
    ]
    return Availability(grid=grid, rules=BookingRules(), taken=taken, now=now)


def slot_at(start: datetime, booked: dict[datetime, int] | None = None) -> TimeSlot:
    return free(booked).slot_at(start, SERVICE, field="slot_start")


def test_slots_follow_the_grid_inside_opening_hours():
    slot = slot_at(T0)
    assert slot.end - slot.start == timedelta(hours=1)
    with pytest.raises(InvalidInputError, match="slot_start"):
        slot_at(T0 + timedelta(minutes=30))  # off the grid
    with pytest.raises(InvalidInputError, match="slot_start"):
        slot_at(T0 + timedelta(hours=3))  # 12:00: closed
    with pytest.raises(InvalidInputError, match="slot_start"):
        slot_at(T0 + timedelta(days=1))  # Tuesday: closed


def test_an_off_grid_time_suggests_the_nearest_free_slots_either_side():
    with pytest.raises(UnbookableTimeError) as off_grid:
        slot_at(T0 + timedelta(minutes=30), {T0: 3})  # 09:30; 09:00 is full
    assert off_grid.value.field == "slot_start"
    assert [s.start for s in off_grid.value.nearest_free] == [
        T0 + timedelta(hours=1),  # 10:00, half an hour later
        T0 + timedelta(hours=2),  # 11:00
        T0 + timedelta(days=7),  # next Monday 09:00, not the full 09:00 half an hour earlier
    ]
    with pytest.raises(UnbookableTimeError) as after_closing:
        slot_at(T0 + timedelta(hours=3, minutes=30), {T0 + timedelta(hours=2): 3})  # 12:30; 11:00 is full
    assert [s.start for s in after_closing.value.nearest_free] == [
        T0,  # 09:00 the same day
        T0 + timedelta(hours=1),  # 10:00, the nearest free one before closing
        T0 + timedelta(days=7),  # next Monday 09:00
    ]


def test_slots_that_have_begun_are_never_suggested():
    with pytest.raises(UnbookableTimeError) as off_grid:
        free(now=T0 + timedelta(minutes=10)).slot_at(T0 + timedelta(minutes=30), SERVICE, field="slot_start")
    assert [s.start for s in off_grid.value.nearest_free] == [
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
        T0 + timedelta(days=7),
    ]


def test_a_full_slot_suggests_the_next_free_ones():
    slot = slot_at(T0)
    free({T0: 2}, now=T0 - timedelta(minutes=1)).ensure_room(slot, SERVICE)  # a third car still fits
    booked = {T0: 3, T0 + timedelta(hours=1): 3}
    with pytest.raises(SlotFullError) as full:
        free(booked, now=T0 - timedelta(minutes=1)).ensure_room(slot, SERVICE)
    assert full.value.rule == "capacity" and "all 3 bays" in str(full.value)
    assert [s.start for s in full.value.next_free] == [
        T0 + timedelta(hours=2),  # 11:00 the same Monday
        T0 + timedelta(days=7),  # next Monday 09:00
        T0 + timedelta(days=7, hours=1),
    ]


def test_with_one_bay_every_slot_nobody_booked_is_free():
    one_bay = dataclasses.replace(GRID, bays=1)
    booked = {T0: 1}  # 09:00 is taken; nobody booked 10:00 or 11:00
    with pytest.raises(UnbookableTimeError) as off_grid:
        free(booked, grid=one_bay).slot_at(T0 + timedelta(minutes=30), SERVICE, field="slot_start")
    with pytest.raises(SlotFullError) as full:
        free(booked, grid=one_bay).ensure_room(slot_at(T0), SERVICE)
    free_slots = [T0 + timedelta(hours=1), T0 + timedelta(hours=2), T0 + timedelta(days=7)]
    assert [s.start for s in off_grid.value.nearest_free] == free_slots
    assert [s.start for s in full.value.next_free] == free_slots


def shanghai(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def test_a_full_slots_suggestions_reach_the_horizon_on_the_branchs_calendar_and_stop_there():
    """The next free slots are looked for over the 14 days after the slot (`loading_window` counts the
    bookings of a day more): as far as the last local morning's slot before the horizon (before dawn in
    Shanghai, the day before in UTC), and never a slot at or after it."""
    dawn = BookingGrid(
        timezone=SHANGHAI,
        opening_hours=tuple(
            OpeningHours(weekday=d, opens_at=time(5), closes_at=time(7)) for d in range(1, 8)
        ),
        bays=1,
        slot_minutes=60,
    )
    first = free(grid=dawn, now=shanghai(16, 4)).slot_at(shanghai(16, 6), SERVICE, field="slot_start")
    assert first.start + SUGGESTION_HORIZON == shanghai(30, 6)
    # Every slot is taken from the Monday's 06:00 to the Sunday's two weeks later; the 30th's 06:00 is at
    # the horizon, not before it.
    booked = {shanghai(day, hour): 1 for day in range(16, 30) for hour in (5, 6)}
    with pytest.raises(SlotFullError) as full:
        free(booked, grid=dawn, now=shanghai(16, 4)).ensure_room(first, SERVICE)
    assert [s.start for s in full.value.next_free] == [shanghai(30, 5)]


# Appointments -----------------------------------------------------------------------------------------------

GRACE = timedelta(minutes=15)


def booked_appointment() -> Appointment:
    """Booked by phone for the Monday's 10:00 slot."""
    return Appointment.book(
        AppointmentBooked(
            appointment_id="ap-1",
            channel=BookingChannel.PHONE,
            customer_id="c-1",
            vehicle_id="v-1",
            plate="沪A12345",
            slot=slot_at(T0 + timedelta(hours=1)),
            service_requested="小保养",
        ),
        EARLIER,
    )


def test_an_appointment_for_a_slot_that_has_begun_is_refused_naming_the_slot():
    for booked_at in (T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=1)):  # at its start, or after
        with pytest.raises(InvalidInputError) as refused:
            Appointment.book(booked_appointment().pending[0], booked_at)
        assert (refused.value.field, refused.value.message) == ("slot_start", "the slot has already begun")


def test_a_reschedule_records_where_the_appointment_was_and_is_and_why():
    appointment = booked_appointment()
    ten, eleven = appointment.slot, slot_at(T0 + timedelta(hours=2))
    appointment.reschedule(eleven, "客户改到11点", EARLIER)
    assert appointment.slot == eleven
    assert appointment.pending[-1] == AppointmentRescheduled(
        appointment_id="ap-1", customer_id="c-1", previous_slot=ten, slot=eleven, reason="客户改到11点"
    )
    appointment.cancel("customer", "临时出差", EARLIER)
    assert appointment.status is AppointmentStatus.CANCELLED
    assert appointment.pending[-1] == AppointmentCancelled(
        appointment_id="ap-1", customer_id="c-1", cancelled_by="customer", reason="临时出差"
    )


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (lambda a: a.reschedule(slot_at(T0 + timedelta(hours=2)), None, EARLIER), "reschedule"),
        (lambda a: a.cancel("branch", "重复预约", EARLIER), "cancel"),
        (lambda a: a.mark_no_show(T0 + timedelta(hours=3), GRACE), "mark as no-show"),
        (lambda a: a.arrive("wo-2", T0), "check in"),
    ],
)
def test_only_a_booked_appointment_takes_a_command_and_the_refusal_says_which(command, action):
    appointment = booked_appointment()
    appointment.cancel("customer", "临时出差", EARLIER)
    expected = f"appointment ap-1 is cancelled; only a booked appointment can {action}"
    with pytest.raises(ConflictError, match=f"^{re.escape(expected)}$"):
        command(appointment)
    assert len(appointment.pending) == 2  # booked, cancelled


def test_an_appointment_is_missed_from_the_moment_its_grace_period_ends():
    appointment = booked_appointment()
    grace_end = appointment.slot.start + GRACE
    assert not appointment.is_missed(grace_end - timedelta(seconds=1), GRACE)
    with pytest.raises(ConflictError, match="is not missed yet"):
        appointment.mark_no_show(grace_end - timedelta(seconds=1), GRACE)
    assert appointment.is_missed(grace_end, GRACE)
    appointment.mark_no_show(grace_end, GRACE)
    assert appointment.status is AppointmentStatus.NO_SHOW
    assert appointment.pending[-1] == AppointmentNoShow(
        appointment_id="ap-1", customer_id="c-1", slot=appointment.slot
    )
    assert not appointment.is_missed(grace_end, GRACE)  # a no-show is not missed again


# Settlement -------------------------------------------------------------------------------------------------


def test_line_totals_round_half_up_to_the_fen():
    assert line_total_fen(Decimal("1.5"), 3) == 5  # 4.5 → 5
    assert line_total_fen(Decimal("0.333"), 100) == 33


@pytest.mark.parametrize(
    ("lines", "discounts", "payments", "stated", "field", "message"),
    [
        (
            [line(9_999)],
            [],
            [cash(9_999)],
            9_999,
            "body.line_items.0.line_total_fen",
            "1 × 10000 fen is 10000 fen, not 9999",
        ),
        (
            [line(10_000, quantity="1.5", unit=6_667)],  # 10000.5 fen rounds half up
            [],
            [cash(10_000)],
            10_000,
            "body.line_items.0.line_total_fen",
            "1.5 × 6667 fen is 10001 fen, not 10000",
        ),
        (
            [line()],
            [Discount(kind=DiscountKind.MANUAL, amount_fen=500)],
            [cash(10_000)],
            9_000,
            "body.total_fen",
            "the lines (10000 fen) minus discounts (500 fen) come to 9500 fen, not 9000",
        ),
        (
            [line()],
            [],
            [cash(6_000), cash(3_000)],
            10_000,
            "body.payments",
            "payments add up to 9000 fen; the total is 10000 fen",
        ),
        (
            [line()],
            [Discount(kind=DiscountKind.MANUAL, amount_fen=20_000)],
            [],
            0,
            "body.discounts",
            "discounts of 20000 fen exceed the subtotal of 10000 fen",
        ),
        (
            [line(add_on_id="ao-x")],
            [],
            [cash(10_000)],
            10_000,
            "body.line_items.0.add_on_id",
            "add-on ao-x was not approved by the customer and cannot be billed",
        ),
        ([], [], [], 0, "body.line_items", "a settlement needs at least one line"),
    ],
)
def test_a_bill_that_does_not_add_up_names_the_field_and_the_figures(
    lines, discounts, payments, stated, field, message
):
    with pytest.raises(InvalidInputError) as refused:
        checked_bill(lines, discounts, payments, stated_total_fen=stated, approved_add_on_ids=set())
    assert (refused.value.field, refused.value.message) == (field, message)


def test_a_bill_with_discounts_and_split_payment_adds_up():
    bill = checked_bill(
        [line(quantity="2", unit=15_000), line(quantity="1.5", unit=8_000)],
        [Discount(kind=DiscountKind.COUPON, amount_fen=2_000, coupon_code="NEW20")],
        [cash(20_000), Payment(method=PaymentMethod.WECHAT_PAY, amount_fen=20_000, paid_at=T0)],
        stated_total_fen=40_000,
        approved_add_on_ids=set(),
    )
    assert (bill.subtotal_fen, bill.discount_fen, bill.total_fen, bill.paid_fen) == (
        42_000,
        2_000,
        40_000,
        40_000,
    )
