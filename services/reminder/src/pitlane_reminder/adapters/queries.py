"""reminder's fixed SQL, as functions taking a unit of work (psycopg `%(name)s` placeholders)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver, json_rows
from pitlane_reminder.domain.mileage import Projection

# ---- vehicles and what happens to them -------------------------------------------------------------------


async def upsert_vehicle(unit: Unit, vehicle_id: str, **fields: Any) -> None:
    """Create the vehicle or set the given columns (None values are left as they are)."""
    given = {name: value for name, value in fields.items() if value is not None}
    columns = ["vehicle_id", *given]
    updates = ", ".join(f"{name} = excluded.{name}" for name in given) or "vehicle_id = excluded.vehicle_id"
    await execute_on_driver(
        unit,
        "upsert vehicle",
        f"""
        INSERT INTO vehicles ({", ".join(columns)}) VALUES ({", ".join(f"%({c})s" for c in columns)})
        ON CONFLICT (vehicle_id) DO UPDATE SET {updates}
        """,
        {"vehicle_id": vehicle_id, **given},
    )


async def vehicle(unit: Unit, vehicle_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit,
        "vehicle",
        "SELECT * FROM vehicles WHERE vehicle_id = %(v)s" + (" FOR UPDATE" if lock else ""),
        {"v": vehicle_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


# What evaluating a vehicle's reminders reads of it (not its open bookings and orders: JSON to decode for
# nothing, a million times over in a rule change).
_EVALUATED = (
    "vehicle_id, customer_id, last_branch_id, registration_date, purchase_date, last_service_on, last_service_km,"
    " first_service_on, last_visit_at, last_reading_at, last_reading_km, km_per_day, odometer_replaced_at,"
    " sold_at, erased_at"
)


async def vehicles_to_evaluate(unit: Unit, vehicle_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The vehicles known of these ids, locked in id order (the order every writer locks them in)."""
    return await fetch_on_driver(
        unit,
        "vehicles",
        f"SELECT {_EVALUATED} FROM vehicles WHERE vehicle_id = ANY(%(v)b) ORDER BY vehicle_id FOR UPDATE",
        {"v": list(vehicle_ids)},
        as_dicts=True,
    )


async def set_estimate(unit: Unit, vehicle_id: str, projection: Projection, *, basis: str) -> None:
    """The vehicle's mileage estimate as the reminders use it, and the line that explains it."""
    last = projection.last
    await execute_on_driver(
        unit,
        "set estimate",
        """
        UPDATE vehicles SET last_reading_at = %(at)s, last_reading_km = %(km)s, km_per_day = %(rate)s,
            odometer_replaced_at = %(replaced)s, estimate_basis = %(basis)s
        WHERE vehicle_id = %(v)s
        """,
        {
            "v": vehicle_id,
            "at": last.at if last else None,
            "km": last.km if last else None,
            "rate": projection.km_per_day,
            "replaced": projection.odometer_replaced_at,
            "basis": basis,
        },
    )


async def set_last_service(unit: Unit, vehicle_id: str, *, on: date, km: int | None) -> None:
    """The vehicle's last service, both values as given (None km: the mileage is not known)."""
    await execute_on_driver(
        unit,
        "set last service",
        "UPDATE vehicles SET last_service_on = %(on)s, last_service_km = %(km)s WHERE vehicle_id = %(v)s",
        {"v": vehicle_id, "on": on, "km": km},
    )


async def vehicle_by_plate(unit: Unit, plate: str) -> str | None:
    row = await execute_on_driver(
        unit,
        "vehicle by plate",
        "SELECT vehicle_id FROM vehicles WHERE plate = %(p)s AND erased_at IS NULL ORDER BY vehicle_id LIMIT 1",
        {"p": plate},
    )
    return row[0] if row else None


async def vehicles_of(unit: Unit, customer_id: str) -> list[str]:
    rows = await fetch_on_driver(
        unit, "vehicles of", "SELECT vehicle_id FROM vehicles WHERE customer_id = %(c)s", {"c": customer_id}
    )
    return [row[0] for row in rows]


async def mark_open(unit: Unit, vehicle_id: str, column: str, item_id: str, *, is_open: bool) -> None:
    """Add or remove an open booking or work order of the vehicle (`open_bookings`, `open_work_orders`)."""
    assert column in ("open_bookings", "open_work_orders")
    await execute_on_driver(
        unit,
        "mark open",
        f"""
        UPDATE vehicles SET {column} = CASE
            WHEN %(open)s THEN (SELECT coalesce(jsonb_agg(DISTINCT x), '[]'::jsonb)
                                FROM jsonb_array_elements_text({column} || to_jsonb(%(id)s::text)) AS x)
            ELSE {column} - %(id)s::text END
        WHERE vehicle_id = %(v)s
        """,
        {"v": vehicle_id, "id": item_id, "open": is_open},
    )


