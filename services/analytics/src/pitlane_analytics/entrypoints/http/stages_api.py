"""Stage on-time rate: per process stage, completed within the time limit ÷ completed in the period, with the
median time in stage; per definition version too; the drill-down is every timed stage the visits passed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import StageOnTime

router = APIRouter(prefix="/v1/kpis", tags=["stages"])


@router.get("/stage-on-time", response_model=StageOnTime, responses=CSV_RESPONSE)
async def stage_on_time(context: Context, kpi: Kpi) -> Any:
    """Stages of the period's visits completed within their definition's time limit ÷ those completed."""
    return await answer(context, kpi, context.kpis.stage_on_time)
