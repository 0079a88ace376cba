"""A rule change re-evaluates vehicles in bulk, from the mileage estimate kept on each vehicle's row: it must
come out exactly as working each vehicle out from its readings would, for every kind of history (a steady
driver, a typo set aside, an odometer replaced after the service, a car hardly used, no readings at all),
and move nothing when the rules did not change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from reminder_harness import Harness, shanghai

from pitlane_events.customer_profile import InsuranceCoverage, VehicleInsuranceUpdated
from pitlane_reminder.domain.mileage import Reading, estimate
from pitlane_reminder.domain.rules import MaintenanceRule, maintenance_due
from pitlane_reminder.service_layer.service import REEVALUATE
from platform_flow import wait_until

TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class History:
    vehicle_id: str
    readings: tuple[Reading, ...]  # before the visit
    visit_km: int
    visit_at: datetime


HISTORIES = (
    History("v-steady", (Reading(shanghai(2025, 9, 3, 16), 34_000),), 40_000, shanghai(2026, 1, 1, 16)),
    History(
        "v-typo",
        (Reading(shanghai(2025, 9, 3), 34_000), Reading(shanghai(2025, 11, 1), 370_000)),
        40_000,
        shanghai(2025, 12, 30),
    ),
    History(
        # Serviced, then a new odometer: its readings cannot tell when the service's mileage comes round.
        "v-replaced",
        (Reading(shanghai(2025, 9, 3), 30_000),),
        36_000,
        shanghai(2025, 12, 10),
    ),
    History("v-hardly", (Reading(shanghai(2025, 6, 1), 40_000),), 40_100, shanghai(2025, 12, 31)),
    History("v-bare", (), 12_000, shanghai(2025, 12, 20)),
    History("v-heavy", (Reading(shanghai(2025, 12, 1), 10_000),), 13_000, shanghai(2025, 12, 31)),
    History("v-fresh", (Reading(shanghai(2025, 12, 29), 2_000),), 2_300, shanghai(2026, 1, 1)),
)
# After v-replaced's service: the new odometer, then a reading on it.
REPLACED_LATER = (
    Reading(shanghai(2025, 12, 20), 100, correction=True),
    Reading(shanghai(2026, 1, 1), 900),
)


async def chain_of(harness: Harness) -> None:
    for number, history in enumerate(HISTORIES):
        await harness.vehicle(history.vehicle_id, f"c{number}", registration_date=date(2020, 3, 1 + number))
        for reading in history.readings:
            await harness.reading(history.vehicle_id, reading.km, reading.at)
        await harness.visit(
            f"wo-{history.vehicle_id}",
            history.vehicle_id,
            f"c{number}",
            km=history.visit_km,
            completed_at=history.visit_at,
        )
    for reading in REPLACED_LATER:
        await harness.reading("v-replaced", reading.km, reading.at, correction="new instrument cluster")
    policy = VehicleInsuranceUpdated(
        vehicle_id="v-steady",
        coverage=InsuranceCoverage.COMPULSORY,
        insurer="中国平安",
        expires_on=date(2026, 3, 15),
    )
    await harness.emit_and_wait("customer-profile", policy, "v-steady")


async def rules_changed(harness: Harness, body: dict, *, chunks: int) -> None:
    """Change the chain's maintenance rule and wait until its re-evaluation has gone through every chunk."""
    before = await fired_chunks(harness)
    changed = await harness.put("/v1/rules/maintenance", body)
    assert changed.status_code == 200, changed.text

    async def done() -> bool:
        return await fired_chunks(harness) == before + chunks

    await wait_until(done)
    [pending] = await harness.rows(
        "SELECT count(*) AS n FROM timers WHERE kind = %(k)s AND fired_at IS NULL", k=REEVALUATE
    )
    assert pending["n"] == 0


async def fired_chunks(harness: Harness) -> int:
    [row] = await harness.rows(
        "SELECT count(*) AS n FROM timers WHERE kind = %(k)s AND fired_at IS NOT NULL", k=REEVALUATE
    )
    return int(row["n"])