async def add_reading(
    unit: Unit, vehicle_id: str, *, at: datetime, km: int, correction: bool, event_id: str
) -> None:
    await execute_on_driver(
        unit,
        "add reading",
        """
        INSERT INTO mileage_readings (vehicle_id, recorded_at, km, correction, event_id)
        VALUES (%(v)s, %(at)s, %(km)s, %(c)s, %(e)s) ON CONFLICT (event_id) DO NOTHING
        """,
        {"v": vehicle_id, "at": at, "km": km, "c": correction, "e": event_id},
    )


async def readings(unit: Unit, vehicle_id: str) -> list[dict[str, Any]]:
    return await fetch_on_driver(
        unit,
        "readings",
        "SELECT id, recorded_at, km, correction FROM mileage_readings WHERE vehicle_id = %(v)s ORDER BY recorded_at, id",
        {"v": vehicle_id},
        as_dicts=True,
    )


async def set_aside(unit: Unit, reasons: dict[int, str | None]) -> None:
    """Record which readings the estimate set aside (and clear it from the others)."""
    if not reasons:
        return
    await execute_on_driver(
        unit,
        "set aside readings",
        """
        UPDATE mileage_readings m SET set_aside_reason = r.reason
        FROM unnest(%(ids)s::bigint[], %(reasons)s::text[]) AS r(id, reason)
        WHERE m.id = r.id AND m.set_aside_reason IS DISTINCT FROM r.reason
        """,
        {"ids": list(reasons), "reasons": list(reasons.values())},
    )


async def upsert_policy(unit: Unit, vehicle_id: str, coverage: str, insurer: str, expires_on: date) -> None:
    await execute_on_driver(
        unit,
        "upsert policy",
        """
        INSERT INTO insurance_policies (vehicle_id, coverage, insurer, expires_on)
        VALUES (%(v)s, %(c)s, %(i)s, %(e)s)
        ON CONFLICT (vehicle_id, coverage) DO UPDATE SET insurer = excluded.insurer, expires_on = excluded.expires_on
        """,
        {"v": vehicle_id, "c": coverage, "i": insurer, "e": expires_on},
    )


async def policies(unit: Unit, vehicle_ids: Sequence[str]) -> list[dict[str, Any]]:
    return await fetch_on_driver(
        unit,
        "policies",
        """
        SELECT vehicle_id, coverage, insurer, expires_on FROM insurance_policies
        WHERE vehicle_id = ANY(%(v)b) ORDER BY vehicle_id, coverage
        """,
        {"v": list(vehicle_ids)},
        as_dicts=True,
    )


async def record_consent(
    unit: Unit, customer_id: str, channel: str, purpose: str, *, granted: bool, at: datetime
) -> None:
    await execute_on_driver(
        unit,
        "record consent",
        """
        INSERT INTO consents (customer_id, channel, purpose, granted, decided_at)
        VALUES (%(c)s, %(ch)s, %(p)s, %(g)s, %(at)s)
        ON CONFLICT (customer_id, channel, purpose) DO UPDATE SET granted = excluded.granted,
            decided_at = excluded.decided_at WHERE consents.decided_at <= excluded.decided_at
        """,
        {"c": customer_id, "ch": channel, "p": purpose, "g": granted, "at": at},
    )


async def service_channels_withdrawn(unit: Unit, customer_id: str, channels: Sequence[str]) -> bool:
    """The customer withdrew service messages on every channel (no decision: allowed)."""
    row = await execute_on_driver(
        unit,
        "service consent",
        """
        SELECT count(*) FROM consents
        WHERE customer_id = %(c)s AND purpose = 'service' AND NOT granted AND channel = ANY(%(channels)s)
        """,
        {"c": customer_id, "channels": list(channels)},
    )
    return row is not None and int(row[0]) >= len(channels)


async def add_staff(unit: Unit, branch_id: str, staff_id: str, role: str) -> None:
    await execute_on_driver(
        unit,
        "add staff",
        """
        INSERT INTO staff (branch_id, staff_id, role) VALUES (%(b)s, %(s)s, %(r)s)
        ON CONFLICT (branch_id, staff_id) DO UPDATE SET role = excluded.role
        """,
        {"b": branch_id, "s": staff_id, "r": role},
    )


async def branch_manager(unit: Unit, branch_id: str) -> str | None:
    row = await execute_on_driver(
        unit,
        "branch manager",
        "SELECT staff_id FROM staff WHERE branch_id = %(b)s AND role = 'manager' ORDER BY staff_id LIMIT 1",
        {"b": branch_id},
    )
    return row[0] if row else None


