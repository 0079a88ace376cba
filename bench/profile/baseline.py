"""The raw SQL baseline: the same lookup the service does for `GET /v1/lookup?plate=` — plate → owner, the
customer row, phones, vehicles, their mileage readings, visits, open declined add-ons, reminders, and the
access-log row — in hand-written SQL on plain psycopg, one connection per concurrent client, no HTTP, no
ORM, no validation, no JSON shaping beyond what the driver returns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

LOOKUP = (
    "SELECT vehicle_id, owner_customer_id FROM vehicles WHERE plate = %(plate)s",
    "SELECT * FROM customers WHERE customer_id = %(customer_id)s AND erased_at IS NULL AND merged_into IS NULL",
    "SELECT phone, is_primary FROM customer_phones WHERE customer_id = %(customer_id)s"
    " ORDER BY is_primary DESC, phone",
    "SELECT * FROM vehicles WHERE owner_customer_id = %(customer_id)s ORDER BY plate",
    "SELECT m.* FROM vehicle_mileage m JOIN vehicles v USING (vehicle_id)"
    " WHERE v.owner_customer_id = %(customer_id)s ORDER BY m.recorded_at DESC",
    "SELECT * FROM visits WHERE customer_id = %(customer_id)s AND NOT voided ORDER BY completed_at DESC LIMIT 50",
    "SELECT * FROM declined_add_ons WHERE customer_id = %(customer_id)s AND done_in_work_order_id IS NULL"
    " ORDER BY declined_at DESC",
    "SELECT * FROM reminders WHERE customer_id = %(customer_id)s AND status <> 'cancelled'"
    " ORDER BY due_on NULLS LAST, due_mileage_km NULLS LAST",
)
LOG_READ = (
    "INSERT INTO profile_reads (read_at, reader_user_id, reader_role, customer_id, via)"
    " VALUES (%(at)s, 'bench', 'advisor', %(customer_id)s, 'plate')"
)


async def lookup_by_plate(connection: psycopg.AsyncConnection[Any], plate: str) -> dict[str, Any]:
    async with connection.transaction(), connection.cursor() as cursor:
        await cursor.execute(LOOKUP[0], {"plate": plate})
        vehicle = await cursor.fetchone()
        if vehicle is None:
            raise LookupError(plate)
        parameters = {"customer_id": vehicle[1], "at": datetime.now(UTC)}
        found: list[Any] = []
        for statement in LOOKUP[1:]:
            await cursor.execute(statement, parameters)
            found.append(await cursor.fetchall())
        await cursor.execute(LOG_READ, parameters)
    return {"customer": found[0], "vehicles": found[2], "visits": found[4]}
