"""The statements on branches, staff, appointments and media, as fixed SQL on the driver (`Unit`): every
command and read of this service runs on a DriverPool transaction, whose cost is its statements' (an ORM
session costs more CPU than a command's own SQL; docs/benchmarks.md). The tables are defined in `tables.py`
for the migrations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

# Branches and staff ----------------------------------------------------------------------------------------

_OPEN_BRANCH = """
    INSERT INTO branches (branch_id, name, address, timezone, opening_hours, bays, slot_minutes, opened_at)
    VALUES (%(branch_id)s, %(name)s, %(address)s, %(timezone)s, %(opening_hours)s, %(bays)s, %(slot_minutes)s,
            %(opened_at)s)
    ON CONFLICT DO NOTHING RETURNING branch_id
"""
_BRANCH = "SELECT * FROM branches WHERE branch_id = %(branch_id)s"
# The row lock serialises the branch's bookings (see Handlers.book).
_BRANCH_LOCKED = _BRANCH + " FOR UPDATE"
_ADD_STAFF = """
    INSERT INTO staff (branch_id, staff_id, display_name, role)
    VALUES (%(branch_id)s, %(staff_id)s, %(display_name)s, %(role)s)
    ON CONFLICT DO NOTHING RETURNING staff_id
"""
_STAFF_ROLE = "SELECT role FROM staff WHERE branch_id = %(branch_id)s AND staff_id = %(staff_id)s"
_STAFF = "SELECT * FROM staff WHERE branch_id = %(branch_id)s ORDER BY staff_id"
_STAFF_MEMBER = "SELECT * FROM staff WHERE branch_id = %(branch_id)s AND staff_id = %(staff_id)s"
_BRANCHES = "SELECT * FROM branches ORDER BY branch_id"


async def open_branch(unit: Unit, row: dict[str, Any]) -> bool:
    """Insert the branch; False if a branch of that id exists."""
    values = {**row, "opening_hours": Jsonb(row["opening_hours"]), "bays": Jsonb(row["bays"])}
    return await execute_on_driver(unit, "open branch", _OPEN_BRANCH, values) is not None


async def branch(unit: Unit, branch_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit, "branch", _BRANCH_LOCKED if lock else _BRANCH, {"branch_id": branch_id}, as_dicts=True
    )
    return rows[0] if rows else None


async def branches(unit: Unit) -> list[dict[str, Any]]:
    """Every branch of the chain; a chain has tens or hundreds, never enough to page."""
    return await fetch_on_driver(unit, "branches", _BRANCHES, {}, as_dicts=True)


async def add_staff_member(unit: Unit, branch_id: str, member: dict[str, Any]) -> bool:
    """Insert the staff member; False if the branch already has one of that id."""
    return (
        await execute_on_driver(unit, "add staff", _ADD_STAFF, {"branch_id": branch_id, **member}) is not None
    )


async def staff_role(unit: Unit, branch_id: str, staff_id: str) -> str | None:
    row = await execute_on_driver(
        unit, "staff role", _STAFF_ROLE, {"branch_id": branch_id, "staff_id": staff_id}
    )
    return row[0] if row else None


async def staff_of(unit: Unit, branch_id: str) -> list[dict[str, Any]]:
    return await fetch_on_driver(unit, "staff", _STAFF, {"branch_id": branch_id}, as_dicts=True)


async def staff_member(unit: Unit, branch_id: str, staff_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit, "staff member", _STAFF_MEMBER, {"branch_id": branch_id, "staff_id": staff_id}, as_dicts=True
    )
    return rows[0] if rows else None


# Appointments ----------------------------------------------------------------------------------------------

_BOOK = """
    INSERT INTO appointments (
        appointment_id, branch_id, slot_start, slot_end, status, channel, campaign_id, customer_id,
        customer_name, phone, plate, service_requested, version, visit_type, confirmation_required
    ) VALUES (
        %(appointment_id)s, %(branch_id)s, %(slot_start)s, %(slot_end)s, %(status)s, %(channel)s,
        %(campaign_id)s, %(customer_id)s, %(customer_name)s, %(phone)s, %(plate)s, %(service_requested)s,
        %(version)s, %(visit_type)s, %(confirmation_required)s
    )
"""
_UPDATE_APPOINTMENT = """
    UPDATE appointments SET status = %(status)s, slot_start = %(slot_start)s, slot_end = %(slot_end)s,
        work_order_id = %(work_order_id)s, version = %(version)s
    WHERE appointment_id = %(appointment_id)s
"""
_APPOINTMENT = "SELECT * FROM appointments WHERE appointment_id = %(appointment_id)s"
_KNOWN_CUSTOMER = (
    "SELECT customer_id FROM appointments WHERE phone = %(phone)s ORDER BY slot_start DESC LIMIT 1"
)
_MISSED = (
    "SELECT branch_id, appointment_id FROM appointments WHERE status = 'booked' AND slot_start <= %(before)s"
)
_APPOINTMENTS_BETWEEN = """
    SELECT * FROM appointments
    WHERE branch_id = %(branch_id)s AND slot_start >= %(start)s AND slot_start < %(end)s
    ORDER BY slot_start
