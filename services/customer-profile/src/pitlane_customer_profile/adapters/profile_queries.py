"""Reads of the profile tables: finding a customer by plate, phone or VIN, the 360° view, search, the
access log. The front desk's lookup path (find, view, log the read) is fixed SQL on the driver, runnable in a
session's transaction or a DriverPool one (`Unit`); the rest is SQL Core. The HTTP layer shapes (and masks)
what these return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.tables import (
    customer_phones,
    customers,
    profile_reads,
    vehicle_mileage,
    vehicles,
)
from pitlane_platform.db import Unit, execute_on_driver

LIVE = and_(customers.c.erased_at.is_(None), customers.c.merged_into.is_(None))
# How many visits the 360° view shows inline (newest first); the figures count them all.
VISITS_SHOWN = 50
MILEAGE_READINGS_SHOWN = 20


_CUSTOMER_BY_PHONE = "SELECT customer_id FROM customer_phones WHERE phone = %(phone)s"
_VEHICLE_BY_PLATE = "SELECT vehicle_id, owner_customer_id FROM vehicles WHERE plate = %(plate)s"
_VEHICLE_BY_VIN = "SELECT vehicle_id, owner_customer_id FROM vehicles WHERE vin = %(vin)s"
_LOG_PROFILE_READ = (
    "INSERT INTO profile_reads (customer_id, reader_user_id, reader_role, via, read_at) "
    "VALUES (%(customer_id)s, %(reader_user_id)s, %(reader_role)s, %(via)s, %(read_at)s)"
)


async def customer_id_by_phone(unit: Unit, phone: str) -> str | None:
    row = await execute_on_driver(unit, "customer by phone", _CUSTOMER_BY_PHONE, {"phone": phone})
    return row[0] if row else None


async def vehicle_by_plate(unit: Unit, plate: str) -> tuple[str, str | None] | None:
    row = await execute_on_driver(unit, "vehicle by plate", _VEHICLE_BY_PLATE, {"plate": plate})
    return (row[0], row[1]) if row else None


async def vehicle_by_vin(unit: Unit, vin: str) -> tuple[str, str | None] | None:
    row = await execute_on_driver(unit, "vehicle by vin", _VEHICLE_BY_VIN, {"vin": vin})
    return (row[0], row[1]) if row else None


async def customer_state(session: AsyncSession, customer_id: str) -> dict[str, Any] | None:
    """The customer's row whatever its state (live, merged, erased)."""
    row = (
        (await session.execute(select(customers).where(customers.c.customer_id == customer_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def absorbed_customers(session: AsyncSession, customer_id: str) -> list[str]:
    """Every customer merged into this one, directly or into one merged into it later: the same person. A
    merge marks only the duplicates it names (`merged_into`), so the older merges hang off them."""
    absorbed = (
        select(customers.c.customer_id)
        .where(customers.c.merged_into == customer_id)
        .cte("absorbed", recursive=True)
    )
    absorbed = absorbed.union(
        select(customers.c.customer_id).where(customers.c.merged_into == absorbed.c.customer_id)
    )
    rows = await session.execute(select(absorbed.c.customer_id).order_by(absorbed.c.customer_id))
    return list(rows.scalars())


# The whole 360° view in one statement: PostgreSQL assembles the JSON, so a lookup costs one round trip
# however many vehicles and visits the customer has (the front desk's most frequent request).
PROFILE_SQL = f"""
SELECT json_build_object(
  'customer', row_to_json(c),
  'phones', COALESCE((
    SELECT json_agg(json_build_object('phone', p.phone, 'is_primary', p.is_primary)
                    ORDER BY p.is_primary DESC, p.phone)
    FROM customer_phones p WHERE p.customer_id = c.customer_id), '[]'),
  'vehicles', COALESCE((
    SELECT json_agg(to_jsonb(v) || jsonb_build_object('mileage_history', COALESCE((
             SELECT json_agg(m) FROM (
               SELECT mileage_km, source, recorded_at, work_order_id FROM vehicle_mileage
               WHERE vehicle_id = v.vehicle_id ORDER BY recorded_at DESC LIMIT {MILEAGE_READINGS_SHOWN}) m),
             '[]'))
           ORDER BY v.plate)
    FROM vehicles v WHERE v.owner_customer_id = c.customer_id), '[]'),
  'visits', COALESCE((
    SELECT json_agg(x) FROM (
      SELECT * FROM visits WHERE customer_id = c.customer_id AND NOT voided
      ORDER BY completed_at DESC LIMIT {VISITS_SHOWN}) x), '[]'),
  'declined_add_ons', COALESCE((
    SELECT json_agg(a ORDER BY a.declined_at DESC) FROM declined_add_ons a
    WHERE a.customer_id = c.customer_id AND a.done_in_work_order_id IS NULL), '[]'),
  'reminders', COALESCE((
    SELECT json_agg(r ORDER BY r.due_on NULLS LAST, r.due_mileage_km NULLS LAST) FROM reminders r
    WHERE r.customer_id = c.customer_id AND r.status <> 'cancelled'), '[]')
)
FROM customers c
WHERE c.customer_id = %(customer_id)s AND c.erased_at IS NULL AND c.merged_into IS NULL
"""


async def profile(unit: Unit, customer_id: str) -> dict[str, Any] | None:
    """The 360° view of a live customer: details, phones, vehicles (with mileage history, insurance),
    visits with line items, open declined add-ons, next reminders, and the figures. None if not live."""
    row = await execute_on_driver(unit, "profile", PROFILE_SQL, {"customer_id": customer_id})
    return row[0] if row else None


async def search(
    session: AsyncSession,
    *,
    name: str | None,
    phone_prefix: str | None,
    plate_fragment: str | None,
    tag: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[dict[str, Any]]]:
    """Live customers matching every given criterion, by name then id; with the total for paging."""
    conditions = [LIVE]
    if name:
        conditions.append(customers.c.full_name.ilike(f"%{_escape_like(name)}%", escape="\\"))
    if phone_prefix:
        conditions.append(
            customers.c.customer_id.in_(
                select(customer_phones.c.customer_id).where(
                    customer_phones.c.phone.like(f"{_escape_like(phone_prefix)}%", escape="\\")
                )
            )
        )
    if plate_fragment:
        conditions.append(
            customers.c.customer_id.in_(
                select(vehicles.c.owner_customer_id).where(
                    vehicles.c.plate.like(f"%{_escape_like(plate_fragment)}%", escape="\\")
                )
            )
        )
    if tag:
        conditions.append(customers.c.tags.contains([tag]))
    where = and_(*conditions)
    total = await session.scalar(select(func.count()).select_from(customers).where(where)) or 0
    plates = (
        select(func.coalesce(func.array_agg(vehicles.c.plate), []))
        .where(vehicles.c.owner_customer_id == customers.c.customer_id)
        .scalar_subquery()
    )
    rows = (
        (
            await session.execute(
                select(
                    customers.c.customer_id,
                    customers.c.full_name,
                    customers.c.primary_phone,
                    customers.c.membership_tier,
                    customers.c.tags,
                    customers.c.visit_count,
                    customers.c.last_service_at,
                    plates.label("plates"),
                )
                .where(where)
                .order_by(customers.c.full_name, customers.c.customer_id)
                .limit(limit)
                .offset(offset)
            )
        )
        .mappings()
        .all()
    )
    return total, [dict(r) for r in rows]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def log_profile_read(
    unit: Unit, *, customer_id: str, reader_user_id: str, reader_role: str, via: str, at: datetime
) -> None:
    await execute_on_driver(
        unit,
        "log profile read",
        _LOG_PROFILE_READ,
        {
            "customer_id": customer_id,
            "reader_user_id": reader_user_id,
            "reader_role": str(reader_role),
            "via": via,
            "read_at": at,
        },
    )


async def profile_reads_page(
    session: AsyncSession,
    *,
    customer_id: str | None,
    reader_user_id: str | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    conditions: list[Any] = [true()]
    if customer_id:
        conditions.append(profile_reads.c.customer_id == customer_id)
    if reader_user_id:
        conditions.append(profile_reads.c.reader_user_id == reader_user_id)
    if since:
        conditions.append(profile_reads.c.read_at >= since)
    rows = (
        (
            await session.execute(
                select(profile_reads)
                .where(and_(*conditions))
                .order_by(profile_reads.c.read_at.desc(), profile_reads.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def vehicle_view(session: AsyncSession, vehicle_id: str) -> dict[str, Any] | None:
    vehicle = (
        (await session.execute(select(vehicles).where(vehicles.c.vehicle_id == vehicle_id)))
        .mappings()
        .first()
    )
    if vehicle is None:
        return None
    readings = (
        (
            await session.execute(
                select(vehicle_mileage)
                .where(vehicle_mileage.c.vehicle_id == vehicle_id)
                .order_by(vehicle_mileage.c.recorded_at.desc())
                .limit(MILEAGE_READINGS_SHOWN)
            )
        )
        .mappings()
        .all()
    )
    return {**dict(vehicle), "mileage_history": [dict(r) for r in readings]}
