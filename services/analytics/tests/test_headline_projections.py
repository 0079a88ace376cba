"""The headline of a period of whole local months, answered from the projections, equals the headline answered
from the facts — for random histories of visits (some voided, some at 23:30 Shanghai time on a month's last
day), bookings, add-ons, surveys, answers, reminders, merges and an erasure, applied in random batches in any
order with redeliveries, as the consumers and a rebuild apply them — for every scope and many periods.

Hypothesis draws the histories; each example runs against the test's own real PostgreSQL database, migrated
(the facts and projections emptied first), through the consumers' own batch handlers — no consumer reads a
stream here, so nothing but the drawn history reaches the facts.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from analytics_harness import START
from hypothesis import given, settings
from hypothesis import strategies as st

from pitlane_analytics.adapters.kpi_projections import everything_at_once
from pitlane_analytics.bootstrap import MIGRATIONS, READ_MODELS
from pitlane_analytics.domain.periods import Period
from pitlane_analytics.entrypoints.consumers import build_consumers
from pitlane_analytics.service_layer.kpis import Kpis, Scope
from pitlane_events import DomainEvent, Envelope
from pitlane_events.customer_profile import CustomerErased, CustomersMerged
from pitlane_events.envelope import Actor
from pitlane_events.notification import NpsAnswered, NpsSurveySent
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
    BookingChannel,
    DecidedBy,
    DecisionMethod,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderVoided,
)
from pitlane_platform.clock import FixedClock
from pitlane_platform.db import DriverPool, execute_on_driver
from pitlane_platform.messaging.rebuild import Derivation
from pitlane_platform.migrations import upgrade

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHAIN = "test-chain"
FIRST_DAY = date(2026, 1, 1)
MONTHS = [date(2026, month, 1) for month in range(1, 10)]  # January … September 2026
CUSTOMERS = ("c1", "c2", "c3", "c4", "c5")
BRANCHES = ("b1", "b2")
PLATE = "沪A12345"


@dataclass(frozen=True)
class Visit:
    customer: str
    branch: str
    day: int  # days after FIRST_DAY
    late: bool  # at 23:30 on the last day of its month instead of the day's 10:00
    paid: int
    voided: bool
    add_on: str | None  # declined (then approved, or performed later, or neither)
    approved_later: bool
    booked: str | None  # arrived | cancelled | None
    score: int | None  # -1: surveyed, no answer
    reminded: bool  # a reminder of the vehicle some days before


visits = st.builds(
    Visit,
    customer=st.sampled_from(CUSTOMERS),
    branch=st.sampled_from(BRANCHES),
    day=st.integers(0, 240),
    late=st.booleans(),
    paid=st.integers(1_000, 90_000),
    voided=st.sampled_from((False, False, True)),
    add_on=st.sampled_from((None, "brake-pads", "wiper")),
    approved_later=st.booleans(),
    booked=st.sampled_from((None, "arrived", "cancelled")),
    score=st.one_of(st.none(), st.integers(-1, 10)),
    reminded=st.booleans(),
)


@dataclass(frozen=True)
class History:
    visits: list[Visit]
    merges: list[tuple[str, str]]  # survivor, merged
    erased: str | None


histories = st.builds(
    History,
    visits=st.lists(visits, min_size=1, max_size=14),
    merges=st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(CUSTOMERS)), max_size=2).map(
        lambda pairs: [(survivor, merged) for survivor, merged in pairs if survivor != merged]
    ),
    erased=st.one_of(st.none(), st.sampled_from(CUSTOMERS)),
)


class Envelopes:
    """Events as their producers publish them: each aggregate's versions in order, at the given times."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.versions: dict[str, int] = {}
        self.out: list[Envelope[Any]] = []

    def add(self, at: datetime, event: DomainEvent, aggregate: str, branch: str | None = None) -> None:
        version = self.versions.get(aggregate, 0) + 1
        self.versions[aggregate] = version
        self.out.append(
            Envelope.new(
                event,
                chain_id=self.chain_id,
                branch_id=branch,
                aggregate_id=aggregate,
                aggregate_version=version,
                actor=Actor.service(event.service()),
                occurred_at=at,
            )
        )


def completed_at(visit: Visit) -> datetime:
    day = FIRST_DAY + timedelta(days=visit.day)
    if visit.late:  # the last day of the month, 23:30 local: still that month's
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return datetime(following.year, following.month, following.day, tzinfo=SHANGHAI).astimezone(
            UTC
        ) - timedelta(minutes=30)
    return datetime(day.year, day.month, day.day, 10, tzinfo=SHANGHAI).astimezone(UTC)


