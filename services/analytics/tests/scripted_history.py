"""A shop's history as plain facts — customers at two branches, visits across months (one voided), bookings
that arrived, were cancelled or missed, NPS surveys and answers, campaigns with a coupon and a booking link,
reminders followed by a booking or a visit, add-ons declined and later approved, a merge and an erasure —
the events its producers publish for it, and every KPI of ../shared/KPI.md worked out from the facts in
plain Python, independently of the service."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from analytics_harness import Harness, shanghai

from pitlane_events import Envelope
from pitlane_events.customer_profile import CustomerErased, CustomersMerged
from pitlane_events.notification import CampaignLaunched, CampaignSent, NpsAnswered, NpsSurveySent
from pitlane_events.reminder import ReminderDue, ReminderKind
from pitlane_events.types import Channel, LineCategory, LineItem, Payment, PaymentMethod, TimeSlot
from pitlane_events.workorder import (
    BUILT_IN_PROCESS,
    AddOnApproved,
    AddOnDeclined,
    AddOnProposed,
    AppointmentArrived,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentNoShow,
    BookingChannel,
    DecidedBy,
    DecisionMethod,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderVoided,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
FROM, TO = date(2026, 3, 1), date(2026, 4, 1)
PLATE = "沪A12345"


@dataclass(frozen=True)
class Line:
    code: str
    name: str
    category: str
    revenue: int
    cost: int | None = None
    add_on: str | None = None


@dataclass(frozen=True)
class Visit:
    work_order: str
    customer: str
    vehicle: str
    branch: str
    advisor: str
    technicians: tuple[str, ...]
    completed_at: datetime
    lines: tuple[Line, ...]
    coupon: str | None = None
    appointment: str | None = None
    voided_at: datetime | None = None

    @property
    def paid(self) -> int:
        return sum(line.revenue for line in self.lines)


@dataclass(frozen=True)
class Booking:
    appointment: str
    customer: str
    vehicle: str
    branch: str
    booked_at: datetime
    campaign: str | None = None
    reminder: str | None = None
    arrived: tuple[str, datetime] | None = None  # work order, when
    cancelled_at: datetime | None = None
    no_show_at: datetime | None = None


@dataclass(frozen=True)
class Survey:
    survey: str
    work_order: str
    sent_at: datetime
    score: int | None = None
    answered_at: datetime | None = None


@dataclass(frozen=True)
class AddOn:
    add_on: str
    work_order: str
    item: str
    code: str | None
    price: int
    proposed_at: datetime
    decisions: tuple[tuple[str, datetime], ...]  # ("approved" | "declined", when), in order


@dataclass(frozen=True)
class Campaign:
    campaign: str
    cost: int
    window_days: int
    starts_on: date
    ends_on: date
    coupons: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    recipients: int = 0


@dataclass(frozen=True)
class Reminder:
    reminder: str
    vehicle: str
    customer: str
    branch: str
    sent_at: datetime


def _line(
    code: str, name: str, category: str, revenue: int, cost: int | None = None, add_on: str | None = None
) -> Line:
    return Line(code, name, category, revenue, cost, add_on)


MAINT = ("MAINT-S", "小保养", "package")
BRAKE = ("BRAKE-F", "更换前刹车片", "parts")

VISITS = (
    Visit("w1", "c1", "v1", "b1", "amy", ("tom",), shanghai(2025, 6, 10), (_line(*MAINT, 50_000, 30_000),)),
    Visit(
        "w2",
        "c1",
        "v1",
        "b1",
        "amy",
        ("tom",),
        shanghai(2026, 3, 5, 16),
        (_line(*MAINT, 50_000, 30_000), _line("WIPER", "雨刮", "parts", 5_000, None, "ad4")),
        appointment="a5",
    ),
    Visit(
        "w3",
        "c1",
        "v1",
        "b2",
        "bob",
        ("lee",),
        shanghai(2026, 3, 20),
        (_line("WASH", "洗车", "other", 20_000, 5_000),),
        appointment="a7",
    ),
    Visit(
        "w4",
        "c2",
        "v2",
        "b1",
        "amy",
        ("tom", "lee"),
        shanghai(2026, 3, 10, 11),
        (_line(*MAINT, 68_000, 40_000),),
        coupon="SPRING10",
        appointment="a1",
    ),
    Visit(
        "w5",
        "c3",
        "v3",
        "b2",
        "bob",
        ("lee",),
        shanghai(2026, 3, 12),
        (_line(*MAINT, 120_000),),
        voided_at=shanghai(2026, 3, 13),
    ),
    Visit(
        "w6",
        "c3",
        "v3",
        "b2",
        "bob",
        ("lee",),
        shanghai(2026, 3, 15, 15),
        (_line("AC-CLEAN", "空调清洗", "labour", 45_000, 12_000),),
        appointment="a2",
    ),
    Visit("w7", "c4", "v4", "b1", "amy", ("tom",), shanghai(2025, 1, 15), (_line(*MAINT, 30_000),)),
    Visit("w8", "c5", "v5", "b1", "amy", ("tom",), shanghai(2025, 12, 20), (_line(*MAINT, 40_000),)),
    Visit(
        "w9",
        "c7",
        "v7",
        "b1",
        "amy",
        ("tom",),
        shanghai(2026, 3, 25),
        (_line("WASH", "洗车", "other", 10_000),),
    ),
    Visit("w10", "c6", "v6", "b1", "amy", ("tom",), shanghai(2026, 3, 31, 23, 30), (_line(*MAINT, 15_000),)),
    Visit(
        "w11",
        "c6",
        "v6",
        "b1",
        "amy",
        ("tom",),
        shanghai(2026, 4, 1, 0, 30),
        (_line("WASH", "洗车", "other", 9_000),),
    ),
    Visit(
        "w12",
        "c2",
        "v2",
        "b1",
        "amy",
        ("tom",),
        shanghai(2026, 3, 28, 12),
        (_line(*BRAKE, 30_000, 18_000, "ad2"),),
    ),
)

BOOKINGS = (
    Booking("a1", "c2", "v2", "b1", shanghai(2026, 3, 2), arrived=("w4", shanghai(2026, 3, 10, 9))),
    Booking(
        "a2",
        "c3",
        "v3",
        "b2",
        shanghai(2026, 3, 8),
        campaign="camp1",
        arrived=("w6", shanghai(2026, 3, 15, 9)),
    ),
    Booking("a3", "c5", "v5", "b1", shanghai(2026, 3, 5), cancelled_at=shanghai(2026, 3, 6)),
    Booking("a4", "c4", "v4", "b1", shanghai(2026, 3, 7), no_show_at=shanghai(2026, 3, 9, 18)),
    Booking("a5", "c1", "v1", "b1", shanghai(2026, 2, 20), arrived=("w2", shanghai(2026, 3, 5, 9))),
    Booking("a6", "c2", "v2", "b1", shanghai(2026, 3, 12), cancelled_at=shanghai(2026, 3, 13)),
    # Booked through the b2 campaign's link, but the visit came after its 7-day window.
    Booking(
        "a7",
        "c1",
        "v1",
        "b2",
        shanghai(2026, 3, 1, 12),
        campaign="camp2",
        arrived=("w3", shanghai(2026, 3, 20, 9)),
    ),
)

SURVEYS = (
    Survey("s1", "w2", shanghai(2026, 3, 6), 10, shanghai(2026, 3, 7)),
    Survey("s2", "w4", shanghai(2026, 3, 11), 6, shanghai(2026, 3, 12)),
    Survey("s3", "w6", shanghai(2026, 3, 16), 9, shanghai(2026, 3, 17)),
    Survey("s4", "w3", shanghai(2026, 3, 21)),
    Survey("s5", "w1", shanghai(2025, 6, 11), 3, shanghai(2025, 6, 12)),
    Survey("s6", "w9", shanghai(2026, 3, 26), 8, shanghai(2026, 3, 26, 20)),
    Survey("s7", "w8", shanghai(2026, 2, 27), 7, shanghai(2026, 3, 2)),
    Survey("s8", "w12", shanghai(2026, 3, 30)),
)

ADD_ONS = (
    AddOn(
        "ad1",
        "w4",
        "更换前刹车片",
        "BRAKE-F",
        30_000,
        shanghai(2026, 3, 10, 9, 10),
        (("declined", shanghai(2026, 3, 10, 9, 30)),),
    ),
    AddOn(
        "ad2",
        "w12",
        "更换前刹车片",
        "BRAKE-F",
        30_000,
        shanghai(2026, 3, 28, 9),
        (("approved", shanghai(2026, 3, 28, 9, 20)),),
    ),
    AddOn(
        "ad3",
        "w2",
        "更换轮胎",
        "TYRE",
        80_000,
        shanghai(2026, 3, 5, 10),
        (("declined", shanghai(2026, 3, 5, 10, 30)),),
    ),
    AddOn(
        "ad4",
        "w2",
        "雨刮",
        "WIPER",
        5_000,
        shanghai(2026, 3, 5, 10),
        (("approved", shanghai(2026, 3, 5, 10, 40)),),
    ),
    AddOn(
        "ad5",
        "w6",
        "空调滤芯",
        None,
        20_000,
        shanghai(2026, 3, 15, 10),
        (("declined", shanghai(2026, 3, 15, 10, 10)), ("approved", shanghai(2026, 3, 15, 11))),
    ),
)

CAMPAIGNS = (
    Campaign("camp1", 50_000, 14, date(2026, 3, 1), date(2026, 3, 31), coupons=("SPRING10",), recipients=200),
    Campaign(
        "camp2",
        10_000,
        7,
        date(2026, 3, 1),
        date(2026, 3, 20),
        coupons=("B2WASH",),
        branches=("b2",),
        recipients=40,
    ),
    Campaign(
        "camp3", 8_000, 7, date(2026, 1, 1), date(2026, 1, 31), coupons=("NEWYEAR",)
    ),  # not running in March
)

REMINDERS = (
    Reminder("r1", "v2", "c2", "b1", shanghai(2026, 3, 1, 9)),  # followed by booking a1
    Reminder("r2", "v5", "c5", "b1", shanghai(2026, 3, 3)),  # followed by booking a3 (cancelled later)
    Reminder("r3", "v4", "c4", "b1", shanghai(2026, 3, 20)),  # nothing followed
    Reminder("r4", "v1", "c1", "b1", shanghai(2026, 2, 10)),  # sent before the period
    Reminder("r5", "v6", "c6", "b1", shanghai(2026, 3, 5)),  # followed by visit w10, 26 days later
    Reminder("r6", "v3", "c3", "b2", shanghai(2026, 3, 6)),  # followed by booking a2
)

MERGES = (("c1", ("c7",), shanghai(2026, 3, 26)),)
ERASED = (("c4", shanghai(2026, 3, 30)),)


# ---- the events ----------------------------------------------------------------------------------------------


def events(harness: Harness) -> list[Envelope[Any]]:
    """Every event of the history, each aggregate's in its order (the harness numbers their versions)."""
    out: list[Envelope[Any]] = []
    visits = {visit.work_order: visit for visit in VISITS}
    add_ons: dict[str, list[AddOn]] = defaultdict(list)
    for add_on in ADD_ONS:
        add_ons[add_on.work_order].append(add_on)
    for visit in VISITS:
        opened_at = visit.completed_at - timedelta(hours=3)
        out.append(
            harness.event_at(
                opened_at,
                WorkOrderOpened(
                    work_order_id=visit.work_order,
                    customer_id=visit.customer,
                    vehicle_id=visit.vehicle,
                    plate=PLATE,
                    mileage_km=40_000,
                    complaint="保养",
                    advisor_id=visit.advisor,
                    appointment_id=visit.appointment,
                    process=BUILT_IN_PROCESS,
                ),
                visit.work_order,
                branch_id=visit.branch,
            )
        )
        steps: list[tuple[datetime, Any]] = []
        for add_on in add_ons[visit.work_order]:
            steps.append(
                (
                    add_on.proposed_at,
                    AddOnProposed(
                        work_order_id=visit.work_order,
                        add_on_id=add_on.add_on,
                        item=add_on.item,
                        item_code=add_on.code,
                        category=LineCategory.PARTS,
                        price_fen=add_on.price,
                        reason="检查发现",
                        estimate_revision=1,
                        proposed_by="tom",
                    ),
                )
            )
            for decision, at in add_on.decisions:
                model = AddOnApproved if decision == "approved" else AddOnDeclined
                steps.append(
                    (
                        at,
                        model(
                            work_order_id=visit.work_order,
                            add_on_id=add_on.add_on,
                            item=add_on.item,
                            category=LineCategory.PARTS,
                            price_fen=add_on.price,
                            estimate_revision_seen=1,
                            decided_by=DecidedBy.CUSTOMER,
                            method=DecisionMethod.SIGNED_LINK,
                            decided_at=at,
                        ),
                    )
                )
        for at, event in sorted(steps, key=lambda step: step[0]):
            out.append(harness.event_at(at, event, visit.work_order, branch_id=visit.branch))
        out.append(
            harness.event_at(
                visit.completed_at, _completed(visit, opened_at), visit.work_order, branch_id=visit.branch
            )
        )
        if visit.voided_at is not None:
            out.append(
                harness.event_at(
                    visit.voided_at,
                    WorkOrderVoided(
                        work_order_id=visit.work_order,
                        customer_id=visit.customer,
                        reason="重复开单",
                        manager_id="max",
                    ),
                    visit.work_order,
                    branch_id=visit.branch,
                )
            )
    for booking in BOOKINGS:
        slot = TimeSlot(
            start=booking.booked_at + timedelta(days=3), end=booking.booked_at + timedelta(days=3, hours=1)
        )
        out.append(
            harness.event_at(
                booking.booked_at,
                AppointmentBooked(
                    appointment_id=booking.appointment,
                    channel=BookingChannel.ONLINE,
                    campaign_id=booking.campaign,
                    customer_id=booking.customer,
                    vehicle_id=booking.vehicle,
                    plate=PLATE,
                    slot=slot,
                    service_requested="保养",
                    reminder_id=booking.reminder,
                ),
                booking.appointment,
                branch_id=booking.branch,
            )
        )
        if booking.arrived is not None:
            work_order, at = booking.arrived
            out.append(
                harness.event_at(
                    at,
                    AppointmentArrived(
                        appointment_id=booking.appointment,
                        customer_id=booking.customer,
                        work_order_id=work_order,
                        arrived_at=at,
                    ),
                    booking.appointment,
                    branch_id=booking.branch,
                )
            )
        if booking.cancelled_at is not None:
            out.append(
                harness.event_at(
                    booking.cancelled_at,
                    AppointmentCancelled(
                        appointment_id=booking.appointment,
                        customer_id=booking.customer,
                        cancelled_by="customer",
                        reason="有事",
                    ),
                    booking.appointment,
                    branch_id=booking.branch,
                )
            )
        if booking.no_show_at is not None:
            out.append(
                harness.event_at(
                    booking.no_show_at,
                    AppointmentNoShow(
                        appointment_id=booking.appointment,
                        customer_id=booking.customer,
                        slot=slot,
                    ),
                    booking.appointment,
                    branch_id=booking.branch,
                )
            )
    for survey in SURVEYS:
        visit = visits[survey.work_order]
        out.append(
            harness.event_at(
                survey.sent_at,
                NpsSurveySent(
                    survey_id=survey.survey,
                    work_order_id=visit.work_order,
                    customer_id=visit.customer,
                    advisor_id=visit.advisor,
                    technician_ids=visit.technicians,
                    branch_id=visit.branch,
                    channel=Channel.WECHAT,
                    expires_at=survey.sent_at + timedelta(days=7),
                ),
                survey.survey,
                branch_id=visit.branch,
            )
        )
        if survey.score is not None and survey.answered_at is not None:
            out.append(
                harness.event_at(
                    survey.answered_at,
                    NpsAnswered(
                        survey_id=survey.survey,
                        work_order_id=visit.work_order,
                        customer_id=visit.customer,
                        advisor_id=visit.advisor,
                        technician_ids=visit.technicians,
                        branch_id=visit.branch,
                        score=survey.score,
                        comment="师傅很专业",
                    ),
                    survey.survey,
                    branch_id=visit.branch,
                )
            )
    for campaign in CAMPAIGNS:
        launched_at = datetime.combine(campaign.starts_on, time(8), tzinfo=SHANGHAI).astimezone(UTC)
        out.append(
            harness.event_at(
                launched_at,
                CampaignLaunched(
                    campaign_id=campaign.campaign,
                    campaign_name=f"活动{campaign.campaign}",
                    cost_fen=campaign.cost,
                    attribution_window_days=campaign.window_days,
                    starts_on=campaign.starts_on,
                    ends_on=campaign.ends_on,
                    coupon_codes=campaign.coupons,
                    branch_ids=campaign.branches,
                ),
                campaign.campaign,
            )
        )
        if campaign.recipients:
            out.append(
                harness.event_at(
                    launched_at + timedelta(hours=1),
                    CampaignSent(
                        campaign_id=campaign.campaign,
                        channel=Channel.SMS,
                        recipients=campaign.recipients,
                    ),
                    campaign.campaign,
                )
            )
    for reminder in REMINDERS:
        out.append(
            harness.event_at(
                reminder.sent_at,
                ReminderDue(
                    reminder_id=reminder.reminder,
                    kind=ReminderKind.SERVICE_DUE_BY_DATE,
                    vehicle_id=reminder.vehicle,
                    customer_id=reminder.customer,
                    due_on=reminder.sent_at.date(),
                    preferred_branch_id=reminder.branch,
                ),
                reminder.reminder,
            )
        )
    for survivor, merged, at in MERGES:
        out.append(
            harness.event_at(
                at, CustomersMerged(surviving_customer_id=survivor, merged_customer_ids=merged), survivor
            )
        )
    for customer, at in ERASED:
        out.append(
            harness.event_at(
                at, CustomerErased(customer_id=customer, erasure_request_id=f"erase-{customer}"), customer
            )
        )
    return out


