"""Writes the current state of our own aggregates into the profile tables, in the command's transaction.

State-based rather than event-by-event: a command (or an import batch) ends with one upsert per table for
every aggregate it touched, whatever number of events it recorded.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import datetime
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.tables import (
    customer_phones,
    customers,
    declined_add_ons,
    reminders,
    vehicle_mileage,
    vehicles,
    visits,
)
from pitlane_customer_profile.domain.customer import Customer
from pitlane_customer_profile.domain.vehicle import Vehicle
from pitlane_events import Envelope
from pitlane_events.customer_profile import VehicleMileageRecorded, VehicleRegistered
from pitlane_platform.errors import ConflictError


def consent_key(channel: str, purpose: str) -> str:
    return f"{channel}:{purpose}"


async def save_customers(
    session: AsyncSession, saved: Sequence[Customer], *, now: datetime, phoneless: Set[str] = frozenset()
) -> None:
    """Upsert the customers' rows and phones (none for the `phoneless`, merged away in the same unit); an
    erased customer's row is anonymised by the erasure itself."""
    saved = [c for c in saved if not c.erased]
    if not saved:
        return
    rows = [
        {
            "customer_id": c.id,
            "full_name": c.full_name,
            "primary_phone": c.phone,
            "wechat_id": c.wechat_id,
            "gender": c.gender.value,
            "birthday": c.birthday,
            "source": c.source.value,
            "registered_at_branch_id": c.registered_at_branch_id,
            "referrer_customer_id": c.referrer_customer_id,
            "membership_tier": c.membership_tier,
            "tags": sorted(c.tags),
            "preferred_services": list(c.preferred_services),
            "notes": c.notes,
            "custom_fields": c.custom_fields,
            "consents": {consent_key(ch.value, p.value): granted for (ch, p), granted in c.consents.items()},
            "registered_at": now,
            "version": c.version,
        }
        for c in saved
    ]
    statement = pg_insert(customers)
    statement = statement.on_conflict_do_update(
        index_elements=[customers.c.customer_id],
        set_={
            name: statement.excluded[name]
            for name in rows[0]
            if name not in ("customer_id", "registered_at", "source")
        },
    )
    await session.execute(statement, rows)
    ids = [c.id for c in saved]
    await session.execute(delete(customer_phones).where(customer_phones.c.customer_id.in_(ids)))
    phone_rows = [
        {"phone": phone, "customer_id": c.id, "is_primary": phone == c.phone}
        for c in saved
        if c.id not in phoneless
        for phone in [c.phone, *c.other_phones]
    ]
    await _insert_phones(session, phone_rows)


async def save_vehicles(
    session: AsyncSession, saved: Sequence[Vehicle], envelopes: Sequence[Envelope[Any]]
) -> None:
    if not saved:
        return
    rows = [
        {
            "vehicle_id": v.id,
            "owner_customer_id": v.owner_customer_id,
            "plate": v.plate,
            "vin": v.vin,
            "brand": v.brand,
            "model": v.model,
            "model_year": v.model_year,
            "energy_type": v.energy_type.value if v.energy_type else None,
            "purchase_date": v.purchase_date,
            "registration_date": v.registration_date,
            "mileage_km": v.mileage_km,
            "insurance": {
                coverage.value: {
                    "insurer": policy.insurer,
                    "policy_number": policy.policy_number,
                    "expires_on": policy.expires_on.isoformat(),
                }
                for coverage, policy in v.insurance.items()
            },
            "version": v.version,
        }
        for v in saved
    ]
    statement = pg_insert(vehicles)
    statement = statement.on_conflict_do_update(
        index_elements=[vehicles.c.vehicle_id],
        set_={name: statement.excluded[name] for name in rows[0] if name != "vehicle_id"},
    )
    try:
        async with session.begin_nested():
            await session.execute(statement, rows)
    except IntegrityError as exc:
        raise _taken(exc, rows) from None
    readings = [
        {
            "vehicle_id": e.data.vehicle_id,
            "mileage_km": e.data.mileage_km,
            "source": "registration" if isinstance(e.data, VehicleRegistered) else e.data.source.value,
            "recorded_at": e.occurred_at if isinstance(e.data, VehicleRegistered) else e.data.recorded_at,
            "work_order_id": getattr(e.data, "work_order_id", None),
        }
        for e in envelopes
        if isinstance(e.data, VehicleMileageRecorded | VehicleRegistered) and e.data.mileage_km is not None
    ]
    if readings:
        await session.execute(vehicle_mileage.insert(), readings)


async def _insert_phones(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """The handlers check phones first; the unique key is the backstop against a concurrent command."""
    if not rows:
        return
    try:
        async with session.begin_nested():
            await session.execute(customer_phones.insert(), rows)
    except IntegrityError as exc:
        if not isinstance(exc.orig, UniqueViolation):
            raise
        holder = (
            await session.execute(
                select(customer_phones.c.phone, customer_phones.c.customer_id).where(
                    customer_phones.c.phone.in_([r["phone"] for r in rows])
                )
            )
        ).first()
        taken = (
            f"{holder.phone} already belongs to customer {holder.customer_id}" if holder else "already taken"
        )
        raise ConflictError(f"phone: {taken}") from None


def _taken(exc: IntegrityError, rows: list[dict[str, Any]]) -> Exception:
    if not isinstance(exc.orig, UniqueViolation):
        return exc
    constraint = getattr(exc.orig.diag, "constraint_name", "") or ""
    field = "vin" if "vin" in constraint else "plate"
    values = ", ".join(sorted({str(r[field]) for r in rows if r[field]}))
    return ConflictError(f"{field}: {values} is already registered to another vehicle")


async def fold_merged_customers(session: AsyncSession, survivor_id: str, merged_ids: Sequence[str]) -> None:
    """Re-key what the read model holds for merged duplicates onto the survivor: their figures add up, their
    visits, declined add-ons and reminders follow, their phones are freed for the survivor's row."""
    merged = list(merged_ids)
    figures = (
        await session.execute(
            select(
                func.coalesce(func.sum(customers.c.visit_count), 0),
                func.coalesce(func.sum(customers.c.total_spend_fen), 0),
                func.max(customers.c.last_service_at),
            ).where(customers.c.customer_id.in_(merged))
        )
    ).one()
    await session.execute(
        update(customers)
        .where(customers.c.customer_id == survivor_id)
        .values(
            visit_count=customers.c.visit_count + figures[0],
            total_spend_fen=customers.c.total_spend_fen + figures[1],
            last_service_at=func.greatest(customers.c.last_service_at, figures[2]),
        )
    )
    # The last service's mileage belongs to whichever record had the latest visit.
    await session.execute(
        update(customers)
        .where(customers.c.customer_id == survivor_id)
        .values(
            last_service_mileage_km=select(visits.c.mileage_km)
            .where(visits.c.customer_id.in_([survivor_id, *merged]), visits.c.voided.is_(False))
            .order_by(visits.c.completed_at.desc())
            .limit(1)
            .scalar_subquery()
        )
    )
    await session.execute(
        update(customers).where(customers.c.customer_id.in_(merged)).values(merged_into=survivor_id)
    )
    for table in (visits, declined_add_ons, reminders):
        await session.execute(
            update(table).where(table.c.customer_id.in_(merged)).values(customer_id=survivor_id)
        )
    await session.execute(delete(customer_phones).where(customer_phones.c.customer_id.in_(merged)))
