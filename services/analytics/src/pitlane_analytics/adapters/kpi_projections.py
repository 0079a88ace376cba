"""The headline's projections (tables.py: `customer_visits`, `visit_months`, `month_boundaries`,
`lifetime_histogram`; ADR 0024): kept in step with the facts in the writers' transaction, read for periods
made of whole local months.

A customer's rows are recomputed whole whenever one of their visits may have changed (a visit completed,
voided or opened, a merge): the rows they had are deleted and their sums taken off the aggregates, the rows
their visits give now are inserted and their sums added. Each step is one statement over the customers a
batch touches, so a batch costs what its customers' visits do, and the outcome depends only on the facts:
any order of arrival, any redelivery, the same rows.

Common parameters: `zone`, the chain's time zone (months are its local months); `scope`, '*' for the chain or
a branch id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

CHAIN_SCOPE = "*"
_WEEK_US = 7 * 86_400 * 1_000_000

# Only one transaction at a time recomputes customers: a merge and a visit of the merged customer, applied
# concurrently by two consumers, would each miss the other's facts.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('analytics.customer_visits'))"

# The contributions of rows of `customer_visits` (the relation `rows`) to the aggregates, times `sign`.
_CONTRIBUTE = """
, months AS (
    INSERT INTO visit_months AS t
        (scope, month, previous_month, previous2_month, visits, paid_fen, chain_firsts, gaps, gap_us)
    SELECT scope, month, previous_month, previous2_month, {sign} * count(*), {sign} * sum(paid_fen),
           {sign} * count(*) FILTER (WHERE chain_first), {sign} * count(gap_us), {sign} * coalesce(sum(gap_us), 0)
    FROM rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (scope, month, previous_month, previous2_month) DO UPDATE SET
        visits = t.visits + excluded.visits, paid_fen = t.paid_fen + excluded.paid_fen,
        chain_firsts = t.chain_firsts + excluded.chain_firsts, gaps = t.gaps + excluded.gaps,
        gap_us = t.gap_us + excluded.gap_us
), differences AS (
    SELECT scope, owns_from AS boundary, (previous_month = '-infinity')::int AS customers, events,
           lifetime_us, 1 AS active_30, 1 AS active_90, 1 AS active_365
    FROM rows
    UNION ALL
    SELECT scope, owns_until, 0, 0, -lifetime_us, 0, 0, 0 FROM rows WHERE owns_until <> 'infinity'
    UNION ALL
    SELECT scope, active_30_until, 0, 0, 0, -1, 0, 0 FROM rows
    UNION ALL
    SELECT scope, active_90_until, 0, 0, 0, 0, -1, 0 FROM rows
    UNION ALL
    SELECT scope, active_365_until, 0, 0, 0, 0, 0, -1 FROM rows
), boundaries AS (
    INSERT INTO month_boundaries AS t
        (scope, boundary, customers, events, lifetime_us, active_30, active_90, active_365)
    SELECT scope, boundary, {sign} * sum(customers), {sign} * sum(events), {sign} * sum(lifetime_us),
           {sign} * sum(active_30), {sign} * sum(active_90), {sign} * sum(active_365)
    FROM differences GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (scope, boundary) DO UPDATE SET
        customers = t.customers + excluded.customers, events = t.events + excluded.events,
        lifetime_us = t.lifetime_us + excluded.lifetime_us, active_30 = t.active_30 + excluded.active_30,
        active_90 = t.active_90 + excluded.active_90, active_365 = t.active_365 + excluded.active_365
), histogram AS (
    SELECT scope, owns_from AS boundary, lifetime_bucket, 1 AS customers FROM rows WHERE owns_from < owns_until
    UNION ALL
    SELECT scope, owns_until, lifetime_bucket, -1 FROM rows
    WHERE owns_from < owns_until AND owns_until <> 'infinity'
)
INSERT INTO lifetime_histogram AS t (scope, boundary, lifetime_bucket, customers)
SELECT scope, boundary, lifetime_bucket, {sign} * sum(customers) FROM histogram GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (scope, boundary, lifetime_bucket) DO UPDATE SET customers = t.customers + excluded.customers
"""

_TAKE_OFF = (
    "WITH rows AS (DELETE FROM customer_visits WHERE customer_id = ANY(%(customers)s::text[]) RETURNING *)"
    + _CONTRIBUTE.format(sign=-1)
)

# The survivors among the customers, every id merged into them, their visits, and each visit placed in its
# customer's history in the chain and at its branch (ties in time broken by work order id, as the facts'
# queries do).
_PUT_ON = """
WITH survivors AS (
    SELECT id FROM unnest(%(customers)s::text[]) AS id
    WHERE NOT EXISTS (SELECT FROM customer_aliases a WHERE a.merged_customer_id = id)
), ids AS (
    SELECT id FROM survivors
    UNION SELECT a.merged_customer_id FROM customer_aliases a JOIN survivors s ON a.surviving_customer_id = s.id
), visits AS (
    SELECT coalesce(a.surviving_customer_id, w.customer_id) AS customer_id, w.work_order_id, w.branch_id,
           w.completed_at, w.paid_fen, cardinality(w.event_ids) AS events,
           row_number() OVER (PARTITION BY coalesce(a.surviving_customer_id, w.customer_id)
                              ORDER BY w.completed_at, w.work_order_id) = 1 AS chain_first
    FROM work_orders w LEFT JOIN customer_aliases a ON a.merged_customer_id = w.customer_id
    WHERE w.customer_id IN (SELECT id FROM ids) AND w.completed_at IS NOT NULL AND w.voided_at IS NULL
), scoped AS (
    SELECT '*' AS scope, * FROM visits
    UNION ALL
    SELECT branch_id, * FROM visits WHERE branch_id IS NOT NULL
), placed AS (
    SELECT scope, work_order_id, customer_id, chain_first, paid_fen, events, completed_at,
           date_trunc('month', completed_at AT TIME ZONE %(zone)s)::date AS month,
           (completed_at AT TIME ZONE %(zone)s)::date AS day,
           lag(completed_at) OVER history AS previous_at,
           lag(completed_at, 2) OVER history AS previous2_at,
           lead(completed_at) OVER history AS next_at,
           first_value(completed_at) OVER history AS first_at
    FROM scoped
    WINDOW history AS (PARTITION BY scope, customer_id ORDER BY completed_at, work_order_id)
), owned AS (
    SELECT *, (month + interval '1 month')::date AS owns_from,
           coalesce((date_trunc('month', next_at AT TIME ZONE %(zone)s) + interval '1 month')::date,
                    'infinity') AS owns_until,
           (extract(epoch FROM completed_at - first_at) * 1000000)::bigint AS lifetime_us
    FROM placed
), rows AS (
    INSERT INTO customer_visits
    SELECT scope, work_order_id, customer_id, month,
           coalesce(date_trunc('month', previous_at AT TIME ZONE %(zone)s)::date, '-infinity'),
           coalesce(date_trunc('month', previous2_at AT TIME ZONE %(zone)s)::date, '-infinity'),
           chain_first, paid_fen, events,
           (extract(epoch FROM completed_at - previous_at) * 1000000)::bigint,
           owns_from, owns_until,
           least(owns_until, (date_trunc('month', (day + 30)::timestamp) + interval '1 month')::date),
           least(owns_until, (date_trunc('month', (day + 90)::timestamp) + interval '1 month')::date),
           least(owns_until, (date_trunc('month', (day + 365)::timestamp) + interval '1 month')::date),
           lifetime_us,
           CASE WHEN lifetime_us = 0 THEN 0 ELSE 1 + lifetime_us / %(week_us)s END
    FROM owned
    RETURNING *
)""" + _CONTRIBUTE.format(sign=1)


async def recompute_customers(unit: Unit, customer_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recompute the rows of these customers (as given: merged ids, survivors, or both)."""
    if not customer_ids:
        return
    await execute_on_driver(unit, "lock customer visits", _LOCK, {})
    rows = await fetch_on_driver(
        unit,
        "customers touched",
        """
        SELECT DISTINCT unnest(ARRAY[c.id, coalesce(a.surviving_customer_id, c.id)]) AS id
        FROM unnest(%(ids)s::text[]) AS c(id) LEFT JOIN customer_aliases a ON a.merged_customer_id = c.id
        ORDER BY 1
        """,
        {"ids": sorted(set(customer_ids))},
    )
    touched = [row[0] for row in rows]
    await execute_on_driver(unit, "take off customer visits", _TAKE_OFF, {"customers": touched})
    await execute_on_driver(
        unit,
        "put on customer visits",
        _PUT_ON,
        {"customers": touched, "zone": zone.key, "week_us": _WEEK_US},
    )


