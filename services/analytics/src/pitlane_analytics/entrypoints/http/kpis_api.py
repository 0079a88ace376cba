"""The headline KPIs of a scope in one answer, and the answer to a KPI that does not exist. Registered after
the routers of the KPIs themselves: `/v1/kpis/{kpi}` catches only the names none of them took."""

from __future__ import annotations

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import KPI_NAMES, Context, Kpi, Reader
from pitlane_analytics.service_layer.answers import Headline
from pitlane_platform.errors import InvalidInputError

router = APIRouter(prefix="/v1/kpis", tags=["kpis"])


@router.get("")
async def headline(context: Context, kpi: Kpi) -> Headline:
    """Every single-figure KPI of the scope, read in one snapshot; the lists are at `/v1/kpis/<kpi>`."""
    if kpi.output == "csv":
        raise InvalidInputError(
            "query.format", "the headline has no rows: export a KPI's, /v1/kpis/<kpi>?format=csv"
        )
    async with context.kpis.snapshot() as unit:
        return await context.kpis.headline(unit, kpi.scope)


@router.get("/{kpi}", include_in_schema=False)
async def unknown_kpi(kpi: str, principal: Reader) -> None:
    raise InvalidInputError("path.kpi", f"no KPI {kpi!r}; the KPIs are {', '.join(KPI_NAMES)}")