def expected(history: History, rule: MaintenanceRule) -> tuple[date, int | None, str]:
    readings = [*history.readings, Reading(history.visit_at, history.visit_km)]
    if history.vehicle_id == "v-replaced":
        readings += REPLACED_LATER
    due = maintenance_due(
        rule,
        last_service_on=history.visit_at.astimezone(TZ).date(),
        last_service_km=history.visit_km,
        mileage=estimate(readings).projection,
        tz=TZ,
    )
    return due.due_on, due.due_mileage_km, due.reason


async def test_a_rule_change_moves_every_vehicle_as_working_it_out_from_its_readings_would(
    harness: Harness,
) -> None:
    harness.service.service.reevaluate_chunk = 3  # 7 vehicles: chunks of 3, 3 and 1
    await chain_of(harness)
    before = await harness.rows("SELECT * FROM reminders ORDER BY reminder_id")
    assert {row["kind"] for row in before} == {"maintenance", "insurance_renewal", "annual_inspection"}
    for history in HISTORIES:
        maintenance = await harness.maintenance(history.vehicle_id)
        due = (maintenance["due_on"], maintenance["due_mileage_km"], maintenance["due_by"])
        assert due == expected(history, MaintenanceRule()), history.vehicle_id
    # The histories reach every case the estimate kept on the row must carry.
    assert (await harness.maintenance("v-replaced"))["due_mileage_km"] is None
    assert (await harness.maintenance("v-heavy"))["due_by"] == "mileage"
    assert (await harness.maintenance("v-hardly"))["due_by"] == "time"

    # The rules saved as they were: every vehicle worked out again, nothing moves.
    earlier = await harness.published("reminder.ReminderRescheduled")  # the correction moved v-replaced's
    await rules_changed(harness, {}, chunks=3)
    assert await harness.rows("SELECT * FROM reminders ORDER BY reminder_id") == before
    assert await harness.published("reminder.ReminderRescheduled") == earlier

    rule = MaintenanceRule(km_interval=7_500, months_interval=4)
    await rules_changed(harness, {"km_interval": 7_500, "months_interval": 4}, chunks=3)
    moved = []
    for history in HISTORIES:
        maintenance = await harness.maintenance(history.vehicle_id)
        due = (maintenance["due_on"], maintenance["due_mileage_km"], maintenance["due_by"])
        assert due == expected(history, rule), history.vehicle_id
        if due != expected(history, MaintenanceRule()):
            moved.append(maintenance["reminder_id"])
    assert len(moved) == len(HISTORIES)  # the change reached every vehicle
    rescheduled = (await harness.published("reminder.ReminderRescheduled"))[len(earlier) :]
    assert sorted(event.data.reminder_id for event in rescheduled) == sorted(moved)  # once each
    after = await harness.rows("SELECT * FROM reminders ORDER BY reminder_id")
    assert [row["reminder_id"] for row in after] == [row["reminder_id"] for row in before]  # none added
    untouched = [row for row in after if row["kind"] != "maintenance"]
    assert untouched == [row for row in before if row["kind"] != "maintenance"]
    # Each moved reminder's pending rungs are the new cycle's, each on its vehicle's day timer.
    pending = await harness.rows(
        """
        SELECT s.vehicle_id, s.due_on, r.due_on AS reminder_due_on, s.offset_days FROM reminder_steps s
        JOIN reminders r USING (reminder_id) WHERE r.kind = 'maintenance' AND s.sent_at IS NULL
          AND s.skipped_at IS NULL
        """
    )
    assert pending and all(
        (step["due_on"] - step["reminder_due_on"]).days == step["offset_days"]
        or step["due_on"] == harness.clock.now().astimezone(TZ).date()  # a catch-up rung, today
        for step in pending
    )
    timers = {
        row["key"]
        for row in await harness.rows(
            "SELECT key FROM timers WHERE kind = 'reminder.day' AND fired_at IS NULL AND cancelled_at IS NULL"
        )
    }
    for step in pending:
        assert any(key.startswith(f"{step['vehicle_id']}:{step['due_on'].isoformat()}") for key in timers)
