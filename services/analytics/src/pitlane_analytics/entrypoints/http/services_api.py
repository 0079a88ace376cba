"""Popular services: per catalogue item and per category, what the period's visits charged for."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import PopularServices

router = APIRouter(prefix="/v1/kpis", tags=["services"])


@router.get("/popular-services", response_model=PopularServices, responses=CSV_RESPONSE)
async def popular_services(context: Context, kpi: Kpi) -> Any:
    """Count, revenue and gross margin (where a cost is known) per item and category, most done first."""
    return await answer(context, kpi, context.kpis.popular_services)