def _completed(visit: Visit, opened_at: datetime) -> WorkOrderCompleted:
    items = tuple(
        LineItem(
            item_code=line.code,
            name=line.name,
            category=LineCategory(line.category),
            quantity=Decimal(1),
            unit_price_fen=line.revenue,
            cost_fen=line.cost,
            line_total_fen=line.revenue,
            add_on_id=line.add_on,
        )
        for line in visit.lines
    )
    return WorkOrderCompleted(
        work_order_id=visit.work_order,
        customer_id=visit.customer,
        line_items=items,
        coupon_code=visit.coupon,
        subtotal_fen=visit.paid,
        discount_fen=0,
        total_fen=visit.paid,
        paid_fen=visit.paid,
        payments=(Payment(method=PaymentMethod.ALIPAY, amount_fen=visit.paid, paid_at=visit.completed_at),),
        vehicle_id=visit.vehicle,
        plate=PLATE,
        mileage_km=40_000,
        branch_id=visit.branch,
        advisor_id=visit.advisor,
        technician_ids=visit.technicians,
        appointment_id=visit.appointment,
        opened_at=opened_at,
        completed_at=visit.completed_at,
    )


# ---- the KPIs, worked out from the facts ---------------------------------------------------------------------


def utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).astimezone(UTC)


