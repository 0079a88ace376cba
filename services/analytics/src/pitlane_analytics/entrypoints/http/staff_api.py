"""The staff leaderboard: per advisor and technician, work orders, revenue, NPS and add-on approvals."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import StaffLeaderboard

router = APIRouter(prefix="/v1/kpis", tags=["staff"])


@router.get("/staff-leaderboard", response_model=StaffLeaderboard, responses=CSV_RESPONSE)
async def staff_leaderboard(context: Context, kpi: Kpi) -> Any:
    """Per advisor and technician in the period, highest revenue first within each role."""
    return await answer(context, kpi, context.kpis.staff_leaderboard)
