"""The reads behind the dashboard's month-by-month figures: fixed SQL over the same facts and the same
definitions as the KPI reads (adapters/kpi_queries.py), grouped by month in one statement each.

The months come in as two arrays of UTC instants, `starts` and `ends` (each month's local midnights, worked
out by the service layer exactly as a KPI period's bounds are), so a month here is the very period
`/v1/kpis?from=<month>&to=<next month>` answers for. Rows name their month by its index in those arrays
(0 = the first); a month with nothing to count has no row. `branch` is a branch id, or None for the chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pitlane_analytics.adapters.kpi_queries import CHAIN_VISITS, VISITS
from pitlane_analytics.domain.kpis import DETRACTOR_MAX, PROMOTER_MIN
from pitlane_platform.db import Unit, fetch_on_driver

Rows = list[dict[str, Any]]

MONTHS = """months AS (
    SELECT m.ordinal - 1 AS month, m.month_start, m.month_end
    FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) WITH ORDINALITY AS m(month_start, month_end, ordinal)
)"""
IN_MONTH = "{at} >= m.month_start AND {at} < m.month_end"
# Each customer's first visit anywhere in the chain (a merged customer's as the survivor's): "new".
FIRST_VISITS = """first_visits AS (
    SELECT DISTINCT ON (customer_id) customer_id, branch_id, completed_at
    FROM chain_visits ORDER BY customer_id, completed_at, work_order_id
)"""
# The customers whose first visit fell in each month (and, in a branch view, was at the branch).
COHORTS = f"""cohorts AS (
    SELECT f.customer_id, m.month
    FROM first_visits f JOIN months m ON {IN_MONTH.format(at="f.completed_at")}
    WHERE %(branch)s::text IS NULL OR f.branch_id = %(branch)s
)"""


async def _rows(unit: Unit, operation: str, sql: str, **parameters: Any) -> Rows:
    return await fetch_on_driver(unit, operation, sql, parameters, as_dicts=True)


async def monthly_visits(
    unit: Unit, *, starts: list[datetime], ends: list[datetime], branch: str | None
) -> Rows:
    """Per month: customers with a visit, those with two or more, visits, paid fen and their events."""
    return await _rows(
        unit,
        "monthly visits",
        f"""
        WITH {VISITS}, {MONTHS}, per_customer AS (
            SELECT m.month, v.customer_id, count(*) AS visits, sum(v.paid_fen) AS paid_fen, sum(v.events) AS events
            FROM months m JOIN visits v ON {IN_MONTH.format(at="v.completed_at")}
            GROUP BY m.month, v.customer_id
        )
        SELECT month, count(*) AS customers, count(*) FILTER (WHERE visits >= 2) AS returning_customers,
               sum(visits)::bigint AS visits, sum(paid_fen)::bigint AS paid_fen, sum(events)::bigint AS events
        FROM per_customer GROUP BY month ORDER BY month
        """,
        starts=starts,
        ends=ends,
        branch=branch,
    )


async def monthly_new_customers(
    unit: Unit, *, starts: list[datetime], ends: list[datetime], branch: str | None
) -> Rows:
    """Per month: customers whose first visit anywhere in the chain fell in it (for a branch: and was there)."""
    return await _rows(
        unit,
        "monthly new customers",
        f"""
        WITH {CHAIN_VISITS}, {MONTHS}, {FIRST_VISITS}, {COHORTS}
        SELECT month, count(*) AS customers FROM cohorts GROUP BY month ORDER BY month
        """,
        starts=starts,
        ends=ends,
        branch=branch,
    )


async def monthly_nps(
    unit: Unit, *, starts: list[datetime], ends: list[datetime], branch: str | None
) -> Rows:
    """Per month: NPS answers received, promoters and detractors."""
    return await _rows(
        unit,
        "monthly nps",
        f"""
        WITH {MONTHS}
        SELECT m.month, count(*) AS answers, count(*) FILTER (WHERE a.score >= %(promoter_min)s) AS promoters,
               count(*) FILTER (WHERE a.score <= %(detractor_max)s) AS detractors
        FROM months m JOIN nps_answers a ON {IN_MONTH.format(at="a.answered_at")}
        WHERE %(branch)s::text IS NULL OR a.branch_id = %(branch)s
        GROUP BY m.month ORDER BY m.month
        """,
        starts=starts,
        ends=ends,
        branch=branch,
        promoter_min=PROMOTER_MIN,
        detractor_max=DETRACTOR_MAX,
    )


async def retention(unit: Unit, *, starts: list[datetime], ends: list[datetime], branch: str | None) -> Rows:
    """Per cohort month and each month from it on: the cohort's customers with a visit in that month (in the
    scope), and the events of those visits."""
    return await _rows(
        unit,
        "retention by cohort",
        f"""
        WITH {CHAIN_VISITS}, {VISITS}, {MONTHS}, {FIRST_VISITS}, {COHORTS},
        active AS (
            SELECT v.customer_id, m.month, sum(v.events) AS events
            FROM visits v JOIN months m ON {IN_MONTH.format(at="v.completed_at")}
            GROUP BY v.customer_id, m.month
        )
        SELECT c.month AS cohort_month, a.month AS active_month, count(*) AS customers, sum(a.events)::bigint AS events
        FROM cohorts c JOIN active a ON a.customer_id = c.customer_id AND a.month >= c.month
        GROUP BY c.month, a.month ORDER BY c.month, a.month
        """,
        starts=starts,
        ends=ends,
        branch=branch,
    )


async def branches_seen(unit: Unit) -> list[str]:
    """Every branch the facts name (a work order, a booking or a campaign's): the branches an owner can pick."""
    rows = await _rows(
        unit,
        "branches seen",
        """
        SELECT branch_id FROM work_orders WHERE branch_id IS NOT NULL
        UNION SELECT branch_id FROM appointments WHERE branch_id IS NOT NULL
        UNION SELECT unnest(branch_ids) FROM campaigns
        ORDER BY branch_id
        """,
    )
    return [row["branch_id"] for row in rows]
