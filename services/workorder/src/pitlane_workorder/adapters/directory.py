"""The directory: which customer has a phone and which vehicle has a plate, as customer-profile says (fed by
its events) and as workorder introduced them while customer-profile has not answered yet (ADR 11). Fixed SQL
on any unit, like every statement of this service.

customer-profile's word wins: its pairings overwrite workorder's own; workorder's never overwrite its.
"""

from __future__ import annotations

from datetime import datetime

from pitlane_platform.db import Unit, execute_on_driver

# A merged customer is followed to the one that absorbed it (merges do not chain: customer-profile refuses
# to merge into a customer that was itself merged, and to merge one that was).
_SURVIVOR = """
    SELECT coalesce(merged_into, customer_id) FROM directory_customers WHERE customer_id = %(customer_id)s
"""
_BY_PHONE = """
    SELECT coalesce(c.merged_into, p.customer_id)
    FROM directory_phones p LEFT JOIN directory_customers c ON c.customer_id = p.customer_id
    WHERE p.phone = %(phone)s AND c.erased_at IS NULL
"""
# The vehicle customer-profile knows under the plate first, else one workorder introduced.
_BY_PLATE = """
    SELECT v.vehicle_id, coalesce(c.merged_into, v.owner_customer_id)
    FROM directory_vehicles v LEFT JOIN directory_customers c ON c.customer_id = v.owner_customer_id
    WHERE v.plate = %(plate)s
    ORDER BY v.known_to_profile DESC, v.vehicle_id
    LIMIT 1
"""
_CUSTOMER = """
    INSERT INTO directory_customers (customer_id) VALUES (%(customer_id)s) ON CONFLICT DO NOTHING
"""
_PHONE = """
    INSERT INTO directory_phones (phone, customer_id, known_to_profile)
    VALUES (%(phone)s, %(customer_id)s, %(known_to_profile)s)
    ON CONFLICT (phone) DO {on_conflict}
"""
_PHONE_FROM_PROFILE = _PHONE.format(
    on_conflict="UPDATE SET customer_id = excluded.customer_id, known_to_profile = true"
)
_PHONE_INTRODUCED = _PHONE.format(on_conflict="NOTHING")
_DROP_PHONE = "DELETE FROM directory_phones WHERE phone = %(phone)s AND customer_id = %(customer_id)s"
_VEHICLE = """
    INSERT INTO directory_vehicles (vehicle_id, plate, owner_customer_id, mileage_km, known_to_profile)
    VALUES (%(vehicle_id)s, %(plate)s, %(owner_customer_id)s, %(mileage_km)s, %(known_to_profile)s)
    ON CONFLICT (vehicle_id) DO {on_conflict}
"""
_VEHICLE_FROM_PROFILE = _VEHICLE.format(
    on_conflict="UPDATE SET plate = excluded.plate, owner_customer_id = excluded.owner_customer_id,"
    " mileage_km = coalesce(excluded.mileage_km, directory_vehicles.mileage_km), known_to_profile = true"
)
_VEHICLE_INTRODUCED = _VEHICLE.format(on_conflict="NOTHING")
_LAST_READING = "SELECT mileage_km FROM directory_vehicles WHERE vehicle_id = %(vehicle_id)s"
_READING = "UPDATE directory_vehicles SET mileage_km = %(mileage_km)s WHERE vehicle_id = %(vehicle_id)s"
_REPLATE = "UPDATE directory_vehicles SET plate = %(plate)s WHERE vehicle_id = %(vehicle_id)s"
_REOWN = "UPDATE directory_vehicles SET owner_customer_id = %(owner)s WHERE vehicle_id = %(vehicle_id)s"
# A merge: the duplicates point at the survivor, their phones and cars become its, and the bookings and
# work orders on the board show the survivor.
_MERGE = """
    WITH merged AS (
        INSERT INTO directory_customers (customer_id, merged_into)
        SELECT unnest(%(merged)s::text[]), %(survivor)s
        ON CONFLICT (customer_id) DO UPDATE SET merged_into = excluded.merged_into
        RETURNING customer_id
    ), phones AS (
        UPDATE directory_phones SET customer_id = %(survivor)s WHERE customer_id = ANY(%(merged)s)
    ), cars AS (
        UPDATE directory_vehicles SET owner_customer_id = %(survivor)s WHERE owner_customer_id = ANY(%(merged)s)
    ), booked AS (
        UPDATE appointments SET customer_id = %(survivor)s WHERE customer_id = ANY(%(merged)s)
    )
    UPDATE work_orders SET customer_id = %(survivor)s WHERE customer_id = ANY(%(merged)s)
"""
_ERASE = """
    WITH erased AS (
        INSERT INTO directory_customers (customer_id, erased_at) SELECT unnest(%(ids)s::text[]), %(at)s
        ON CONFLICT (customer_id) DO UPDATE SET erased_at = excluded.erased_at
    ), cars AS (
        UPDATE directory_vehicles SET owner_customer_id = NULL WHERE owner_customer_id = ANY(%(ids)s)
    )
    DELETE FROM directory_phones WHERE customer_id = ANY(%(ids)s)
"""


