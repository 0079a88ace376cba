"""A vehicle's reminders for staff: what is due when and why — the estimate and the readings set aside —
and each rung of the current cycle, sent, skipped (and why) or to come."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from pitlane_platform.db import fetch_on_driver
from pitlane_platform.errors import NotFoundError
from pitlane_reminder.adapters import queries
from pitlane_reminder.entrypoints.http.common import Context, FrontDesk

router = APIRouter(prefix="/v1/vehicles", tags=["reminders"])


class Step(BaseModel):
    offset_days: int
    due_on: date
    sent_at: datetime | None
    skipped_at: datetime | None
    skip_reason: str | None


class ReminderView(BaseModel):
    reminder_id: str
    kind: str
    subject: str
    cycle: str
    status: str
    status_reason: str | None
    due_on: date
    due_mileage_km: int | None
    due_by: str
    basis: str
    snoozed_until: date | None
    steps: list[Step]


class Reading(BaseModel):
    recorded_at: datetime
    km: int
    correction: bool
    set_aside_reason: str | None


class VehicleReminders(BaseModel):
    vehicle_id: str
    estimate: str | None
    km_per_day: float | None
    readings: list[Reading]
    reminders: list[ReminderView]


@router.get("/{vehicle_id}/reminders")
async def vehicle_reminders(vehicle_id: str, context: Context, principal: FrontDesk) -> VehicleReminders:
    async with context.service.driver.transaction() as unit:
        vehicle = await queries.vehicle(unit, vehicle_id)
        if vehicle is None or vehicle["erased_at"] is not None:
            raise NotFoundError(f"no vehicle {vehicle_id}")
        reminders = await fetch_on_driver(
            unit,
            "reminders",
            "SELECT * FROM reminders WHERE vehicle_id = %(v)s ORDER BY kind, subject",
            {"v": vehicle_id},
            as_dicts=True,
        )
        steps = await fetch_on_driver(
            unit,
            "steps",
            """
            SELECT s.* FROM reminder_steps s JOIN reminders r ON r.reminder_id = s.reminder_id AND r.cycle = s.cycle
            WHERE s.vehicle_id = %(v)s ORDER BY s.offset_days
            """,
            {"v": vehicle_id},
            as_dicts=True,
        )
        readings = await fetch_on_driver(
            unit,
            "readings",
            "SELECT recorded_at, km, correction, set_aside_reason FROM mileage_readings WHERE vehicle_id = %(v)s ORDER BY recorded_at, id",
            {"v": vehicle_id},
            as_dicts=True,
        )
    return VehicleReminders(
        vehicle_id=vehicle_id,
        estimate=vehicle["estimate_basis"],
        km_per_day=vehicle["km_per_day"],
        readings=[Reading.model_validate(row) for row in readings],
        reminders=[
            ReminderView.model_validate(
                {**row, "steps": [step for step in steps if step["reminder_id"] == row["reminder_id"]]}
            )
            for row in reminders
        ],
    )