def events_of(history: History, chain_id: str) -> list[Envelope[Any]]:
    out = Envelopes(chain_id)
    for number, visit in enumerate(history.visits):
        order, vehicle, done = f"wo{number}", f"v-{visit.customer}", completed_at(visit)
        opened = done - timedelta(hours=2)
        appointment = f"ap{number}" if visit.booked else None
        if visit.reminded:
            reminder_at = done - timedelta(days=10 + number % 30)
            out.add(
                reminder_at,
                ReminderDue(
                    reminder_id=f"r{number}",
                    kind=ReminderKind.SERVICE_DUE_BY_DATE,
                    vehicle_id=vehicle,
                    customer_id=visit.customer,
                    due_on=reminder_at.date(),
                    preferred_branch_id=visit.branch,
                ),
                f"r{number}",
            )
        if appointment is not None:
            booked_at = opened - timedelta(days=3)
            out.add(
                booked_at,
                AppointmentBooked(
                    appointment_id=appointment,
                    channel=BookingChannel.ONLINE,
                    customer_id=visit.customer,
                    vehicle_id=vehicle,
                    plate=PLATE,
                    slot=TimeSlot(start=opened, end=opened + timedelta(hours=1)),
                    service_requested="保养",
                    reminder_id=f"r{number}" if visit.reminded else None,
                ),
                appointment,
                visit.branch,
            )
            if visit.booked == "arrived":
                out.add(
                    opened,
                    AppointmentArrived(
                        appointment_id=appointment,
                        customer_id=visit.customer,
                        work_order_id=order,
                        arrived_at=opened,
                    ),
                    appointment,
                    visit.branch,
                )
            else:
                out.add(
                    booked_at + timedelta(days=1),
                    AppointmentCancelled(
                        appointment_id=appointment,
                        customer_id=visit.customer,
                        cancelled_by="customer",
                        reason="有事",
                    ),
                    appointment,
                    visit.branch,
                )
        out.add(
            opened,
            WorkOrderOpened(
                work_order_id=order,
                customer_id=visit.customer,
                vehicle_id=vehicle,
                plate=PLATE,
                mileage_km=40_000,
                complaint="保养",
                advisor_id="amy",
                appointment_id=appointment if visit.booked == "arrived" else None,
                process=BUILT_IN_PROCESS,
            ),
            order,
            visit.branch,
        )
        if visit.add_on is not None:
            add_on, decided = f"ao{number}", opened + timedelta(minutes=30)
            decision = {
                "work_order_id": order,
                "add_on_id": add_on,
                "item": visit.add_on,
                "category": LineCategory.PARTS,
                "price_fen": 5_000 + number,
                "estimate_revision_seen": 1,
                "decided_by": DecidedBy.CUSTOMER,
                "method": DecisionMethod.SIGNED_LINK,
            }
            out.add(
                opened + timedelta(minutes=10),
                AddOnProposed(
                    work_order_id=order,
                    add_on_id=add_on,
                    item=visit.add_on,
                    item_code=visit.add_on,
                    category=LineCategory.PARTS,
                    price_fen=5_000 + number,
                    reason="检查发现",
                    estimate_revision=1,
                    proposed_by="tom",
                ),
                order,
                visit.branch,
            )
            out.add(decided, AddOnDeclined(**decision, decided_at=decided), order, visit.branch)
            if visit.approved_later:
                out.add(
                    decided + timedelta(hours=1),
                    AddOnApproved(**decision, decided_at=decided + timedelta(hours=1)),
                    order,
                    visit.branch,
                )
        line = visit.add_on or "oil-change"
        out.add(
            done,
            WorkOrderCompleted(
                work_order_id=order,
                customer_id=visit.customer,
                line_items=(
                    LineItem(
                        item_code=line,
                        name=line,
                        category=LineCategory.PARTS,
                        quantity=Decimal(1),
                        unit_price_fen=visit.paid,
                        cost_fen=None,
                        line_total_fen=visit.paid,
                    ),
                ),
                subtotal_fen=visit.paid,
                discount_fen=0,
                total_fen=visit.paid,
                paid_fen=visit.paid,
                payments=(Payment(method=PaymentMethod.ALIPAY, amount_fen=visit.paid, paid_at=done),),
                vehicle_id=vehicle,
                plate=PLATE,
                mileage_km=40_000,
                branch_id=visit.branch,
                advisor_id="amy",
                technician_ids=("tom",),
                appointment_id=appointment if visit.booked == "arrived" else None,
                opened_at=opened,
                completed_at=done,
            ),
            order,
            visit.branch,
        )
        if visit.voided:
            out.add(
                done + timedelta(days=1),
                WorkOrderVoided(
                    work_order_id=order, customer_id=visit.customer, reason="重复开单", manager_id="max"
                ),
                order,
                visit.branch,
            )
        if visit.score is not None:
            survey, sent = f"s{number}", done + timedelta(hours=4)
            people = {
                "survey_id": survey,
                "work_order_id": order,
                "customer_id": visit.customer,
                "advisor_id": "amy",
                "technician_ids": ("tom",),
                "branch_id": visit.branch,
            }
            out.add(
                sent,
                NpsSurveySent(**people, channel=Channel.WECHAT, expires_at=sent + timedelta(days=7)),
                survey,
                visit.branch,
            )
            if visit.score >= 0:
                out.add(
                    sent + timedelta(days=2), NpsAnswered(**people, score=visit.score), survey, visit.branch
                )
    last = max(envelope.occurred_at for envelope in out.out)
    for number, (survivor, merged) in enumerate(history.merges):
        out.add(
            last + timedelta(days=number + 1),
            CustomersMerged(surviving_customer_id=survivor, merged_customer_ids=(merged,)),
            survivor,
        )
    if history.erased is not None:
        out.add(
            last + timedelta(days=10),
            CustomerErased(customer_id=history.erased, erasure_request_id=f"erase-{history.erased}"),
            history.erased,
        )
    return out.out