async def surviving_customer(unit: Unit, customer_id: str) -> str:
    """The id a customer is known by now: the survivor's if it was merged."""
    row = await execute_on_driver(unit, "surviving customer", _SURVIVOR, {"customer_id": customer_id})
    return row[0] if row else customer_id


async def customer_by_phone(unit: Unit, phone: str) -> str | None:
    row = await execute_on_driver(unit, "customer by phone", _BY_PHONE, {"phone": phone})
    return row[0] if row else None


async def vehicle_by_plate(unit: Unit, plate: str) -> tuple[str, str | None] | None:
    """(vehicle id, owner) of the vehicle with the plate."""
    row = await execute_on_driver(unit, "vehicle by plate", _BY_PLATE, {"plate": plate})
    return (row[0], row[1]) if row else None


async def plate_of(unit: Unit, vehicle_id: str) -> str | None:
    """The plate of a vehicle the directory knows."""
    row = await execute_on_driver(
        unit,
        "plate of vehicle",
        "SELECT plate FROM directory_vehicles WHERE vehicle_id = %(vehicle_id)s",
        {"vehicle_id": vehicle_id},
    )
    return row[0] if row else None


async def add_customer(unit: Unit, customer_id: str, phones: list[str], *, from_profile: bool) -> None:
    await execute_on_driver(unit, "directory customer", _CUSTOMER, {"customer_id": customer_id})
    for phone in phones:
        await add_phone(unit, customer_id, phone, from_profile=from_profile)


async def add_phone(unit: Unit, customer_id: str, phone: str, *, from_profile: bool) -> None:
    await execute_on_driver(
        unit,
        "directory phone",
        _PHONE_FROM_PROFILE if from_profile else _PHONE_INTRODUCED,
        {"phone": phone, "customer_id": customer_id, "known_to_profile": from_profile},
    )


async def drop_phone(unit: Unit, customer_id: str, phone: str) -> None:
    await execute_on_driver(
        unit, "drop directory phone", _DROP_PHONE, {"phone": phone, "customer_id": customer_id}
    )


async def add_vehicle(
    unit: Unit,
    vehicle_id: str,
    plate: str,
    owner_customer_id: str | None,
    *,
    mileage_km: int | None = None,
    from_profile: bool,
) -> None:
    await execute_on_driver(
        unit,
        "directory vehicle",
        _VEHICLE_FROM_PROFILE if from_profile else _VEHICLE_INTRODUCED,
        {
            "vehicle_id": vehicle_id,
            "plate": plate,
            "owner_customer_id": owner_customer_id,
            "mileage_km": mileage_km,
            "known_to_profile": from_profile,
        },
    )


async def last_reading(unit: Unit, vehicle_id: str) -> int | None:
    """The vehicle's last known odometer reading, if the directory has one."""
    row = await execute_on_driver(unit, "last reading", _LAST_READING, {"vehicle_id": vehicle_id})
    return row[0] if row else None


async def record_reading(unit: Unit, vehicle_id: str, mileage_km: int) -> None:
    """The vehicle's odometer now reads `mileage_km` (a check-in, or customer-profile's word)."""
    await execute_on_driver(
        unit, "record reading", _READING, {"vehicle_id": vehicle_id, "mileage_km": mileage_km}
    )


async def replate(unit: Unit, vehicle_id: str, plate: str) -> None:
    await execute_on_driver(unit, "replate vehicle", _REPLATE, {"vehicle_id": vehicle_id, "plate": plate})


async def change_owner(unit: Unit, vehicle_id: str, owner: str) -> None:
    await execute_on_driver(unit, "vehicle owner", _REOWN, {"vehicle_id": vehicle_id, "owner": owner})


async def merge(unit: Unit, survivor: str, merged: list[str]) -> None:
    await execute_on_driver(unit, "merge customers", _MERGE, {"survivor": survivor, "merged": merged})


async def erase(unit: Unit, customer_ids: list[str], at: datetime) -> None:
    """The customers are erased: their phones leave the directory and their cars have no owner."""
    await execute_on_driver(unit, "erase customers", _ERASE, {"ids": customer_ids, "at": at})
