"""The headline's projections (tables.py: `customer_visits`, `visit_months`, `month_boundaries`,
`lifetime_histogram`, `counted_facts`, `month_counts`, `customer_appointments`, `appointment_months`; ADR
0026): kept in step with the facts in the writers' transaction, read for periods made of whole local months.

A customer's visits (bookings) are recomputed whole whenever one of them may have changed (completed, voided,
booked, arrived, merged); a counted fact whenever it or what it depends on may have: the rows they had are
deleted and their sums taken off the aggregates, the rows the facts give now are inserted and their sums
added. Each step is one statement over what a batch touches, so a batch costs what its customers' visits and
its facts do, and the outcome depends only on the facts: any order of arrival, any redelivery, the same rows.

Common parameters: `zone`, the chain's time zone (months are its local months); `scope`, '*' (`CHAIN_SCOPE`)
for the chain or a branch id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from functools import partial
from zoneinfo import ZoneInfo

from pitlane_analytics.adapters.kpi_queries import CHAIN_VISITS, declined_recovered, reminders_followed
from pitlane_analytics.adapters.tables import COUNTS
from pitlane_analytics.domain.kpis import DETRACTOR_MAX, PROMOTER_MIN
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_platform.messaging.rebuild import Derivation

CHAIN_SCOPE = "*"
_WEEK_US = 7 * 86_400 * 1_000_000


async def hold_projections(unit: Unit) -> None:
    """Until the transaction ends, no other brings the projections in step: a merge and a visit of the merged
    customer, or a reminder and a visit of its vehicle, applied at once by two consumers would each miss the
    other's facts; in turn, the second reads the first's, committed."""
    await execute_on_driver(
        unit, "hold projections", "SELECT pg_advisory_xact_lock(hashtext('analytics.projections'))", {}
    )


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
    SELECT scope, owns_from AS boundary, (previous_month = '-infinity')::int AS customers,
           lifetime_us, 1 AS active_30, 1 AS active_90, 1 AS active_365
    FROM rows
    UNION ALL
    SELECT scope, owns_until, 0, -lifetime_us, 0, 0, 0 FROM rows WHERE owns_until <> 'infinity'
    UNION ALL
    SELECT scope, active_30_until, 0, 0, -1, 0, 0 FROM rows
    UNION ALL
    SELECT scope, active_90_until, 0, 0, 0, -1, 0 FROM rows
    UNION ALL
    SELECT scope, active_365_until, 0, 0, 0, 0, -1 FROM rows
), boundaries AS (
    INSERT INTO month_boundaries AS t (scope, boundary, customers, lifetime_us, active_30, active_90, active_365)
    SELECT scope, boundary, {sign} * sum(customers), {sign} * sum(lifetime_us),
           {sign} * sum(active_30), {sign} * sum(active_90), {sign} * sum(active_365)
    FROM differences GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (scope, boundary) DO UPDATE SET
        customers = t.customers + excluded.customers, lifetime_us = t.lifetime_us + excluded.lifetime_us, active_30 = t.active_30 + excluded.active_30,
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
           w.completed_at, w.paid_fen,
           row_number() OVER (PARTITION BY coalesce(a.surviving_customer_id, w.customer_id)
                              ORDER BY w.completed_at, w.work_order_id) = 1 AS chain_first
    FROM work_orders w LEFT JOIN customer_aliases a ON a.merged_customer_id = w.customer_id
    WHERE w.customer_id IN (SELECT id FROM ids) AND w.completed_at IS NOT NULL AND w.voided_at IS NULL
), scoped AS (
    SELECT '*' AS scope, * FROM visits
    UNION ALL
    SELECT branch_id, * FROM visits WHERE branch_id IS NOT NULL
), placed AS (
    SELECT scope, work_order_id, customer_id, chain_first, paid_fen, completed_at,
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
    INSERT INTO customer_visits (
        scope, work_order_id, customer_id, month, previous_month, previous2_month, chain_first, paid_fen, gap_us,
        owns_from, owns_until, active_30_until, active_90_until, active_365_until, lifetime_us, lifetime_bucket
    )
    SELECT scope, work_order_id, customer_id, month,
           coalesce(date_trunc('month', previous_at AT TIME ZONE %(zone)s)::date, '-infinity'),
           coalesce(date_trunc('month', previous2_at AT TIME ZONE %(zone)s)::date, '-infinity'),
           chain_first, paid_fen,
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
    touched = await _touched(unit, customer_ids)
    await execute_on_driver(unit, "take off customer visits", _TAKE_OFF, {"customers": touched})
    await execute_on_driver(
        unit,
        "put on customer visits",
        _PUT_ON,
        {"customers": touched, "zone": zone.key, "week_us": _WEEK_US},
    )


async def _touched(unit: Unit, customer_ids: Collection[str]) -> list[str]:
    """The customers as given and their survivors: whose rows go, and whose rows come."""
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
    return [row[0] for row in rows]


async def recompute_customers_of_orders(unit: Unit, work_order_ids: Collection[str], zone: ZoneInfo) -> None:
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


# ---- counted facts: visits, bookings, NPS answers, surveys, reminders, declined add-ons ------------------------

# Per kind, the facts (those of `%(ids)s`) with their branch, time (`at`) and customer, and what each counts.
_COUNTED: dict[str, tuple[str, dict[str, str]]] = {
    "visit": (
        "SELECT work_order_id AS fact_id, branch_id, completed_at AS at, NULL AS customer_id, events FROM ("
        f"WITH {CHAIN_VISITS} SELECT * FROM chain_visits WHERE work_order_id = ANY(%(ids)s::text[])) v",
        {"visit_events": "events"},
    ),
    "booking": (
        "SELECT appointment_id AS fact_id, branch_id, booked_at AS at, NULL AS customer_id, "
        "cardinality(event_ids) AS events FROM appointments "
        "WHERE appointment_id = ANY(%(ids)s::text[]) AND booked_at IS NOT NULL",
        {"booking_events": "events"},
    ),
    "answer": (
        "SELECT survey_id AS fact_id, branch_id, answered_at AS at, customer_id, score FROM nps_answers "
        "WHERE survey_id = ANY(%(ids)s::text[])",
        {
            "promoters": f"(score >= {PROMOTER_MIN})::int",
            "passives": f"(score > {DETRACTOR_MAX} AND score < {PROMOTER_MIN})::int",
            "detractors": f"(score <= {DETRACTOR_MAX})::int",
        },
    ),
    "survey": (
        "SELECT survey_id AS fact_id, branch_id, sent_at AS at, NULL AS customer_id FROM surveys "
        "WHERE survey_id = ANY(%(ids)s::text[])",
        {"surveys": "1"},
    ),
    "reminder": (
        "SELECT event_id AS fact_id, branch_id, sent_at AS at, NULL AS customer_id, followed_by FROM ("
        + reminders_followed("r.event_id = ANY(%(ids)s::text[])")
        + ") f",
        {"reminders": "1", "reminders_followed": "(followed_by IS NOT NULL)::int"},
    ),
    "declined": (
        "SELECT add_on_id AS fact_id, branch_id, declined_at AS at, NULL AS customer_id, price_fen, events,"
        " recovered_by FROM ("
        + declined_recovered("d.add_on_id = ANY(%(ids)s::text[]) AND d.declined_at IS NOT NULL")
        + ") f",
        {
            "declined": "1",
            "declined_recovered": "(recovered_by IS NOT NULL)::int",
            "declined_fen": "coalesce(price_fen, 0)",
            "recovered_fen": "CASE WHEN recovered_by IS NULL THEN 0 ELSE coalesce(price_fen, 0) END",
            "declined_events": "events",
        },
    ),
}

_COUNT_SUMS = """
, scoped AS (SELECT '*' AS scope, * FROM rows UNION ALL SELECT branch_id, * FROM rows WHERE branch_id IS NOT NULL)
INSERT INTO month_counts AS t (scope, month, {names})
SELECT scope, month, {sums} FROM scoped GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (scope, month) DO UPDATE SET {adds}
"""


def _count_sums(sign: int) -> str:
    return _COUNT_SUMS.format(
        names=", ".join(COUNTS),
        sums=", ".join(f"{sign} * sum({name})" for name in COUNTS),
        adds=", ".join(f"{name} = t.{name} + excluded.{name}" for name in COUNTS),
    )


_TAKE_OFF_COUNTED = (
    "WITH rows AS (DELETE FROM counted_facts WHERE kind = %(kind)s AND fact_id = ANY(%(ids)s::text[]) RETURNING *)"
    + _count_sums(-1)
)


def _put_on_counted(kind: str) -> str:
    facts, counts = _COUNTED[kind]
    return (
        f"WITH rows AS (INSERT INTO counted_facts (kind, fact_id, branch_id, month, customer_id, {', '.join(COUNTS)}) "
        f"SELECT %(kind)s, fact_id, branch_id, date_trunc('month', at AT TIME ZONE %(zone)s)::date, customer_id, "
        + ", ".join(counts.get(name, "0") for name in COUNTS)
        + f" FROM ({facts}) c RETURNING *)"
        + _count_sums(1)
    )


_PUT_ON_COUNTED = {kind: _put_on_counted(kind) for kind in _COUNTED}


async def recount(unit: Unit, kind: str, fact_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recount these facts of a kind (answer, survey, reminder, declined), whatever they counted before."""
    if not fact_ids:
        return
    parameters = {"kind": kind, "ids": sorted(set(fact_ids)), "zone": zone.key}
    await execute_on_driver(unit, f"take off {kind} counts", _TAKE_OFF_COUNTED, parameters)
    await execute_on_driver(unit, f"put on {kind} counts", _PUT_ON_COUNTED[kind], parameters)


