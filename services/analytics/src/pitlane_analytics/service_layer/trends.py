"""Month by month, for the dashboard: the headline KPIs of each calendar month of a period (its trends), and
retention by cohort of first visit (the heatmap).

A month's figures are that month's KPI answers, by the same definitions (../shared/KPI.md): each month is a
`Period` of local days, so its point on a trend equals `/v1/kpis?from=<month>&to=<next month>`.

**Cohort retention.** The cohort of month M is the customers whose first-ever visit (anywhere in the chain; a
merged customer's as the survivor's) fell in M — in a branch view, whose first visit was at that branch, as
"new" customers are counted. Its retention k months later is the share of the cohort with a visit in month
M + k (at the branch, in a branch view), for every M + k still in the period. k = 0 is 100% by definition.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from pitlane_analytics.adapters import kpi_queries, trend_queries
from pitlane_analytics.domain import kpis
from pitlane_analytics.domain.kpis import Rate
from pitlane_analytics.domain.periods import Period
from pitlane_analytics.service_layer.answers import DrillDown, PeriodView
from pitlane_analytics.service_layer.kpis import Scope
from pitlane_platform.db import Unit


class TrendMonth(BaseModel):
    month: date = Field(description="the month's first local day; its figures cover [month, next month)")
    visits: int
    paid_fen: int
    customers_with_visits: int
    returning_customers: int = Field(description="customers with ≥ 2 visits in the month")
    return_rate: Decimal | None = Field(description="returning ÷ customers with visits, to 4 decimals")
    spend_per_year_fen: int | None = Field(
        description="the month's paid fen per customer, scaled to 365 days"
    )
    new_customers: int = Field(description="customers whose first visit in the chain fell in the month")
    nps: Decimal | None
    nps_answers: int


class KpiTrends(DrillDown):
    ROW = TrendMonth
    months: list[TrendMonth]

    def rows(self) -> list[TrendMonth]:
        return self.months


class CohortSize(BaseModel):
    month: date = Field(description="the cohort: first visits in this month")
    customers: int


class RetentionCell(BaseModel):
    cohort_month: date
    cohort_customers: int
    months_later: int = Field(description="k: the cohort's month + k months")
    month: date
    retained_customers: int = Field(description="the cohort's customers with a visit in `month`")
    retention: Decimal | None = Field(description="retained ÷ cohort customers, to 4 decimals")


class RetentionCohorts(DrillDown):
    ROW = RetentionCell
    cohorts: list[CohortSize]
    cells: list[RetentionCell] = Field(description="every (cohort, k) of a cohort with customers")

    def rows(self) -> list[RetentionCell]:
        return self.cells


def months_of(period: Period) -> list[Period]:
    """The calendar months a period of whole months is made of, in order."""
    months = []
    start = period.start
    while start < period.end:
        end = first_of_next_month(start)
        months.append(Period(start, end, period.timezone))
        start = end
    return months


def first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _bounds(months: list[Period], scope: Scope) -> dict[str, Any]:
    return {
        "starts": [month.utc_start for month in months],
        "ends": [month.utc_end for month in months],
        "branch": scope.branch_id,
    }


async def _frame(unit: Unit, kpi: str, scope: Scope, chain_id: str, events: int) -> dict[str, Any]:
    return {
        "kpi": kpi,
        "chain_id": chain_id,
        "branch_id": scope.branch_id,
        "period": PeriodView.of(scope.period),
        "events": events,
        "data_as_of": await kpi_queries.data_as_of(unit),
    }


async def monthly_trends(unit: Unit, scope: Scope, *, chain_id: str) -> KpiTrends:
    """The headline's customer and NPS figures for each month of a period of whole months. Events behind it:
    the months' visits (among them the new customers' first ones) and answers."""
    months = months_of(scope.period)
    bounds = _bounds(months, scope)
    visits = {row["month"]: row for row in await trend_queries.monthly_visits(unit, **bounds)}
    new = {
        row["month"]: row["customers"] for row in await trend_queries.monthly_new_customers(unit, **bounds)
    }
    answers = {row["month"]: row for row in await trend_queries.monthly_nps(unit, **bounds)}
    points = []
    for index, month in enumerate(months):
        seen = visits.get(index, {"customers": 0, "returning_customers": 0, "visits": 0, "paid_fen": 0})
        nps = answers.get(index, {"answers": 0, "promoters": 0, "detractors": 0})
        spend = kpis.spend_per_year(seen["paid_fen"], seen["customers"], month.days)
        points.append(
            TrendMonth(
                month=month.start,
                visits=seen["visits"],
                paid_fen=seen["paid_fen"],
                customers_with_visits=seen["customers"],
                returning_customers=seen["returning_customers"],
                return_rate=Rate(seen["returning_customers"], seen["customers"]).value,
                spend_per_year_fen=None if spend is None else kpis.whole_fen(spend),
                new_customers=new.get(index, 0),
                nps=kpis.Nps(
                    answers=nps["answers"],
                    promoters=nps["promoters"],
                    passives=nps["answers"] - nps["promoters"] - nps["detractors"],
                    detractors=nps["detractors"],
                ).score,
                nps_answers=nps["answers"],
            )
        )
    events = sum(row["events"] for row in visits.values()) + sum(row["answers"] for row in answers.values())
    return KpiTrends(**await _frame(unit, "trends", scope, chain_id, events), months=points)


async def retention_cohorts(unit: Unit, scope: Scope, *, chain_id: str) -> RetentionCohorts:
    """Each month's cohort of first visits and its retention in the months after it, within the period.
    Events behind it: the cohorts' visits counted in the cells."""
    months = months_of(scope.period)
    bounds = _bounds(months, scope)
    sizes = {
        row["month"]: row["customers"] for row in await trend_queries.monthly_new_customers(unit, **bounds)
    }
    retained: dict[int, dict[int, int]] = defaultdict(dict)
    events = 0
    for row in await trend_queries.retention(unit, **bounds):
        retained[row["cohort_month"]][row["active_month"]] = row["customers"]
        events += row["events"]
    cells = [
        RetentionCell(
            cohort_month=months[cohort].start,
            cohort_customers=size,
            months_later=later - cohort,
            month=months[later].start,
            retained_customers=retained[cohort].get(later, 0),
            retention=Rate(retained[cohort].get(later, 0), size).value,
        )
        for cohort, size in sorted(sizes.items())
        for later in range(cohort, len(months))
    ]
    return RetentionCohorts(
        **await _frame(unit, "cohorts", scope, chain_id, events),
        cohorts=[
            CohortSize(month=month.start, customers=sizes.get(index, 0)) for index, month in enumerate(months)
        ],
        cells=cells,
    )


async def branches_seen(unit: Unit) -> list[str]:
    return await trend_queries.branches_seen(unit)