async def open_work_order(
    unit: Unit, work_order_id: str, *, vehicle_id: str, customer_id: str, branch_id: str, advisor_id: str
) -> None:
    await execute_on_driver(
        unit,
        "open work order",
        """
        INSERT INTO work_orders (work_order_id, vehicle_id, customer_id, branch_id, advisor_id)
        VALUES (%(w)s, %(v)s, %(c)s, %(b)s, %(a)s) ON CONFLICT (work_order_id) DO NOTHING
        """,
        {"w": work_order_id, "v": vehicle_id, "c": customer_id, "b": branch_id, "a": advisor_id},
    )


async def work_order(unit: Unit, work_order_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit,
        "work order",
        "SELECT * FROM work_orders WHERE work_order_id = %(w)s",
        {"w": work_order_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


async def complete_work_order(unit: Unit, work_order_id: str, *, completed_on: date, mileage_km: int) -> None:
    await execute_on_driver(
        unit,
        "complete work order",
        "UPDATE work_orders SET completed_on = %(d)s, mileage_km = %(km)s WHERE work_order_id = %(w)s",
        {"w": work_order_id, "d": completed_on, "km": mileage_km},
    )


async def void_work_order(unit: Unit, work_order_id: str) -> None:
    await execute_on_driver(
        unit,
        "void work order",
        "UPDATE work_orders SET voided = true WHERE work_order_id = %(w)s",
        {"w": work_order_id},
    )


async def last_service(unit: Unit, vehicle_id: str) -> dict[str, Any] | None:
    """The vehicle's latest visit that still counts (not voided), and its first one."""
    rows = await fetch_on_driver(
        unit,
        "last service",
        """
        SELECT completed_on, mileage_km, branch_id, advisor_id,
               min(completed_on) OVER () AS first_on
        FROM work_orders WHERE vehicle_id = %(v)s AND completed_on IS NOT NULL AND NOT voided
        ORDER BY completed_on DESC, work_order_id DESC LIMIT 1
        """,
        {"v": vehicle_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


# ---- reminders and their steps ----------------------------------------------------------------------------


async def reminder_by_id(unit: Unit, reminder_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit,
        "reminder by id",
        "SELECT * FROM reminders WHERE reminder_id = %(r)s" + (" FOR UPDATE" if lock else ""),
        {"r": reminder_id},
        as_dicts=True,
    )
    return rows[0] if rows else None


async def reminders_of(unit: Unit, vehicle_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every reminder of these vehicles, whatever its status, locked."""
    return await fetch_on_driver(
        unit,
        "reminders of vehicles",
        "SELECT * FROM reminders WHERE vehicle_id = ANY(%(v)b) ORDER BY reminder_id FOR UPDATE",
        {"v": list(vehicle_ids)},
        as_dicts=True,
    )


# Every column a reminder's evaluation sets; `created_at` is kept from its first insert.
REMINDER_COLUMNS = {
    "reminder_id": "text",
    "vehicle_id": "text",
    "customer_id": "text",
    "kind": "text",
    "subject": "text",
    "cycle": "text",
    "branch_id": "text",
    "due_on": "date",
    "due_mileage_km": "int",
    "due_by": "text",
    "basis": "text",
    "ladder": "text",
    "status": "text",
    "status_reason": "text",
    "snoozed_until": "date",
    "version": "int",
    "created_at": "timestamptz",
    "closed_at": "timestamptz",
}
_SAVE_REMINDERS = f"""
    INSERT INTO reminders ({", ".join(REMINDER_COLUMNS)})
    SELECT {", ".join(REMINDER_COLUMNS)}
    FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({", ".join(f"{name} {kind}" for name, kind in REMINDER_COLUMNS.items())})
    ON CONFLICT (reminder_id) DO UPDATE SET
        {", ".join(f"{name} = excluded.{name}" for name in REMINDER_COLUMNS if name not in ("reminder_id", "created_at"))}
"""


async def save_reminders(unit: Unit, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or overwrite whole reminders (each row holds every column of REMINDER_COLUMNS)."""
    if rows:
        # A chunk of a rule change's re-evaluation saves 500 reminders.
        document = json_rows([{name: row[name] for name in REMINDER_COLUMNS} for row in rows])
        await execute_on_driver(unit, "save reminders", _SAVE_REMINDERS, {"rows": document})


async def update_reminder(unit: Unit, reminder_id: str, **fields: Any) -> int:
    """Set the given columns and move the version on; returns the new version."""
    sets = "".join(f"{name} = %({name})s, " for name in fields)
    row = await execute_on_driver(
        unit,
        "update reminder",
        f"UPDATE reminders SET {sets}version = version + 1 WHERE reminder_id = %(reminder_id)s RETURNING version",
        {"reminder_id": reminder_id, **fields},
    )
    assert row is not None
    return int(row[0])


async def used_offsets(unit: Unit, reminder_ids: Sequence[str]) -> set[tuple[str, str, int]]:
    """(reminder, cycle, offset) of every rung sent or skipped: used up for its cycle."""
    rows = await fetch_on_driver(
        unit,
        "used steps",
        """
        SELECT reminder_id, cycle, offset_days FROM reminder_steps
        WHERE reminder_id = ANY(%(r)b) AND (sent_at IS NOT NULL OR skipped_at IS NOT NULL)
        """,
        {"r": list(reminder_ids)},
    )
    return {(row[0], row[1], int(row[2])) for row in rows}


@dataclass(frozen=True)
class PendingSteps:
    """A reminder's rungs still to come, in its cycle: each offset from the due date and its day."""

    reminder_id: str
    vehicle_id: str
    cycle: str
    steps: Sequence[tuple[int, date]]


async def replace_pending_steps(unit: Unit, pending: Sequence[PendingSteps]) -> None:
    """Each reminder's rungs still to come are these (any of an earlier cycle, or moved, are withdrawn)."""
    if not pending:
        return
    await execute_on_driver(
        unit,
        "withdraw steps",
        "DELETE FROM reminder_steps WHERE reminder_id = ANY(%(r)b) AND sent_at IS NULL AND skipped_at IS NULL",
        {"r": [each.reminder_id for each in pending]},
    )
    rungs = [(each, offset, day) for each in pending for offset, day in each.steps]
    if rungs:
        await execute_on_driver(
            unit,
            "insert steps",
            """
            INSERT INTO reminder_steps (reminder_id, cycle, offset_days, vehicle_id, due_on)
            SELECT s.r, s.c, s.o, s.v, s.d
            FROM jsonb_to_recordset(%(rungs)s::jsonb) AS s(r text, c text, o int, v text, d date)
            ON CONFLICT (reminder_id, cycle, offset_days) DO NOTHING
            """,
            {
                "rungs": json_rows(
                    [
                        {"r": each.reminder_id, "c": each.cycle, "o": offset, "v": each.vehicle_id, "d": day}
                        for each, offset, day in rungs
                    ]
                )
            },
        )


async def due_steps(unit: Unit, vehicle_id: str, day: date) -> list[dict[str, Any]]:
    """The vehicle's rungs due by `day`, of its reminders' current cycles, not sent or skipped, locked."""
    return await fetch_on_driver(
        unit,
        "due steps",
        """
        SELECT s.reminder_id, s.cycle, s.offset_days, s.due_on, r.kind, r.subject, r.customer_id, r.branch_id,
               r.due_on AS reminder_due_on, r.due_mileage_km, r.due_by, r.basis, r.snoozed_until
        FROM reminder_steps s JOIN reminders r ON r.reminder_id = s.reminder_id AND r.cycle = s.cycle
        WHERE s.vehicle_id = %(v)s AND s.due_on <= %(day)s AND s.sent_at IS NULL AND s.skipped_at IS NULL
          AND r.status = 'scheduled'
        ORDER BY r.kind, s.offset_days
        FOR UPDATE OF s
        """,
        {"v": vehicle_id, "day": day},
        as_dicts=True,
    )


async def mark_steps(
    unit: Unit, steps: Sequence[dict[str, Any]], *, at: datetime, skip_reason: str | None
) -> None:
    await execute_on_driver(
        unit,
        "mark steps",
        """
        UPDATE reminder_steps s SET
            sent_at = CASE WHEN %(reason)s::text IS NULL THEN %(at)s END,
            skipped_at = CASE WHEN %(reason)s::text IS NOT NULL THEN %(at)s END,
            skip_reason = %(reason)s
        FROM unnest(%(ids)s::text[], %(cycles)s::text[], %(offsets)s::int[]) AS m(reminder_id, cycle, offset_days)
        WHERE s.reminder_id = m.reminder_id AND s.cycle = m.cycle AND s.offset_days = m.offset_days
        """,
        {
            "ids": [step["reminder_id"] for step in steps],
            "cycles": [step["cycle"] for step in steps],
            "offsets": [step["offset_days"] for step in steps],
            "at": at,
            "reason": skip_reason,
        },
    )


async def last_sent_to(unit: Unit, customer_id: str) -> datetime | None:
    row = await execute_on_driver(
        unit,
        "last reminder sent",
        """
        SELECT max(s.sent_at) FROM reminder_steps s JOIN reminders r USING (reminder_id)
        WHERE r.customer_id = %(c)s
        """,
        {"c": customer_id},
    )
    return row[0] if row else None
