"""Customer KPIs: return rate, activity (new, active, churned), spend per year, lifetime, LTV and the time
between visits; each with the customers behind it, as JSON or CSV."""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import (
    CustomerActivity,
    CustomerLifetime,
    Ltv,
    ReturnRate,
    SpendPerYear,
    TimeBetweenVisits,
)
from pitlane_analytics.service_layer.kpis import Scope
from pitlane_platform.db import Unit

router = APIRouter(prefix="/v1/kpis", tags=["customers"])


class ActivityWindowDays(IntEnum):
    """The windows KPI.md defines active and churned over (an enum: a query string's "90" becomes one,
    where a Literal of ints would refuse it)."""

    DAYS_30 = 30
    DAYS_90 = 90
    DAYS_365 = 365


@router.get("/return-rate", response_model=ReturnRate, responses=CSV_RESPONSE)
async def return_rate(context: Context, kpi: Kpi) -> Any:
    """Customers with ≥ 2 visits in the period ÷ customers with ≥ 1; each customer's visits."""
    return await answer(context, kpi, context.kpis.return_rate)


@router.get("/customer-activity", response_model=CustomerActivity, responses=CSV_RESPONSE)
async def customer_activity(
    context: Context,
    kpi: Kpi,
    status: Annotated[
        Literal["new", "active", "churned", "lapsed"] | None,
        Query(description="list only these customers (lapsed: last visit 9–12 months before `to`)"),
    ] = None,
    days: Annotated[
        ActivityWindowDays, Query(description="the window `status` active or churned means")
    ] = ActivityWindowDays.DAYS_90,
) -> Any:
    """New customers in the period; active and churned over 30, 90 and 365 days before `to`."""

    async def compute(unit: Unit, scope: Scope) -> CustomerActivity:
        return await context.kpis.customer_activity(unit, scope, only=status, window_days=int(days))

    return await answer(context, kpi, compute)


@router.get("/spend-per-year", response_model=SpendPerYear, responses=CSV_RESPONSE)
async def spend_per_year(context: Context, kpi: Kpi) -> Any:
    """Paid amount of the period's visits per customer with a visit, scaled to 365 days."""
    return await answer(context, kpi, context.kpis.spend_per_year)


@router.get("/customer-lifetime", response_model=CustomerLifetime, responses=CSV_RESPONSE)
async def customer_lifetime(context: Context, kpi: Kpi) -> Any:
    """Mean and median of (last − first visit) in years over customers with a visit before `to`."""
    return await answer(context, kpi, context.kpis.customer_lifetime)


@router.get("/ltv", response_model=Ltv, responses=CSV_RESPONSE)
async def ltv(context: Context, kpi: Kpi) -> Any:
    """Average spend per year × average customer lifetime, beside its two factors."""
    return await answer(context, kpi, context.kpis.ltv)


@router.get("/time-between-visits", response_model=TimeBetweenVisits, responses=CSV_RESPONSE)
async def time_between_visits(context: Context, kpi: Kpi) -> Any:
    """Mean gap in days between a customer's consecutive visits, the later one in the period."""
    return await answer(context, kpi, context.kpis.time_between_visits)
