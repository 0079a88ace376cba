"""Saved segments: the customers of a KPI drill-down, resolved by analytics itself and published for a
notification campaign to target (analytics.SegmentSaved, ADR 0021).

A segment is asked for as the drill-down it comes from — a KPI, its period and branch, and the filters that
narrow its list — and holds exactly the customers that drill-down lists at that moment (merged customers as
their survivor, each once), without the erased ones: a segment is for contacting people. It is computed in
one read-only snapshot, then stored (`saved_segments`) and queued for publishing in one transaction, in
batches of at most 1,000 ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pitlane_analytics.adapters import kpi_queries as q
from pitlane_analytics.domain.kpis import DETRACTOR_MAX, PROMOTER_MIN
from pitlane_analytics.service_layer.kpis import Kpis, Scope
from pitlane_events import Actor, DomainEvent, Envelope
from pitlane_events.analytics import DrillDown, SegmentSaved
from pitlane_events.types import in_batches
from pitlane_platform.db import DriverPool, Unit, execute_on_driver
from pitlane_platform.errors import InvalidInputError
from pitlane_platform.messaging import outbox

ListCustomers = Callable[[Kpis, Unit, Scope, Mapping[str, str]], Awaitable[list[str]]]


@dataclass(frozen=True)
class DrillDownList:
    """A KPI whose drill-down lists customers: the filters it takes (name → allowed values) and how its
    customers are read."""

    filters: Mapping[str, tuple[str, ...]]
    customers: ListCustomers


async def _activity(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    answer = await kpis.customer_activity(
        unit, scope, only=filters.get("status"), window_days=int(filters.get("days", "90"))
    )
    return [row.customer_id for row in answer.customers]


async def _return_rate(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    answer = await kpis.return_rate(unit, scope)
    wanted = filters.get("returning")
    return [
        row.customer_id
        for row in answer.customers
        if wanted is None or (row.visits >= 2) == (wanted == "true")
    ]


async def _spend(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    return [row.customer_id for row in (await kpis.spend_per_year(unit, scope)).customers]


async def _lifetime(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    return [row.customer_id for row in (await kpis.customer_lifetime(unit, scope)).customers]


async def _gaps(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    return [row.customer_id for row in (await kpis.time_between_visits(unit, scope)).gaps]


def _nps_group(score: int) -> str:
    if score >= PROMOTER_MIN:
        return "promoter"
    return "detractor" if score <= DETRACTOR_MAX else "passive"


async def _nps(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    answer = await kpis.nps(unit, scope)
    wanted = filters.get("group")
    return [row.customer_id for row in answer.answer_list if wanted in (None, _nps_group(row.score))]


async def _appointments(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    answer = await kpis.appointment_conversion(unit, scope)
    outcomes = {
        None: lambda row: True,
        "arrived": lambda row: row.arrived,
        "not_arrived": lambda row: not row.arrived,
        "cancelled": lambda row: row.cancelled,
        "no_show": lambda row: row.no_show,
    }
    matches = outcomes[filters.get("outcome")]
    return [row.customer_id for row in answer.appointment_list if matches(row)]


async def _campaign_orders(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    answer = await kpis.campaign_roi(unit, scope, campaign_id=filters.get("campaign_id"))
    return [row.customer_id for row in answer.orders]


async def _declined(kpis: Kpis, unit: Unit, scope: Scope, filters: Mapping[str, str]) -> list[str]:
    answer = await kpis.declined_work_recovery(unit, scope)
    wanted = filters.get("recovered")
    return [
        row.customer_id
        for row in answer.add_ons
        if wanted is None or (row.recovered_by is not None) == (wanted == "true")
    ]


ANY_VALUE: tuple[str, ...] = ()  # a filter that takes any id (its drill-down's own parameter)
TRUE_FALSE = ("true", "false")

# Every KPI whose drill-down lists customers; the others (LTV, staff, services, reminders) list none.
DRILL_DOWNS: dict[str, DrillDownList] = {
    "customer-activity": DrillDownList(
        {"status": ("new", "active", "churned", "lapsed"), "days": ("30", "90", "365")}, _activity
    ),
    "return-rate": DrillDownList({"returning": TRUE_FALSE}, _return_rate),
    "spend-per-year": DrillDownList({}, _spend),
    "customer-lifetime": DrillDownList({}, _lifetime),
    "time-between-visits": DrillDownList({}, _gaps),
    "nps": DrillDownList({"group": ("promoter", "passive", "detractor")}, _nps),
    "appointment-conversion": DrillDownList(
        {"outcome": ("arrived", "not_arrived", "cancelled", "no_show")}, _appointments
    ),
    "campaign-roi": DrillDownList({"campaign_id": ANY_VALUE}, _campaign_orders),
    "declined-work-recovery": DrillDownList({"recovered": TRUE_FALSE}, _declined),
}


@dataclass(frozen=True)
class SegmentRequest:
    name: str
    kpi: str
    scope: Scope
    filters: Mapping[str, str]


@dataclass(frozen=True)
class SavedSegment:
    segment_id: str
    name: str
    drill_down: DrillDown
    customer_ids: list[str]
    created_by: str
    created_at: datetime
    batches: int


def check_filters(kpi: str, filters: Mapping[str, str]) -> DrillDownList:
    """The drill-down of `kpi`, after checking `filters` against it (422 naming the field otherwise)."""
    drill_down = DRILL_DOWNS.get(kpi)
    if drill_down is None:
        raise InvalidInputError(
            "body.kpi", f"{kpi!r} lists no customers; a segment comes from one of {', '.join(DRILL_DOWNS)}"
        )
    for name, value in filters.items():
        allowed = drill_down.filters.get(name)
        if allowed is None:
            known = ", ".join(drill_down.filters) or "none"
            raise InvalidInputError(
                f"body.filters.{name}", f"{kpi} takes no filter {name!r} (it takes: {known})"
            )
        if allowed and value not in allowed:
            raise InvalidInputError(f"body.filters.{name}", f"must be one of {', '.join(allowed)}")
    return drill_down


class Segments:
    def __init__(self, kpis: Kpis, driver: DriverPool, *, chain_id: str) -> None:
        self.kpis = kpis
        self.driver = driver
        self.chain_id = chain_id

    async def customers_of(self, request: SegmentRequest) -> list[str]:
        """The drill-down's customers, each once in the order it lists them, without the erased ones."""
        drill_down = check_filters(request.kpi, request.filters)
        async with self.kpis.snapshot() as unit:
            listed = list(
                dict.fromkeys(await drill_down.customers(self.kpis, unit, request.scope, request.filters))
            )
            erased = await q.erased_among(unit, listed)
        return [customer_id for customer_id in listed if customer_id not in erased]

    async def save(self, request: SegmentRequest, *, actor: Actor, now: datetime) -> SavedSegment:
        customer_ids = await self.customers_of(request)
        if not customer_ids:
            raise InvalidInputError("body", "the drill-down lists no customer to contact: nothing to save")
        period = request.scope.period
        drill_down = DrillDown(
            kpi=request.kpi,
            period_from=period.start,
            period_to=period.end,
            branch_id=request.scope.branch_id,
            filters=dict(request.filters),
        )
        batches = in_batches(customer_ids)
        segment = SavedSegment(
            segment_id=str(uuid.uuid4()),
            name=request.name,
            drill_down=drill_down,
            customer_ids=customer_ids,
            created_by=actor.id,
            created_at=now,
            batches=len(batches),
        )
        envelopes: list[Envelope[Any]] = [
            _envelope(
                SegmentSaved(
                    segment_id=segment.segment_id,
                    segment_name=segment.name,
                    drill_down=drill_down,
                    customer_ids=batch,
                    batch_number=number,
                    batch_count=len(batches),
                    customer_count=len(customer_ids),
                    created_by=actor.id,
                ),
                segment=segment,
                version=number,
                actor=actor,
                chain_id=self.chain_id,
            )
            for number, batch in enumerate(batches, start=1)
        ]
        async with self.driver.transaction() as unit:
            await execute_on_driver(
                unit,
                "save segment",
                """
                INSERT INTO saved_segments (segment_id, name, drill_down, customer_ids, created_by, created_at)
                VALUES (%(id)s, %(name)s, %(drill_down)s::jsonb, %(ids)s::text[], %(by)s, %(at)s)
                """,
                {
                    "id": segment.segment_id,
                    "name": segment.name,
                    "drill_down": drill_down.model_dump_json(),
                    "ids": customer_ids,
                    "by": actor.id,
                    "at": now,
                },
            )
            await outbox.enqueue(unit, envelopes)
        return segment

    async def segment(self, segment_id: str) -> SavedSegment | None:
        async with self.driver.transaction() as unit:
            row = await execute_on_driver(
                unit,
                "saved segment",
                """
                SELECT segment_id, name, drill_down, customer_ids, created_by, created_at
                FROM saved_segments WHERE segment_id = %(id)s
                """,
                {"id": segment_id},
            )
        if row is None:
            return None
        segment_id, name, drill_down, customer_ids, created_by, created_at = row
        return SavedSegment(
            segment_id=segment_id,
            name=name,
            drill_down=DrillDown.model_validate(drill_down),
            customer_ids=list(customer_ids),
            created_by=created_by,
            created_at=created_at,
            batches=len(in_batches(customer_ids)),
        )


def _envelope(
    event: DomainEvent, *, segment: SavedSegment, version: int, actor: Actor, chain_id: str
) -> Envelope[Any]:
    # One aggregate per segment, its batches its versions: a consumer applies them in order.
    return Envelope.new(
        event,
        chain_id=chain_id,
        branch_id=segment.drill_down.branch_id,
        aggregate_id=segment.segment_id,
        aggregate_version=version,
        actor=actor,
        occurred_at=segment.created_at,
    )
