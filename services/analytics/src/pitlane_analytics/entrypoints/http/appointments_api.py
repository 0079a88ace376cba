"""Appointment conversion: customers who booked in the period and arrived, and the bookings behind it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pitlane_analytics.entrypoints.http.common import CSV_RESPONSE, Context, Kpi, answer
from pitlane_analytics.service_layer.answers import AppointmentConversion

router = APIRouter(prefix="/v1/kpis", tags=["appointments"])


@router.get("/appointment-conversion", response_model=AppointmentConversion, responses=CSV_RESPONSE)
async def appointment_conversion(context: Context, kpi: Kpi) -> Any:
    """Distinct customers whose booking was marked arrived ÷ distinct customers who booked."""
    return await answer(context, kpi, context.kpis.appointment_conversion)
