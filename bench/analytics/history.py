"""A chain's history for the analytics bench: five branches, two years of visits by returning customers, with
the bookings, add-ons, NPS surveys and answers, reminders, voids and merges around them — the events each
producer publishes, made with the events' own models, published on the producers' streams as their relays
would (each event's id as its message id)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import nats

from pitlane_events import DomainEvent, Envelope, encode
from pitlane_events.codec import MSG_ID_HEADER
from pitlane_events.customer_profile import CustomersMerged
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
from pitlane_platform.messaging.streams import declare_stream, service_stream

CHAIN = "bench-chain"
BRANCHES = ("b1", "b2", "b3", "b4", "b5")
SOURCES = ("workorder", "notification", "reminder", "customer-profile")
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 730
PLATE = "沪A12345"
# A little more than the events a visit brings on average (its own two and what goes with it), so that the
# last events are merges: 1,000,000 events are about 217,000 visits by 57,000 customers.
EVENTS_PER_VISIT = 4.6
VISITS_PER_CUSTOMER = 3.8
ITEMS = (
    ("oil-change", "机油保养", LineCategory.PACKAGE, 38_000, 21_000),
    ("brake-pads", "刹车片更换", LineCategory.PARTS, 56_000, 30_000),
    ("tyre-rotation", "轮胎换位", LineCategory.LABOUR, 8_000, None),
    ("ac-clean", "空调清洗", LineCategory.CONSUMABLES, 18_000, 6_000),
    ("wiper", "雨刮", LineCategory.PARTS, 9_000, 3_500),
)


@dataclass(frozen=True)
class Published:
    events: int
    visits: int
    customers: int
    per_source: dict[str, int]


class _Versions:
    def __init__(self) -> None:
        self.of: dict[str, int] = {}

    def envelope(
        self, source: str, at: datetime, event: DomainEvent, aggregate_id: str, branch_id: str | None
    ) -> Envelope[Any]:
        version = self.of.get(aggregate_id, 0) + 1
        self.of[aggregate_id] = version
        return Envelope.new(
            event,
            chain_id=CHAIN,
            branch_id=branch_id,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            actor=Actor.service(source),
            occurred_at=at,
        )


def history(events: int, *, seed: int = 20261206) -> Iterator[Envelope[Any]]:
    """About `events` events (each aggregate's in its order), ending when the count is reached."""
    rng = random.Random(seed)
    visits = max(1, round(events / EVENTS_PER_VISIT))
    customers = max(1, round(visits / VISITS_PER_CUSTOMER))
    versions = _Versions()
    produced = 0
    for number in range(visits):
        customer = rng.randrange(customers)
        for envelope in _visit(rng, versions, number, customer):
            yield envelope
            produced += 1
            if produced >= events:
                return
    # The rest: duplicate customers the front desk found and merged, each customer in one merge at most.
    pairs = rng.sample(range(customers), 2 * min(customers // 2, events - produced))
    for index in range(0, len(pairs), 2):
        survivor, duplicate = pairs[index], pairs[index + 1]
        yield versions.envelope(
            "customer-profile",
            START + timedelta(days=DAYS, seconds=index),
            CustomersMerged(surviving_customer_id=f"c{survivor}", merged_customer_ids=(f"c{duplicate}",)),
            f"c{survivor}",
            None,
        )


def _visit(
    rng: random.Random, versions: _Versions, number: int, customer_number: int
) -> Iterator[Envelope[Any]]:
    customer, vehicle = f"c{customer_number}", f"v{customer_number}"
    branch = BRANCHES[customer_number % len(BRANCHES)] if rng.random() < 0.85 else rng.choice(BRANCHES)
    work_order = f"wo{number}"
    opened_at = START + timedelta(seconds=rng.randrange(DAYS * 86_400 - 10 * 86_400))
    completed_at = opened_at + timedelta(hours=rng.choice((1, 2, 3, 5)))
    advisor, technicians = f"adv-{branch}-{rng.randrange(4)}", (f"tech-{branch}-{rng.randrange(8)}",)
    appointment = f"ap{number}" if rng.random() < 0.35 else None

    def workorder(at: datetime, event: DomainEvent, aggregate: str) -> Envelope[Any]:
        return versions.envelope("workorder", at, event, aggregate, branch)

    if appointment is not None:
        booked_at = opened_at - timedelta(days=rng.randrange(1, 10))
        yield workorder(booked_at, _booked(appointment, customer, vehicle, booked_at, opened_at), appointment)
        yield workorder(
            opened_at,
            AppointmentArrived(
                appointment_id=appointment,
                customer_id=customer,
                work_order_id=work_order,
                arrived_at=opened_at,
            ),
            appointment,
        )
    if rng.random() < 0.1:  # a booking cancelled on another day
        cancelled = f"ap{number}x"
        booked_at = opened_at - timedelta(days=30)
        yield workorder(booked_at, _booked(cancelled, customer, vehicle, booked_at, opened_at), cancelled)
        yield workorder(
            booked_at + timedelta(days=1),
            AppointmentCancelled(
                appointment_id=cancelled, customer_id=customer, cancelled_by="customer", reason="有事"
            ),
            cancelled,
        )
    yield workorder(
        opened_at,
        WorkOrderOpened(
            work_order_id=work_order,
            customer_id=customer,
            vehicle_id=vehicle,
            plate=PLATE,
            mileage_km=10_000 + number % 90_000,
            complaint="保养",
            advisor_id=advisor,
            appointment_id=appointment,
            process=BUILT_IN_PROCESS,
        ),
        work_order,
    )
    lines = [rng.choice(ITEMS) for _ in range(rng.choice((1, 2, 2, 3)))]
    add_on = None
    if rng.random() < 0.15:
        add_on = f"ao{number}"
        code, name, category, price, _ = rng.choice(ITEMS)
        yield workorder(
            opened_at + timedelta(minutes=30),
            AddOnProposed(
                work_order_id=work_order,
                add_on_id=add_on,
                item=name,
                item_code=code,
                category=category,
                price_fen=price,
                reason="检查发现",
                estimate_revision=1,
                proposed_by=technicians[0],
            ),
            work_order,
        )
        decision = AddOnApproved if rng.random() < 0.6 else AddOnDeclined
        yield workorder(
            opened_at + timedelta(minutes=45),
            decision(
                work_order_id=work_order,
                add_on_id=add_on,
                item=name,
                category=category,
                price_fen=price,
                estimate_revision_seen=1,
                decided_by=DecidedBy.CUSTOMER,
                method=DecisionMethod.SIGNED_LINK,
                decided_at=opened_at + timedelta(minutes=45),
            ),
            work_order,
        )
    paid = sum(line[3] for line in lines)
    items = tuple(
        LineItem(
            item_code=code,
            name=name,
            category=category,
            quantity=Decimal(1),
            unit_price_fen=price,
            cost_fen=cost,
            line_total_fen=price,
        )
        for code, name, category, price, cost in lines
    )
    yield workorder(
        completed_at,
        WorkOrderCompleted(
            work_order_id=work_order,
            customer_id=customer,
            line_items=items,
            subtotal_fen=paid,
            discount_fen=0,
            total_fen=paid,
            paid_fen=paid,
            payments=(Payment(method=PaymentMethod.WECHAT_PAY, amount_fen=paid, paid_at=completed_at),),
            vehicle_id=vehicle,
            plate=PLATE,
            mileage_km=10_000 + number % 90_000,
            branch_id=branch,
            advisor_id=advisor,
            technician_ids=technicians,
            appointment_id=appointment,
            opened_at=opened_at,
            completed_at=completed_at,
        ),
        work_order,
    )
    if rng.random() < 0.01:
        yield workorder(
            completed_at + timedelta(hours=2),
            WorkOrderVoided(
                work_order_id=work_order, customer_id=customer, reason="重复开单", manager_id="max"
            ),
            work_order,
        )
    if rng.random() < 0.6:
        survey, sent_at = f"s{number}", completed_at + timedelta(hours=2)
        yield versions.envelope(
            "notification",
            sent_at,
            NpsSurveySent(
                survey_id=survey,
                work_order_id=work_order,
                customer_id=customer,
                advisor_id=advisor,
                technician_ids=technicians,
                branch_id=branch,
                channel=Channel.WECHAT,
                expires_at=sent_at + timedelta(days=7),
            ),
            survey,
            branch,
        )
        if rng.random() < 0.5:
            yield versions.envelope(
                "notification",
                sent_at + timedelta(hours=5),
                NpsAnswered(
                    survey_id=survey,
                    work_order_id=work_order,
                    customer_id=customer,
                    advisor_id=advisor,
                    technician_ids=technicians,
                    branch_id=branch,
                    score=rng.choice((3, 6, 7, 8, 9, 9, 10, 10)),
                ),
                survey,
                branch,
            )
    if rng.random() < 0.4:
        reminder, sent_at = f"r{number}", completed_at + timedelta(days=150)
        yield versions.envelope(
            "reminder",
            sent_at,
            ReminderDue(
                reminder_id=reminder,
                kind=ReminderKind.SERVICE_DUE_BY_DATE,
                vehicle_id=vehicle,
                customer_id=customer,
                due_on=sent_at.date(),
                preferred_branch_id=branch,
            ),
            reminder,
            None,
        )


def _booked(
    appointment: str, customer: str, vehicle: str, booked_at: datetime, slot_start: datetime
) -> AppointmentBooked:
    return AppointmentBooked(
        appointment_id=appointment,
        channel=BookingChannel.ONLINE,
        customer_id=customer,
        vehicle_id=vehicle,
        plate=PLATE,
        slot=TimeSlot(start=slot_start, end=slot_start + timedelta(hours=1)),
        service_requested="保养",
    )


async def publish(nats_url: str, events: int) -> Published:
    """The history on fresh producer streams; returns what was published (checked against the streams)."""
    connection = await nats.connect(nats_url, pending_size=64 * 1024 * 1024)
    try:
        js = connection.jetstream()
        for source in SOURCES:
            await declare_stream(js, service_stream(source))
        per_source = dict.fromkeys(SOURCES, 0)
        customers, visits = set(), 0
        for count, envelope in enumerate(history(events), start=1):
            message = encode(envelope)
            # Core publishes, flushed now and then: the stream's own count below proves every one was kept.
            await connection.publish(
                message.subject,
                message.payload,
                headers={**message.headers, MSG_ID_HEADER: str(envelope.event_id)},
            )
            per_source[envelope.event_type.split(".")[0]] += 1
            if isinstance(envelope.data, WorkOrderCompleted):
                visits += 1
                customers.add(envelope.data.customer_id)
            if count % 5_000 == 0:
                await connection.flush(timeout=60)
        await connection.flush(timeout=60)
        for source, sent in per_source.items():
            for _ in range(600):
                stored = (await js.stream_info(service_stream(source).name)).state.messages
                if stored == sent:
                    break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{source}'s stream holds {stored} of the {sent} events published")
        return Published(sum(per_source.values()), visits, len(customers), per_source)
    finally:
        await connection.close()