async def _recount_found(
    unit: Unit, kind: str, operation: str, sql: str, ids: Collection[str], zone: ZoneInfo
) -> None:
    rows = await fetch_on_driver(unit, operation, sql, {"ids": sorted(set(ids))})
    await recount(unit, kind, [row[0] for row in rows], zone)


# A reminder's outcome depends on the bookings and visits of its vehicle in the 720 hours after it; a declined
# add-on's on the approvals and visits of its vehicle in the 2,160 hours after it (kpi_queries). What a
# change to a booking, visit or add-on may change is found from its own times: no other is recounted.
_REMINDERS_NEAR_VISITS = """
SELECT r.event_id FROM work_orders w JOIN reminders_sent r ON r.vehicle_id = w.vehicle_id
WHERE w.work_order_id = ANY(%(ids)s::text[])
  AND r.sent_at <= w.completed_at AND r.sent_at > w.completed_at - interval '720 hours'
"""
_REMINDERS_NEAR_BOOKINGS = """
SELECT r.event_id FROM appointments ap JOIN reminders_sent r
    ON r.vehicle_id = ap.vehicle_id OR r.reminder_id = ap.reminder_id
WHERE ap.appointment_id = ANY(%(ids)s::text[])
  AND r.sent_at <= ap.booked_at AND r.sent_at > ap.booked_at - interval '720 hours'
"""
# The orders' own add-ons (their branch and vehicle are the order's), and the declined add-ons of the orders'
# vehicles that the orders' visits or add-on approvals may recover.
_ADD_ONS_NEAR_ORDERS = """
WITH orders AS (SELECT * FROM work_orders WHERE work_order_id = ANY(%(ids)s::text[])),
times AS (
    SELECT vehicle_id, completed_at AS at FROM orders WHERE completed_at IS NOT NULL
    UNION SELECT o.vehicle_id, ao.approved_at FROM orders o JOIN add_ons ao ON ao.work_order_id = o.work_order_id
    WHERE ao.approved_at IS NOT NULL
)
SELECT ao.add_on_id FROM add_ons ao WHERE ao.work_order_id = ANY(%(ids)s::text[])
UNION
SELECT d.add_on_id FROM times t JOIN work_orders vw ON vw.vehicle_id = t.vehicle_id
JOIN add_ons d ON d.work_order_id = vw.work_order_id
WHERE d.declined_at < t.at AND d.declined_at > t.at - interval '2160 hours'
"""
# The add-ons, and the declined add-ons of their vehicles that their approvals may recover.
_ADD_ONS_NEAR_ADD_ONS = """
SELECT unnest(%(ids)s::text[])
UNION
SELECT d.add_on_id FROM add_ons a JOIN work_orders w ON w.work_order_id = a.work_order_id
JOIN work_orders vw ON vw.vehicle_id = w.vehicle_id JOIN add_ons d ON d.work_order_id = vw.work_order_id
WHERE a.add_on_id = ANY(%(ids)s::text[]) AND a.approved_at IS NOT NULL
  AND d.declined_at < a.approved_at AND d.declined_at > a.approved_at - interval '2160 hours'
"""


