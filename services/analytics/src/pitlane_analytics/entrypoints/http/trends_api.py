"""Month by month: the headline KPIs of each month of a period (trends) and retention by cohort of first
visit. Both take a period of whole months (`from` and `to` first days of months, at most three years)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer import trends
from pitlane_analytics.service_layer.kpis import Scope
from pitlane_platform.db import Unit
from pitlane_platform.errors import InvalidInputError

router = APIRouter(prefix="/v1/kpis", tags=["trends"])

# Three years of months: the longest trend a chart can show legibly, and a bound on the statement's work.
MAX_MONTHS = 36


def _whole_months(kpi: Kpi) -> None:
    period = kpi.scope.period
    for field, day in (("query.from", period.start), ("query.to", period.end)):
        if day.day != 1:
            raise InvalidInputError(field, f"must be the first day of a month, not {day.isoformat()}")
    if len(trends.months_of(period)) > MAX_MONTHS:
        raise InvalidInputError("query.to", f"at most {MAX_MONTHS} months after query.from")


@router.get("/trends", response_model=trends.KpiTrends, responses=CSV_RESPONSE)
async def monthly_trends(context: Context, kpi: Kpi) -> Any:
    """Per month: visits, paid fen, return rate, spend per year, new customers and NPS — each month's own
    KPI answer (`/v1/kpis?from=<month>&to=<next month>`)."""
    _whole_months(kpi)

    async def compute(unit: Unit, scope: Scope) -> trends.KpiTrends:
        return await trends.monthly_trends(unit, scope, chain_id=context.kpis.chain_id)

    return await answer(context, kpi, compute)


@router.get("/cohorts", response_model=trends.RetentionCohorts, responses=CSV_RESPONSE)
async def retention_cohorts(context: Context, kpi: Kpi) -> Any:
    """Per month M of the period: the customers whose first visit fell in M, and the share of them with a
    visit in each month M + k of the period."""
    _whole_months(kpi)

    async def compute(unit: Unit, scope: Scope) -> trends.RetentionCohorts:
        return await trends.retention_cohorts(unit, scope, chain_id=context.kpis.chain_id)

    return await answer(context, kpi, compute)