"""


async def insert_appointment(unit: Unit, row: dict[str, Any]) -> None:
    await execute_on_driver(unit, "book appointment", _BOOK, row)


async def update_appointment(unit: Unit, row: dict[str, Any]) -> None:
    await execute_on_driver(unit, "update appointment", _UPDATE_APPOINTMENT, row)


async def appointment(unit: Unit, appointment_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit, "appointment", _APPOINTMENT, {"appointment_id": appointment_id}, as_dicts=True
    )
    return rows[0] if rows else None


async def known_customer(unit: Unit, phone: str) -> str | None:
    """The customer id an earlier booking with this phone carried, so one person keeps one id."""
    row = await execute_on_driver(unit, "customer by phone", _KNOWN_CUSTOMER, {"phone": phone})
    return row[0] if row else None


async def missed_appointments(unit: Unit, before: datetime) -> list[tuple[str, str]]:
    """(branch, appointment) of every booking still booked whose slot began at or before `before`."""
    rows = await fetch_on_driver(unit, "missed appointments", _MISSED, {"before": before})
    return [(branch_id, appointment_id) for branch_id, appointment_id in rows]


async def appointments_between(
    unit: Unit, branch_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    return await fetch_on_driver(
        unit,
        "appointments",
        _APPOINTMENTS_BETWEEN,
        {"branch_id": branch_id, "start": start, "end": end},
        as_dicts=True,
    )


# Media -----------------------------------------------------------------------------------------------------

_ADD_MEDIA = """
    INSERT INTO media (content_hash, branch_id, media_type, size_bytes)
    VALUES (%(content_hash)s, %(branch_id)s, %(media_type)s, %(size_bytes)s)
    ON CONFLICT DO NOTHING
"""
# A branch's files, and those uploaded before uploads were recorded per branch (`*`).
_MEDIA = """
    SELECT DISTINCT ON (content_hash) content_hash, media_type, size_bytes FROM media
    WHERE content_hash = ANY(%(hashes)s) AND branch_id IN (%(branch_id)s, '*')
"""
_MEDIA_BRANCHES = "SELECT branch_id, media_type FROM media WHERE content_hash = %(content_hash)s"


async def add_media(unit: Unit, content_hash: str, branch_id: str, media_type: str, size_bytes: int) -> None:
    await execute_on_driver(
        unit,
        "add media",
        _ADD_MEDIA,
        {
            "content_hash": content_hash,
            "branch_id": branch_id,
            "media_type": media_type,
            "size_bytes": size_bytes,
        },
    )


async def media(unit: Unit, branch_id: str, hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The files among `hashes` the branch uploaded, by hash."""
    rows = await fetch_on_driver(
        unit, "media", _MEDIA, {"hashes": list(hashes), "branch_id": branch_id}, as_dicts=True
    )
    return {row["content_hash"]: row for row in rows}


async def media_branches(unit: Unit, content_hash: str) -> dict[str, str]:
    """The branches that uploaded the file, each with the media type its content was found to be."""
    rows = await fetch_on_driver(unit, "media branches", _MEDIA_BRANCHES, {"content_hash": content_hash})
    return {branch_id: media_type for branch_id, media_type in rows}


# Customer links ---------------------------------------------------------------------------------------------

_LINK_GENERATION = "SELECT generation FROM customer_links WHERE work_order_id = %(work_order_id)s"
# A lock of the order's links alone, for the transaction: not its row on the board, which every command
# writes after appending its events — a decision holding that row while its append waits behind another
# command's would deadlock with it.
_LOCK_LINKS = (
    "SELECT pg_advisory_xact_lock(hashtextextended('workorder.customer_links:' || %(work_order_id)s, 0))"
)
_REVOKE_LINKS = """
    INSERT INTO customer_links (work_order_id, generation, revoked_at, revoked_by)
    VALUES (%(work_order_id)s, 1, %(at)s, %(by)s)
    ON CONFLICT (work_order_id) DO UPDATE SET
        generation = customer_links.generation + 1, revoked_at = excluded.revoked_at,
        revoked_by = excluded.revoked_by
    RETURNING generation
"""


async def link_generation(unit: Unit, work_order_id: str) -> int:
    """The generation the order's valid links carry: 0 until its links are first revoked."""
    row = await execute_on_driver(unit, "link generation", _LINK_GENERATION, {"work_order_id": work_order_id})
    return int(row[0]) if row else 0


async def lock_links(unit: Unit, work_order_id: str) -> None:
    """Serialise the order's link revocations with the decisions made through its links, until the unit
    commits: a decision checks the generation after taking this lock, so a revocation that was answered is
    never followed by a decision through a link it withdrew (the page's own check runs in a transaction of
    its own, before the decision's)."""
    await execute_on_driver(unit, "lock links", _LOCK_LINKS, {"work_order_id": work_order_id})


async def revoke_links(unit: Unit, work_order_id: str, at: datetime, by: str) -> int:
    """Every link of the order signed so far stops working; the generation new links carry."""
    row = await execute_on_driver(
        unit, "revoke links", _REVOKE_LINKS, {"work_order_id": work_order_id, "at": at, "by": by}
    )
    assert row is not None  # INSERT … RETURNING always returns the row
    return int(row[0])
