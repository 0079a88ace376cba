"""The upserts of what other services tell us (visits, declined add-ons, work-order references, reminders),
as fixed SQL on the consumer's unit: SQLAlchemy's PostgreSQL `INSERT … ON CONFLICT` has no cache key and
would be compiled anew for every event (ADR 10). The tables are declared in `tables.py`."""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_platform.db import Unit, execute_on_driver

_REFER_TO_WORK_ORDER = """
    INSERT INTO work_order_refs (work_order_id, customer_id, vehicle_id)
    VALUES (%(work_order_id)s, %(customer_id)s, %(vehicle_id)s)
    ON CONFLICT DO NOTHING
"""
# The same work order completed again (a replay) is counted once: the insert reports whether it was new.
_RECORD_VISIT = """
    INSERT INTO visits (work_order_id, customer_id, vehicle_id, branch_id, plate, mileage_km, opened_at,
                        completed_at, total_fen, paid_fen, line_items)
    VALUES (%(work_order_id)s, %(customer_id)s, %(vehicle_id)s, %(branch_id)s, %(plate)s, %(mileage_km)s,
            %(opened_at)s, %(completed_at)s, %(total_fen)s, %(paid_fen)s, %(line_items)s)
    ON CONFLICT DO NOTHING
    RETURNING work_order_id
"""
# A customer's or a vehicle's figures are made of its stored visits: a visit stored before its customer (or
# vehicle) was introduced counts once the row appears. Both sides take this lock on the id first, so neither
# misses the other's uncommitted write (the visit's count would find no row, the row's count no visit).
_LOCK_FIGURES = "SELECT pg_advisory_xact_lock(hashtextextended('customer-profile.figures:' || %(key)s, 0))"
_COUNT_STORED_VISITS = """
    UPDATE {table} SET (visit_count, total_spend_fen, last_service_at, last_service_mileage_km) = (
        SELECT count(*), coalesce(sum(total_fen), 0), max(completed_at),
               (array_agg(mileage_km ORDER BY completed_at DESC))[1]
        FROM visits WHERE {key} = %(id)s AND NOT voided
    )
    WHERE {key} = %(id)s
"""
_COUNT_CUSTOMERS_VISITS = _COUNT_STORED_VISITS.format(table="customers", key="customer_id")
_COUNT_VEHICLES_VISITS = _COUNT_STORED_VISITS.format(table="vehicles", key="vehicle_id")
_DECLINED_ADD_ON = """
    INSERT INTO declined_add_ons (add_on_id, work_order_id, customer_id, vehicle_id, item, category,
                                  price_fen, declined_at, reason)
    VALUES (%(add_on_id)s, %(work_order_id)s, %(customer_id)s, %(vehicle_id)s, %(item)s, %(category)s,
            %(price_fen)s, %(declined_at)s, %(reason)s)
    ON CONFLICT (add_on_id) DO {on_conflict}
"""
# The completion's summary does not overwrite what the AddOnDeclined event brought (its reason).
_DECLINED_ADD_ON_SUMMARY = _DECLINED_ADD_ON.format(on_conflict="NOTHING")
_DECLINED_ADD_ON_DECIDED = _DECLINED_ADD_ON.format(on_conflict="UPDATE SET reason = excluded.reason")
_SCHEDULE_REMINDER = """
    INSERT INTO reminders (reminder_id, customer_id, vehicle_id, kind, due_on, due_mileage_km, status)
    VALUES (%(reminder_id)s, %(customer_id)s, %(vehicle_id)s, %(kind)s, %(due_on)s, %(due_mileage_km)s,
            'scheduled')
    ON CONFLICT (reminder_id) DO UPDATE SET
        customer_id = excluded.customer_id, vehicle_id = excluded.vehicle_id, kind = excluded.kind,
        due_on = excluded.due_on, due_mileage_km = excluded.due_mileage_km, status = excluded.status
"""


async def refer_to_work_order(unit: Unit, work_order_id: str, customer_id: str, vehicle_id: str) -> None:
    await execute_on_driver(
        unit,
        "refer to work order",
        _REFER_TO_WORK_ORDER,
        {"work_order_id": work_order_id, "customer_id": customer_id, "vehicle_id": vehicle_id},
    )


async def lock_figures(unit: Unit, *, customer_id: str | None = None, vehicle_id: str | None = None) -> None:
    """Until the transaction ends, keep the figures of this customer and this vehicle (either may not exist
    yet) to ourselves: before storing or voiding a visit of theirs, and before creating their row."""
    for key in (
        f"customer:{customer_id}" if customer_id else None,
        f"vehicle:{vehicle_id}" if vehicle_id else None,
    ):
        if key is not None:
            await execute_on_driver(unit, "lock figures", _LOCK_FIGURES, {"key": key})


async def count_stored_visits(
    unit: Unit, *, customer_id: str | None = None, vehicle_id: str | None = None
) -> None:
    """Set the figures of a customer's or a vehicle's new row from the visits stored for it before it was
    introduced (completions of other aggregates may be applied first, ADR 9); under `lock_figures`."""
    if customer_id is not None:
        await execute_on_driver(unit, "count customer's visits", _COUNT_CUSTOMERS_VISITS, {"id": customer_id})
    if vehicle_id is not None:
        await execute_on_driver(unit, "count vehicle's visits", _COUNT_VEHICLES_VISITS, {"id": vehicle_id})


async def record_visit(unit: Unit, visit: dict[str, Any]) -> bool:
    """Insert the visit; False if this work order's visit is already recorded."""
    row = {**visit, "line_items": Jsonb(visit["line_items"])}
    return await execute_on_driver(unit, "record visit", _RECORD_VISIT, row) is not None


async def record_declined_add_on(unit: Unit, add_on: dict[str, Any], *, from_summary: bool) -> None:
    """A declined add-on, from its AddOnDeclined event or (`from_summary`) the completion's summary."""
    sql = _DECLINED_ADD_ON_SUMMARY if from_summary else _DECLINED_ADD_ON_DECIDED
    await execute_on_driver(unit, "declined add-on", sql, {"reason": None, **add_on})


async def schedule_reminder(
    unit: Unit,
    *,
    reminder_id: str,
    customer_id: str,
    vehicle_id: str,
    kind: str,
    due_on: date | None,
    due_mileage_km: int | None,
) -> None:
    await execute_on_driver(
        unit,
        "schedule reminder",
        _SCHEDULE_REMINDER,
        {
            "reminder_id": reminder_id,
            "customer_id": customer_id,
            "vehicle_id": vehicle_id,
            "kind": kind,
            "due_on": due_on,
            "due_mileage_km": due_mileage_km,
        },
    )