async def recount_near_orders(
    unit: Unit, work_order_ids: Collection[str], zone: ZoneInfo, *, reminders: bool
) -> None:
    """Recount what these work orders may change: the reminders their visits follow (`reminders`), the
    add-ons their visits and approvals recover, and their own."""
    if reminders:
        await _recount_found(
            unit, "reminder", "reminders near visits", _REMINDERS_NEAR_VISITS, work_order_ids, zone
        )
    await _recount_found(unit, "declined", "add-ons near orders", _ADD_ONS_NEAR_ORDERS, work_order_ids, zone)


async def recount_near_bookings(unit: Unit, appointment_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recount the reminders these bookings may follow."""
    await _recount_found(
        unit, "reminder", "reminders near bookings", _REMINDERS_NEAR_BOOKINGS, appointment_ids, zone
    )


async def recount_near_add_ons(unit: Unit, add_on_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recount these add-ons and the declined ones their approvals may recover."""
    await _recount_found(unit, "declined", "add-ons near add-ons", _ADD_ONS_NEAR_ADD_ONS, add_on_ids, zone)


async def recount_answers_of(unit: Unit, customer_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recount the answers these customers (and those merged into them) gave: an erasure takes them off."""
    rows = await fetch_on_driver(
        unit,
        "answers of customers",
        """
        SELECT fact_id FROM counted_facts
        WHERE kind = 'answer' AND (customer_id = ANY(%(ids)s::text[]) OR customer_id IN (
            SELECT merged_customer_id FROM customer_aliases WHERE surviving_customer_id = ANY(%(ids)s::text[])))
        """,
        {"ids": sorted(set(customer_ids))},
    )
    await recount(unit, "answer", [row[0] for row in rows], zone)


# ---- appointments --------------------------------------------------------------------------------------------

_APPOINTMENT_SUMS = """
INSERT INTO appointment_months AS t (scope, month, previous_month, previous_arrived_month, bookings, arrived)
SELECT scope, month, previous_month, previous_arrived_month, {sign} * count(*),
       {sign} * count(*) FILTER (WHERE arrived)
FROM rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (scope, month, previous_month, previous_arrived_month) DO UPDATE SET
    bookings = t.bookings + excluded.bookings, arrived = t.arrived + excluded.arrived
"""

_TAKE_OFF_APPOINTMENTS = (
    "WITH rows AS (DELETE FROM customer_appointments WHERE customer_id = ANY(%(customers)s::text[]) RETURNING *)"
    + _APPOINTMENT_SUMS.format(sign=-1)
)

_PUT_ON_APPOINTMENTS = """
WITH survivors AS (
    SELECT id FROM unnest(%(customers)s::text[]) AS id
    WHERE NOT EXISTS (SELECT FROM customer_aliases a WHERE a.merged_customer_id = id)
), ids AS (
    SELECT id FROM survivors
    UNION SELECT a.merged_customer_id FROM customer_aliases a JOIN survivors s ON a.surviving_customer_id = s.id
), booked AS (
    SELECT coalesce(a.surviving_customer_id, ap.customer_id) AS customer_id, ap.appointment_id, ap.branch_id,
           ap.booked_at, ap.arrived_at IS NOT NULL AS arrived
    FROM appointments ap LEFT JOIN customer_aliases a ON a.merged_customer_id = ap.customer_id
    WHERE ap.customer_id IN (SELECT id FROM ids) AND ap.booked_at IS NOT NULL
), scoped AS (
    SELECT '*' AS scope, * FROM booked
    UNION ALL
    SELECT branch_id, * FROM booked WHERE branch_id IS NOT NULL
), placed AS (
    SELECT scope, appointment_id, customer_id, arrived,
           date_trunc('month', booked_at AT TIME ZONE %(zone)s)::date AS month,
           lag(booked_at) OVER bookings AS previous_at,
           CASE WHEN arrived THEN lag(booked_at) OVER arrivals END AS previous_arrived_at
    FROM scoped
    WINDOW bookings AS (PARTITION BY scope, customer_id ORDER BY booked_at, appointment_id),
           arrivals AS (PARTITION BY scope, customer_id, arrived ORDER BY booked_at, appointment_id)
), rows AS (
    INSERT INTO customer_appointments
        (scope, appointment_id, customer_id, month, previous_month, previous_arrived_month, arrived)
    SELECT scope, appointment_id, customer_id, month,
           coalesce(date_trunc('month', previous_at AT TIME ZONE %(zone)s)::date, '-infinity'),
           coalesce(date_trunc('month', previous_arrived_at AT TIME ZONE %(zone)s)::date, '-infinity'),
           arrived
    FROM placed
    RETURNING *
)""" + _APPOINTMENT_SUMS.format(sign=1)


async def recompute_appointment_customers(unit: Unit, customer_ids: Collection[str], zone: ZoneInfo) -> None:
    """Recompute the bookings of these customers (as given: merged ids, survivors, or both)."""
    if not customer_ids:
        return
    touched = await _touched(unit, customer_ids)
    await execute_on_driver(unit, "take off bookings", _TAKE_OFF_APPOINTMENTS, {"customers": touched})
    await execute_on_driver(
        unit, "put on bookings", _PUT_ON_APPOINTMENTS, {"customers": touched, "zone": zone.key}
    )


async def recompute_customers_of_appointments(
    unit: Unit, appointment_ids: Collection[str], zone: ZoneInfo
) -> None:
    """Recompute the customers of these appointments: whose they are now, and whose rows hold them."""
    rows = await fetch_on_driver(
        unit,
        "customers of appointments",
        """
        SELECT customer_id FROM appointments WHERE appointment_id = ANY(%(ids)s::text[])
        UNION SELECT customer_id FROM customer_appointments WHERE appointment_id = ANY(%(ids)s::text[])
        """,
        {"ids": sorted(set(appointment_ids))},
    )
    await recompute_appointment_customers(unit, [row[0] for row in rows], zone)


# ---- everything at once: after a rebuild's replay ---------------------------------------------------------------

# Every fact of each kind that the projections count, as the followers name them.
_ALL_FACTS = {
    "visit": "SELECT work_order_id FROM work_orders",
    "booking": "SELECT appointment_id FROM appointments WHERE booked_at IS NOT NULL",
    "answer": "SELECT survey_id FROM nps_answers",
    "survey": "SELECT survey_id FROM surveys",
    "reminder": "SELECT event_id FROM reminders_sent",
    "declined": "SELECT add_on_id FROM add_ons WHERE declined_at IS NOT NULL",
}


def everything_at_once(zone: ZoneInfo) -> tuple[Derivation, ...]:
    """Every projection brought in step with every fact: what the followers do batch by batch, for all the
    customers and facts at once (ReadModels.derive: a rebuild replays the facts alone, then runs these). Each
    part may run beside the others in its own transaction: the customers' visits and their bookings write
    tables of their own; each kind of counted fact writes its own rows of `counted_facts`, and sums into
    `month_counts` that add up the same in any order."""
    return (
        partial(_recompute_all_customers, zone=zone),
        partial(_recompute_all_appointment_customers, zone=zone),
        *(partial(_recount_all, kind=kind, zone=zone) for kind in _ALL_FACTS),
    )


async def _every_customer(unit: Unit) -> list[str]:
    rows = await fetch_on_driver(
        unit,
        "every customer",
        "SELECT customer_id FROM work_orders UNION SELECT customer_id FROM appointments",
        {},
    )
    return [row[0] for row in rows]


async def _recompute_all_customers(unit: Unit, *, zone: ZoneInfo) -> None:
    await recompute_customers(unit, await _every_customer(unit), zone)


async def _recompute_all_appointment_customers(unit: Unit, *, zone: ZoneInfo) -> None:
    await recompute_appointment_customers(unit, await _every_customer(unit), zone)


async def _recount_all(unit: Unit, *, kind: str, zone: ZoneInfo) -> None:
    rows = await fetch_on_driver(unit, f"every {kind}", _ALL_FACTS[kind], {})
    await recount(unit, kind, [row[0] for row in rows], zone)


# ---- reading -------------------------------------------------------------------------------------------------


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
            SELECT coalesce(sum(customers), 0)::bigint AS customers,
                   coalesce(sum(lifetime_us), 0)::bigint AS lifetime_us,
                   coalesce(sum(active_30), 0)::bigint AS active_30,
                   coalesce(sum(active_90), 0)::bigint AS active_90,
                   coalesce(sum(active_365), 0)::bigint AS active_365
            FROM month_boundaries WHERE scope = %(scope)s AND boundary <= %(end)s
        ) boundaries, (
            SELECT coalesce(sum(visit_events), 0)::bigint AS events
            FROM month_counts WHERE scope = %(scope)s AND month < %(end)s
        ) visit_events
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


@dataclass(frozen=True)
class OtherFigures:
    """The headline's figures of answers, surveys, bookings, reminders and declined add-ons over whole months
    [start, end): `counts` by name (tables.COUNTS), booked and arrived customers."""

    counts: dict[str, int]
    booked_customers: int
    arrived_customers: int


async def other_figures(unit: Unit, *, scope: str, start: date, end: date) -> OtherFigures:
    [row] = await fetch_on_driver(
        unit,
        "other figures",
        f"""
        SELECT * FROM (
            SELECT {", ".join(f"coalesce(sum({name}), 0)::bigint AS {name}" for name in COUNTS)}
            FROM month_counts WHERE scope = %(scope)s AND month >= %(start)s AND month < %(end)s
        ) counts, (
            SELECT coalesce(sum(bookings) FILTER (WHERE previous_month < %(start)s), 0)::bigint AS booked,
                   coalesce(sum(arrived) FILTER (WHERE previous_arrived_month < %(start)s), 0)::bigint
                       AS arrived_customers
            FROM appointment_months WHERE scope = %(scope)s AND month >= %(start)s AND month < %(end)s
        ) bookings
        """,
        {"scope": scope, "start": start, "end": end},
        as_dicts=True,
    )
    return OtherFigures(
        counts={name: row[name] for name in COUNTS},
        booked_customers=row["booked"],
        arrived_customers=row["arrived_customers"],
    )