START_UTC, END_UTC = utc_midnight(FROM), utc_midnight(TO)
PERIOD_DAYS = (TO - FROM).days
ALIAS = {merged: survivor for survivor, merged_ids, _ in MERGES for merged in merged_ids}


def person(customer: str) -> str:
    return ALIAS.get(customer, customer)


def in_period(at: datetime | None) -> bool:
    return at is not None and START_UTC <= at < END_UTC


def ratio(numerator: int, denominator: int) -> dict[str, Any]:
    value = None if not denominator else Decimal(round(Fraction(numerator, denominator) * 10_000)) / 10_000
    return {"numerator": numerator, "denominator": denominator, "value": value}


def to_places(value: Fraction | None, places: int) -> Decimal | None:
    if value is None:
        return None
    return Decimal(round(value * 10**places)) / 10**places


def in_days(span: timedelta) -> Fraction:
    return Fraction(span // timedelta(microseconds=1), 86_400_000_000)


@dataclass
class Expected:
    branch: str | None
    visits: list[Visit] = field(init=False)

    def __post_init__(self) -> None:
        self.visits = [v for v in VISITS if v.voided_at is None and self.branch in (None, v.branch)]

    def counts(self) -> dict[str, int]:
        per: dict[str, int] = defaultdict(int)
        for visit in self.visits:
            if in_period(visit.completed_at):
                per[person(visit.customer)] += 1
        return per

    def return_rate(self) -> dict[str, Any]:
        per = self.counts()
        return ratio(sum(1 for n in per.values() if n >= 2), len(per))

    def spend_exact(self) -> Fraction | None:
        period = [v for v in self.visits if in_period(v.completed_at)]
        customers = {person(v.customer) for v in period}
        if not customers:
            return None
        return Fraction(sum(v.paid for v in period), len(customers)) * 365 / PERIOD_DAYS

    def history(self) -> dict[str, list[datetime]]:
        per: dict[str, list[datetime]] = defaultdict(list)
        for visit in self.visits:
            if visit.completed_at < END_UTC:
                per[person(visit.customer)].append(visit.completed_at)
        return {customer: sorted(times) for customer, times in per.items()}

    def lifetimes(self) -> list[Fraction]:
        return sorted(in_days(times[-1] - times[0]) / 365 for times in self.history().values())

    def mean_lifetime(self) -> Fraction:
        years = self.lifetimes()
        return sum(years, Fraction(0)) / len(years)

    def median_lifetime(self) -> Fraction:
        years = self.lifetimes()
        middle = len(years) // 2
        return years[middle] if len(years) % 2 else (years[middle - 1] + years[middle]) / 2

    def activity(self) -> dict[str, Any]:
        firsts: dict[str, tuple[datetime, str]] = {}
        for visit in sorted((v for v in VISITS if v.voided_at is None), key=lambda v: v.completed_at):
            firsts.setdefault(person(visit.customer), (visit.completed_at, visit.branch))
        new = [c for c, (at, branch) in firsts.items() if in_period(at) and self.branch in (None, branch)]
        windows = []
        for days in (30, 90, 365):
            since = utc_midnight(TO - timedelta(days=days))
            history = self.history()
            active = sum(1 for times in history.values() if times[-1] >= since)
            windows.append({"days": days, "active": active, "churned": len(history) - active})
        return {"new": len(new), "windows": windows}

    def gaps(self) -> list[Fraction]:
        return [
            in_days(later - earlier)
            for times in self.history().values()
            for earlier, later in pairwise(times)
            if in_period(later)
        ]

    def nps(self) -> dict[str, Any]:
        answered = [s for s in SURVEYS if in_period(s.answered_at) and self._at_branch(s.work_order)]
        scores = [s.score for s in answered if s.score is not None]
        promoters = sum(1 for score in scores if score >= 9)
        detractors = sum(1 for score in scores if score <= 6)
        sent = sum(1 for s in SURVEYS if in_period(s.sent_at) and self._at_branch(s.work_order))
        return {
            "nps": to_places(Fraction(100 * (promoters - detractors), len(scores)), 1) if scores else None,
            "answers": len(scores),
            "promoters": promoters,
            "detractors": detractors,
            "surveys_sent": sent,
            "response_rate": ratio(len(scores), sent),
            "events": len(scores) + sent,
        }

    def _at_branch(self, work_order: str) -> bool:
        return self.branch in (None, next(v for v in VISITS if v.work_order == work_order).branch)

    def conversion(self) -> dict[str, Any]:
        booked = [b for b in BOOKINGS if in_period(b.booked_at) and self.branch in (None, b.branch)]
        customers = {person(b.customer) for b in booked}
        arrived = {person(b.customer) for b in booked if b.arrived is not None}
        return {
            "conversion": ratio(len(arrived), len(customers)),
            "appointments": len(booked),
            "cancelled_appointments": sum(1 for b in booked if b.cancelled_at),
            "cancelled_customers": len({person(b.customer) for b in booked if b.cancelled_at}),
            "no_shows": sum(1 for b in booked if b.no_show_at),
        }

    def reminders(self) -> dict[str, Any]:
        sent = [r for r in REMINDERS if in_period(r.sent_at) and self.branch in (None, r.branch)]
        window = timedelta(days=30)
        followed = [
            r
            for r in sent
            if any(
                (b.vehicle == r.vehicle or b.reminder == r.reminder)
                and r.sent_at <= b.booked_at < r.sent_at + window
                for b in BOOKINGS
            )
            or any(
                v.vehicle == r.vehicle
                and v.voided_at is None
                and r.sent_at <= v.completed_at < r.sent_at + window
                for v in VISITS
            )
        ]
        return ratio(len(followed), len(sent))

    def recovery(self) -> dict[str, Any]:
        orders = {v.work_order: v for v in VISITS}
        declined = []
        for add_on in ADD_ONS:
            first_decline = min((at for kind, at in add_on.decisions if kind == "declined"), default=None)
            if in_period(first_decline) and self.branch in (None, orders[add_on.work_order].branch):
                declined.append((add_on, first_decline))
        recovered = []
        for add_on, declined_at in declined:
            assert declined_at is not None
            until = declined_at + timedelta(days=90)
            vehicle = orders[add_on.work_order].vehicle
            approvals = [
                at
                for other in ADD_ONS
                for kind, at in other.decisions
                if kind == "approved"
                and declined_at < at < until
                and (
                    other.add_on == add_on.add_on
                    or (
                        orders[other.work_order].vehicle == vehicle
                        and other.code == add_on.code
                        and add_on.code
                    )
                )
            ]
            performed = [
                v.completed_at
                for v in VISITS
                if v.vehicle == vehicle
                and v.voided_at is None
                and declined_at < v.completed_at < until
                and any(line.code == add_on.code or line.add_on == add_on.add_on for line in v.lines)
            ]
            if approvals or performed:
                recovered.append(add_on)
        return {
            "by_count": ratio(len(recovered), len(declined)),
            "by_fen": ratio(sum(a.price for a in recovered), sum(a.price for a, _ in declined)),
        }

    def staff(self) -> list[dict[str, Any]]:
        orders = {v.work_order: v for v in VISITS}
        rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
            lambda: {"work_orders": 0, "revenue_fen": 0, "scores": [], "decided": 0, "approved": 0}
        )

        def people(visit: Visit) -> list[tuple[str, str]]:
            return [("advisor", visit.advisor)] + [("technician", t) for t in visit.technicians]

        for visit in self.visits:
            if in_period(visit.completed_at):
                for key in people(visit):
                    rows[key]["work_orders"] += 1
                    rows[key]["revenue_fen"] += visit.paid
        for survey in SURVEYS:
            if in_period(survey.answered_at) and self._at_branch(survey.work_order):
                for key in people(orders[survey.work_order]):
                    rows[key]["scores"].append(survey.score)
        for add_on in ADD_ONS:
            kind, at = min(add_on.decisions, key=lambda decision: decision[1])
            if in_period(at) and self._at_branch(add_on.work_order):
                for key in people(orders[add_on.work_order]):
                    rows[key]["decided"] += 1
                    rows[key]["approved"] += kind == "approved"
        listed = []
        for (role, staff_id), row in rows.items():
            scores = row["scores"]
            promoters = sum(1 for s in scores if s >= 9)
            detractors = sum(1 for s in scores if s <= 6)
            listed.append(
                {
                    "role": role,
                    "staff_id": staff_id,
                    "work_orders": row["work_orders"],
                    "revenue_fen": row["revenue_fen"],
                    "answers": len(scores),
                    "nps": to_places(Fraction(100 * (promoters - detractors), len(scores)), 1)
                    if scores
                    else None,
                    "add_ons_decided": row["decided"],
                    "add_ons_approved": row["approved"],
                    "add_on_approval_rate": ratio(row["approved"], row["decided"])["value"],
                }
            )
        return sorted(listed, key=lambda r: (r["role"], -r["revenue_fen"], r["staff_id"]))

    def popular(self) -> dict[str, dict[str, Any]]:
        items: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"count": 0, "revenue_fen": 0, "costed": 0, "cost": 0, "any_cost": False}
        )
        for visit in self.visits:
            if in_period(visit.completed_at):
                for line in visit.lines:
                    item = items[line.code]
                    item["count"] += 1
                    item["revenue_fen"] += line.revenue
                    if line.cost is not None:
                        item["costed"] += line.revenue
                        item["cost"] += line.cost
                        item["any_cost"] = True
        return {
            code: {
                "count": item["count"],
                "revenue_fen": item["revenue_fen"],
                "gross_margin_fen": item["costed"] - item["cost"] if item["any_cost"] else None,
            }
            for code, item in items.items()
        }

    def campaigns(self) -> dict[str, dict[str, Any]]:
        bookings = {b.appointment: b for b in BOOKINGS}
        answer = {}
        for campaign in CAMPAIGNS:
            if not (campaign.starts_on < TO and campaign.ends_on >= FROM):
                continue
            if self.branch is not None and campaign.branches and self.branch not in campaign.branches:
                continue
            orders = []
            for visit in self.visits:
                if visit.completed_at >= END_UTC:
                    continue
                by_coupon = visit.coupon in campaign.coupons
                booking = bookings.get(visit.appointment or "")
                by_booking = (
                    booking is not None
                    and booking.campaign == campaign.campaign
                    and booking.booked_at
                    <= visit.completed_at
                    < booking.booked_at + timedelta(days=campaign.window_days)
                )
                if by_coupon or by_booking:
                    orders.append(visit.work_order)
            revenue = sum(v.paid for v in self.visits if v.work_order in orders)
            allocated = self.branch is None or campaign.branches == (self.branch,)
            answer[campaign.campaign] = {
                "orders": sorted(orders),
                "revenue_fen": revenue,
                "recipients": campaign.recipients,
                "roi": ratio(revenue - campaign.cost, campaign.cost) if allocated else None,
            }
        return answer
