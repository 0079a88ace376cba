"""The raw SQL baseline: the same lookup the service does for `GET /v1/lookup?plate=` — plate → owner, the
360° view assembled by PostgreSQL (the service's own statement), the access-log row and the audit trail's row —
on plain psycopg, one
connection per concurrent client: no HTTP, no auth, no ORM, no validation, no JSON shaping in Python."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from pitlane_customer_profile.adapters.profile_queries import PROFILE_SQL

OWNER_OF_PLATE = "SELECT owner_customer_id FROM vehicles WHERE plate = %(plate)s"
PROFILE = PROFILE_SQL
LOG_READ = (
    "INSERT INTO profile_reads (read_at, reader_user_id, reader_role, customer_id, via)"
    " VALUES (%(at)s, 'bench', 'advisor', %(customer_id)s, 'plate')"
)
# The audit trail's row for the request (the service writes it too, in batches: ADR 12), so both paths do the
# same storage work.
AUDIT = (
    "INSERT INTO audit_log (occurred_at, subject, role, branches, method, route, resource_ids, status, request_id)"
    " VALUES (%(at)s, 'bench', 'advisor', '[\"b1\"]', 'GET', '/v1/lookup', '{}', 200, %(request_id)s)"
)


async def lookup_by_plate(connection: psycopg.AsyncConnection[Any], plate: str) -> dict[str, Any]:
    async with connection.transaction(), connection.cursor() as cursor:
        await cursor.execute(OWNER_OF_PLATE, {"plate": plate})
        owner = await cursor.fetchone()
        if owner is None:
            raise LookupError(plate)
        parameters = {"customer_id": owner[0], "at": datetime.now(UTC), "request_id": uuid.uuid4().hex}
        await cursor.execute(PROFILE, parameters)
        found = await cursor.fetchone()
        await cursor.execute(LOG_READ, parameters)
        await cursor.execute(AUDIT, parameters)
    if found is None or not found[0]["visits"]:
        raise LookupError(plate)
    return dict(found[0])
