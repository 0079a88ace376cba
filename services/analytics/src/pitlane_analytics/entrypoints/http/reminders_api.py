"""Reminder effectiveness: reminders sent in the period that a booking or visit of the vehicle followed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import ReminderEffectiveness

router = APIRouter(prefix="/v1/kpis", tags=["reminders"])


@router.get("/reminder-effectiveness", response_model=ReminderEffectiveness, responses=CSV_RESPONSE)
async def reminder_effectiveness(context: Context, kpi: Kpi) -> Any:
    """Reminders followed by a booking or visit of the same vehicle within 30 days ÷ reminders sent."""
    return await answer(context, kpi, context.kpis.reminder_effectiveness)
