"""Declined-work recovery: add-ons declined in the period that were approved or done within 90 days."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import DeclinedWorkRecovery

router = APIRouter(prefix="/v1/kpis", tags=["add-ons"])


@router.get("/declined-work-recovery", response_model=DeclinedWorkRecovery, responses=CSV_RESPONSE)
async def declined_work_recovery(context: Context, kpi: Kpi) -> Any:
    """Recovered ÷ declined, by count and by the declined quotes' fen, and each declined add-on."""
    return await answer(context, kpi, context.kpis.declined_work_recovery)