async def apply_in_batches(
    driver: DriverPool, envelopes: list[Envelope[Any]], shuffle: random.Random
) -> None:
    """Apply the events as the consumers' batch handlers do, in random batches of any order, each batch type by
    type (as a rebuild does), some events twice. Merges come last: the consumers of customer-profile may run
    behind workorder's, or ahead — both are drawn. Some histories are partly replayed as a rebuild replays
    them: the first events' batches leave the projections alone (`derived_later`), computed whole after them
    (`everything_at_once`, its parts side by side as a rebuild runs them), and the rest follow as live."""
    handlers = {
        event_type: consumer.batch_handlers[event_type]
        for consumer in build_consumers(SHANGHAI)
        for event_type in consumer.batch_handlers
    }
    queue = envelopes + shuffle.sample(envelopes, k=len(envelopes) // 4)  # redeliveries
    shuffle.shuffle(queue)
    applied: set[Any] = set()
    replayed = shuffle.choice((0, len(queue), shuffle.randint(0, len(queue))))
    derived_later = replayed > 0
    while queue:
        if derived_later and len(applied) >= replayed:
            await derive_as_a_rebuild_does(driver)
            derived_later = False
        size = shuffle.randint(1, 12)
        batch, queue = queue[:size], queue[size:]
        by_type: dict[str, list[tuple[Envelope[Any], Any]]] = {}
        for envelope in batch:
            if envelope.event_id in applied:  # the inbox keeps a redelivery out
                continue
            applied.add(envelope.event_id)
            by_type.setdefault(envelope.event_type, []).append((envelope, envelope.data))
        async with driver.transaction() as unit:
            for event_type, events in by_type.items():
                await handlers[event_type](unit, events, FixedClock(START), derived_later=derived_later)
    if derived_later:
        await derive_as_a_rebuild_does(driver)


async def derive_as_a_rebuild_does(driver: DriverPool) -> None:
    """Every part of the projections at once, each in its own transaction (ReadModels.derive)."""

    async def derive(part: Derivation) -> None:
        async with driver.transaction() as unit:
            await part(unit)

    await asyncio.gather(*(derive(part) for part in everything_at_once(SHANGHAI)))


async def empty_read_models(driver: DriverPool) -> None:
    names = ", ".join(table.name for table in READ_MODELS)
    async with driver.transaction() as unit:
        await execute_on_driver(unit, "empty read models", f"TRUNCATE {names}", {})


def periods(shuffle: random.Random) -> list[Period]:
    single = [Period(start, end, SHANGHAI) for start, end in pairwise(MONTHS)]
    longer = []
    for _ in range(3):
        start, end = sorted(shuffle.sample(MONTHS, k=2))
        longer.append(Period(start, end, SHANGHAI))
    return single + longer


async def headlines_agree(kpis: Kpis, shuffle: random.Random) -> None:
    async with kpis.snapshot() as unit:
        for period in periods(shuffle):
            for branch in (None, *BRANCHES):
                scope = Scope(period, branch)
                projected = await kpis.headline(unit, scope)
                figures, events = await kpis.headline_from_facts(unit, scope)
                from_facts = projected.model_copy(update={**figures, "events": events})
                assert projected == from_facts, (period, branch)


async def test_the_projections_answer_as_the_facts_do_for_random_histories(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    driver = DriverPool(database_url, max_size=2)
    await driver.open()
    kpis = Kpis(driver, chain_id=CHAIN, timezone=SHANGHAI)
    loop = asyncio.get_running_loop()

    @settings(max_examples=20, deadline=None, database=None)  # no example files in the tree
    @given(history=histories, seed=st.integers(0, 2**32))
    def check(history: History, seed: int) -> None:
        async def example() -> None:
            shuffle = random.Random(seed)
            await empty_read_models(driver)
            await apply_in_batches(driver, events_of(history, CHAIN), shuffle)
            await headlines_agree(kpis, shuffle)

        asyncio.run_coroutine_threadsafe(example(), loop).result()

    try:
        await asyncio.to_thread(check)
    finally:
        await driver.close()
