"""What workorder forgets when customer-profile erases a customer (PIPL, ADR 6 and 13), as fixed SQL on the
consumer's unit: the erased customer and the duplicates merged into it lose their names and phones on the
appointments, the waitlists and the board, their phones in the directory, and the personal fields of the
introductions workorder published for them — in the event store (rewritten in place: ids, types and times
stay, as the audit trail needs) and in the outbox. The published copies in the streams are scrubbed by the caller
(`pitlane_platform.messaging.erasure`) with the event ids `forget_customer` returns."""

from __future__ import annotations

from datetime import datetime

from psycopg.types.json import Jsonb

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_workorder.adapters import directory

# The events workorder publishes that carry personal data, and their personal fields.
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {"workorder.CustomerIntroduced": ("full_name", "phone")}

# Merges do not chain (adapters/directory.py), so one level finds every duplicate.
_ERASED_IDS = """
    SELECT %(customer_id)s::text
    UNION SELECT customer_id FROM directory_customers WHERE merged_into = %(customer_id)s
"""
_FORGET_APPOINTMENTS = """
    UPDATE appointments SET customer_name = NULL, phone = NULL WHERE customer_id = ANY(%(ids)s)
"""
_FORGET_WAITLISTS = """
    UPDATE waitlist_entries SET customer_name = NULL, phone = NULL WHERE customer_id = ANY(%(ids)s)
"""
_FORGET_BOARD = "UPDATE work_orders SET customer_name = NULL WHERE customer_id = ANY(%(ids)s)"
# `||` on the data object replaces the personal fields with null and keeps every other field.
_SCRUB_EVENTS = """
    UPDATE events SET envelope = jsonb_set(envelope, '{data}', (envelope -> 'data') || %(erased)s)
    WHERE stream_id = ANY(%(ids)s) AND event_type = %(event_type)s
    RETURNING event_id::text
"""
_DROP_OUTBOX_ROWS = "DELETE FROM outbox WHERE event_id = ANY(%(event_ids)s::uuid[])"


async def forget_customer(unit: Unit, customer_id: str, at: datetime) -> set[str]:
    """Forget the customer and its merged duplicates; the ids of the scrubbed personal events."""
    ids = [
        row[0] for row in await fetch_on_driver(unit, "erased ids", _ERASED_IDS, {"customer_id": customer_id})
    ]
    await directory.erase(unit, ids, at)
    await execute_on_driver(unit, "forget appointments", _FORGET_APPOINTMENTS, {"ids": ids})
    await execute_on_driver(unit, "forget waitlists", _FORGET_WAITLISTS, {"ids": ids})
    await execute_on_driver(unit, "forget board", _FORGET_BOARD, {"ids": ids})
    event_ids: set[str] = set()
    for event_type, fields in PERSONAL_FIELDS.items():
        erased = Jsonb(dict.fromkeys(fields))
        rows = await fetch_on_driver(
            unit, "scrub events", _SCRUB_EVENTS, {"ids": ids, "event_type": event_type, "erased": erased}
        )
        event_ids.update(row[0] for row in rows)
    await execute_on_driver(unit, "drop outbox rows", _DROP_OUTBOX_ROWS, {"event_ids": sorted(event_ids)})
    return event_ids
