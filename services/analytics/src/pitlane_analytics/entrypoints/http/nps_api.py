"""NPS over the answers received in the period, per advisor, and every answer behind it (without comments:
the customer's words stay with notification)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import Nps

router = APIRouter(prefix="/v1/kpis", tags=["nps"])


@router.get("/nps", response_model=Nps, responses=CSV_RESPONSE)
async def nps(context: Context, kpi: Kpi) -> Any:
    """% promoters − % detractors, the response rate, each advisor's NPS and the answers."""
    return await answer(context, kpi, context.kpis.nps)