async def recompute_orders(unit: Unit, work_order_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recompute the customers of these work orders: whose they are now, and whose rows hold them."""
    rows = await fetch_on_driver(
        unit,
        "customers of orders",
        """
        SELECT customer_id FROM work_orders WHERE work_order_id = ANY(%(ids)s::text[])
        UNION SELECT customer_id FROM customer_visits WHERE work_order_id = ANY(%(ids)s::text[])
        """,
        {"ids": sorted(set(work_order_ids))},
    )
    await recompute_customers(unit, [row[0] for row in rows], zone)


@dataclass(frozen=True)
class VisitFigures:
    """The visit-based figures of a scope over whole months [start, end)."""

    customers_with_visits: int
    returning_customers: int
    paid_fen: int
    new_customers: int
    gaps: int
    gap_us: int
    customers_before_end: int
    events_before_end: int
    lifetime_us_before_end: int
    active: dict[int, int]  # window days → customers active at `end`


async def visit_figures(unit: Unit, *, scope: str, start: date, end: date) -> VisitFigures:
    [row] = await fetch_on_driver(
        unit,
        "visit figures",
        """
        SELECT * FROM (
            SELECT coalesce(sum(visits) FILTER (WHERE previous_month < %(start)s), 0)::bigint AS with_visits,
                   coalesce(sum(visits) FILTER (WHERE previous_month >= %(start)s
                                                  AND previous2_month < %(start)s), 0)::bigint AS returning,
                   coalesce(sum(paid_fen), 0)::bigint AS paid_fen, coalesce(sum(chain_firsts), 0)::bigint AS new,
                   coalesce(sum(gaps), 0)::bigint AS gaps, coalesce(sum(gap_us), 0)::bigint AS gap_us
            FROM visit_months WHERE scope = %(scope)s AND month >= %(start)s AND month < %(end)s
        ) months, (
            SELECT coalesce(sum(customers), 0)::bigint AS customers, coalesce(sum(events), 0)::bigint AS events,
                   coalesce(sum(lifetime_us), 0)::bigint AS lifetime_us,
                   coalesce(sum(active_30), 0)::bigint AS active_30,
                   coalesce(sum(active_90), 0)::bigint AS active_90,
                   coalesce(sum(active_365), 0)::bigint AS active_365
            FROM month_boundaries WHERE scope = %(scope)s AND boundary <= %(end)s
        ) boundaries
        """,
        {"scope": scope, "start": start, "end": end},
        as_dicts=True,
    )
    return VisitFigures(
        customers_with_visits=row["with_visits"],
        returning_customers=row["returning"],
        paid_fen=row["paid_fen"],
        new_customers=row["new"],
        gaps=row["gaps"],
        gap_us=row["gap_us"],
        customers_before_end=row["customers"],
        events_before_end=row["events"],
        lifetime_us_before_end=row["lifetime_us"],
        active={days: row[f"active_{days}"] for days in (30, 90, 365)},
    )


async def lifetimes_at(unit: Unit, *, scope: str, end: date, ranks: Collection[int]) -> dict[int, int]:
    """The lifetimes (µs) at these ranks (0-based, ascending) among the customers with a visit before `end`."""
    buckets = await fetch_on_driver(
        unit,
        "lifetime histogram",
        """
        SELECT lifetime_bucket, sum(customers)::bigint FROM lifetime_histogram
        WHERE scope = %(scope)s AND boundary <= %(end)s
        GROUP BY lifetime_bucket HAVING sum(customers) <> 0 ORDER BY lifetime_bucket
        """,
        {"scope": scope, "end": end},
    )
    wanted: dict[int, list[tuple[int, int]]] = {}  # bucket → (rank, rank within the bucket)
    below = 0
    for bucket, customers in buckets:
        for rank in ranks:
            if below <= rank < below + customers:
                wanted.setdefault(bucket, []).append((rank, rank - below))
        below += customers
    found: dict[int, int] = {}
    for bucket, positions in wanted.items():
        if bucket == 0:  # a bucket of customers with no lifetime
            found |= {rank: 0 for rank, _ in positions}
            continue
        first = min(within for _, within in positions)
        rows = await fetch_on_driver(
            unit,
            "lifetimes in a bucket",
            """
            SELECT lifetime_us FROM customer_visits
            WHERE scope = %(scope)s AND lifetime_bucket = %(bucket)s
              AND owns_from <= %(end)s AND owns_until > %(end)s
            ORDER BY lifetime_us OFFSET %(first)s LIMIT %(count)s
            """,
            {
                "scope": scope,
                "bucket": bucket,
                "end": end,
                "first": first,
                "count": max(within for _, within in positions) - first + 1,
            },
        )
        found |= {rank: rows[within - first][0] for rank, within in positions}
    return found


def scope_key(branch_id: str | None) -> str:
    return CHAIN_SCOPE if branch_id is None else branch_id
