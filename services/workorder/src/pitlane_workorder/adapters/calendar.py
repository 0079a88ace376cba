"""The statements of the booking calendar (ADR 25), fixed SQL on the driver: shifts and leave, the booking
rules of the chain and its branches, the places taken in slots (live bookings and holds), holds, waitlists
and no-show counts. The tables are in `tables.py`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver

CHAIN_SCOPE = "*"
"""The `booking_rules` scope of the chain's defaults; every other scope is a branch id."""

# Booking rules ---------------------------------------------------------------------------------------------

_RULES = "SELECT scope, rules FROM booking_rules WHERE scope IN (%(chain)s, %(branch_id)s)"
_SET_RULES = """
    INSERT INTO booking_rules (scope, rules, updated_by, updated_at)
    VALUES (%(scope)s, %(rules)s, %(by)s, %(at)s)
    ON CONFLICT (scope) DO UPDATE SET
        rules = excluded.rules, updated_by = excluded.updated_by, updated_at = excluded.updated_at
"""


async def rules(unit: Unit, branch_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chain's rules and the branch's own (empty where none were set)."""
    rows = await fetch_on_driver(
        unit, "booking rules", _RULES, {"chain": CHAIN_SCOPE, "branch_id": branch_id}
    )
    by_scope = dict(rows)
    return by_scope.get(CHAIN_SCOPE, {}), by_scope.get(branch_id, {}) if branch_id != CHAIN_SCOPE else {}


async def set_rules(unit: Unit, scope: str, rules: dict[str, Any], by: str, at: datetime) -> None:
    await execute_on_driver(
        unit, "set booking rules", _SET_RULES, {"scope": scope, "rules": Jsonb(rules), "by": by, "at": at}
    )


# Shifts and leave ------------------------------------------------------------------------------------------

_PLANS_BY_SHIFTS = "SELECT EXISTS (SELECT 1 FROM staff_shifts WHERE branch_id = %(branch_id)s)"
_SHIFTS = """
    SELECT staff_id, day, starts_at, ends_at, breaks FROM staff_shifts
    WHERE branch_id = %(branch_id)s AND day BETWEEN %(first)s AND %(last)s
    ORDER BY day, staff_id
"""
_CLEAR_DAY = "DELETE FROM staff_shifts WHERE branch_id = %(branch_id)s AND day = %(day)s"
_ADD_SHIFT = """
    INSERT INTO staff_shifts (branch_id, day, staff_id, starts_at, ends_at, breaks)
    VALUES (%(branch_id)s, %(day)s, %(staff_id)s, %(starts_at)s, %(ends_at)s, %(breaks)s)
"""
_LEAVE = """
    SELECT leave_id, staff_id, starts_at, ends_at, kind FROM staff_leave
    WHERE branch_id = %(branch_id)s AND starts_at < %(end)s AND ends_at > %(start)s
    ORDER BY starts_at, leave_id
"""
_ADD_LEAVE = """
    INSERT INTO staff_leave (leave_id, branch_id, staff_id, starts_at, ends_at, kind, recorded_by, recorded_at)
    VALUES (%(leave_id)s, %(branch_id)s, %(staff_id)s, %(starts_at)s, %(ends_at)s, %(kind)s, %(recorded_by)s,
            %(recorded_at)s)
"""
_REMOVE_LEAVE = """
    DELETE FROM staff_leave
    WHERE leave_id = %(leave_id)s AND branch_id = %(branch_id)s AND staff_id = %(staff_id)s
    RETURNING leave_id
"""
_TECHNICIANS = "SELECT staff_id FROM staff WHERE branch_id = %(branch_id)s AND role = 'technician'"


async def plans_by_shifts(unit: Unit, branch_id: str) -> bool:
    """Whether the branch has entered any shift: until then it books by its bays alone."""
    row = await execute_on_driver(unit, "plans by shifts", _PLANS_BY_SHIFTS, {"branch_id": branch_id})
    return bool(row and row[0])


async def shifts(unit: Unit, branch_id: str, first: date, last: date) -> list[dict[str, Any]]:
    return await fetch_on_driver(
        unit, "shifts", _SHIFTS, {"branch_id": branch_id, "first": first, "last": last}, as_dicts=True
    )


async def replace_day(unit: Unit, branch_id: str, day: date, rows: list[dict[str, Any]]) -> None:
    """The day's shifts become `rows` (staff_id, starts_at, ends_at, breaks); staff not in them are off."""
    await execute_on_driver(unit, "clear shifts", _CLEAR_DAY, {"branch_id": branch_id, "day": day})
    for row in rows:
        await execute_on_driver(
            unit,
            "add shift",
            _ADD_SHIFT,
            {**row, "branch_id": branch_id, "day": day, "breaks": Jsonb(row["breaks"])},
        )


async def leave(unit: Unit, branch_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Leave of the branch's staff overlapping [start, end)."""
    return await fetch_on_driver(
        unit, "leave", _LEAVE, {"branch_id": branch_id, "start": start, "end": end}, as_dicts=True
    )


async def add_leave(unit: Unit, row: dict[str, Any]) -> None:
    await execute_on_driver(unit, "add leave", _ADD_LEAVE, row)


async def remove_leave(unit: Unit, branch_id: str, staff_id: str, leave_id: str) -> bool:
    row = await execute_on_driver(
        unit,
        "remove leave",
        _REMOVE_LEAVE,
        {"branch_id": branch_id, "staff_id": staff_id, "leave_id": leave_id},
    )
    return row is not None


async def technicians(unit: Unit, branch_id: str) -> frozenset[str]:
    rows = await fetch_on_driver(unit, "technicians", _TECHNICIANS, {"branch_id": branch_id})
    return frozenset(staff_id for (staff_id,) in rows)


# Places taken: live bookings and holds ---------------------------------------------------------------------

_PLACES = """
    SELECT slot_start, slot_end, visit_type, service_requested, appointment_id, false FROM appointments
    WHERE branch_id = %(branch_id)s AND status = 'booked' AND slot_start >= %(start)s AND slot_start < %(end)s
    UNION ALL
    SELECT slot_start, slot_end, visit_type, service_requested, hold_id, true FROM slot_holds
    WHERE branch_id = %(branch_id)s AND status = 'held' AND expires_at > %(now)s
      AND slot_start >= %(start)s AND slot_start < %(end)s
"""


async def places(
    unit: Unit, branch_id: str, start: datetime, end: datetime, now: datetime
) -> list[tuple[Any, ...]]:
    """(slot start, slot end, visit type, service, appointment or hold id, held) of each booking still booked
    and each hold not expired at `now`, in slots starting in [start, end)."""
    return await fetch_on_driver(
        unit, "places", _PLACES, {"branch_id": branch_id, "start": start, "end": end, "now": now}
    )


# Holds -----------------------------------------------------------------------------------------------------

_ADD_HOLD = """
    INSERT INTO slot_holds (
        hold_id, branch_id, slot_start, slot_end, visit_type, service_requested, expires_at, status,
        waitlist_entry_id
    ) VALUES (
        %(hold_id)s, %(branch_id)s, %(slot_start)s, %(slot_end)s, %(visit_type)s, %(service_requested)s,
        %(expires_at)s, 'held', %(waitlist_entry_id)s
    )
"""
_HOLD = "SELECT * FROM slot_holds WHERE hold_id = %(hold_id)s AND branch_id = %(branch_id)s"
_USE_HOLD = "UPDATE slot_holds SET status = 'used' WHERE hold_id = %(hold_id)s AND status = 'held'"
_EXPIRE_HOLD = """
    UPDATE slot_holds SET status = 'expired' WHERE hold_id = %(hold_id)s AND status = 'held'
    RETURNING branch_id, waitlist_entry_id
"""


async def add_hold(unit: Unit, row: dict[str, Any]) -> None:
    await execute_on_driver(unit, "add hold", _ADD_HOLD, {"waitlist_entry_id": None, **row})


async def hold(unit: Unit, branch_id: str, hold_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit, "hold", _HOLD, {"branch_id": branch_id, "hold_id": hold_id}, as_dicts=True
    )
    return rows[0] if rows else None


async def use_hold(unit: Unit, hold_id: str) -> None:
    await execute_on_driver(unit, "use hold", _USE_HOLD, {"hold_id": hold_id})


async def expire_hold(unit: Unit, hold_id: str) -> tuple[str, str | None] | None:
    """Mark a hold still held as expired: its branch and waitlist entry; None if it was used or expired."""
    row = await execute_on_driver(unit, "expire hold", _EXPIRE_HOLD, {"hold_id": hold_id})
    return (row[0], row[1]) if row else None


# Waitlists -------------------------------------------------------------------------------------------------

_JOIN = """
    INSERT INTO waitlist_entries (
        entry_id, branch_id, slot_start, slot_end, status, customer_id, customer_name, phone, plate,
        vehicle_id, service_requested, visit_type, joined_at
    ) VALUES (
        %(entry_id)s, %(branch_id)s, %(slot_start)s, %(slot_end)s, 'waiting', %(customer_id)s,
        %(customer_name)s, %(phone)s, %(plate)s, %(vehicle_id)s, %(service_requested)s, %(visit_type)s,
        %(joined_at)s
    )
    RETURNING position
"""
_IN_LINE = """
    SELECT count(*) FILTER (WHERE position < %(position)s),
           count(*) FILTER (WHERE customer_id = %(customer_id)s)
    FROM waitlist_entries
    WHERE branch_id = %(branch_id)s AND slot_start = %(slot_start)s AND status IN ('waiting', 'offered')
"""
_WAITING = """
    SELECT * FROM waitlist_entries
    WHERE branch_id = %(branch_id)s AND status = 'waiting' AND slot_start > %(now)s
    ORDER BY slot_start, position
"""
_ENTRY = "SELECT * FROM waitlist_entries WHERE entry_id = %(entry_id)s AND branch_id = %(branch_id)s"
_ENTRIES_BETWEEN = """
    SELECT w.*, CASE WHEN w.status = 'offered' THEN h.expires_at END AS offer_expires_at
    FROM waitlist_entries w LEFT JOIN slot_holds h USING (hold_id)
    WHERE w.branch_id = %(branch_id)s AND w.slot_start >= %(start)s AND w.slot_start < %(end)s
    ORDER BY w.slot_start, w.position
"""
_OFFER = "UPDATE waitlist_entries SET status = 'offered', hold_id = %(hold_id)s WHERE entry_id = %(entry_id)s"
_LAPSE = """
    UPDATE waitlist_entries SET status = 'lapsed'
    WHERE entry_id = %(entry_id)s AND status = 'offered' AND hold_id = %(hold_id)s
"""
_TAKEN = """
    UPDATE waitlist_entries SET status = 'booked', appointment_id = %(appointment_id)s
    WHERE entry_id = %(entry_id)s
"""


async def join_waitlist(unit: Unit, row: dict[str, Any]) -> int:
    """The entry's position: entries join under the branch row lock, so positions are in joining order."""
    joined = await execute_on_driver(unit, "join waitlist", _JOIN, row)
    assert joined is not None  # INSERT … RETURNING always returns the row
    return int(joined[0])


async def in_line(
    unit: Unit, branch_id: str, slot_start: datetime, *, position: int, customer_id: str
) -> tuple[int, int]:
    """(entries ahead of `position`, entries of the customer) still waiting or offered for the slot."""
    row = await execute_on_driver(
        unit,
        "waitlist line",
        _IN_LINE,
        {"branch_id": branch_id, "slot_start": slot_start, "position": position, "customer_id": customer_id},
    )
    assert row is not None  # an aggregate always returns a row
    return int(row[0]), int(row[1])


async def waiting(unit: Unit, branch_id: str, now: datetime) -> list[dict[str, Any]]:
    """Entries still waiting for slots not begun, in the order they are offered places."""
    return await fetch_on_driver(
        unit, "waiting entries", _WAITING, {"branch_id": branch_id, "now": now}, as_dicts=True
    )


async def entry(unit: Unit, branch_id: str, entry_id: str) -> dict[str, Any] | None:
    rows = await fetch_on_driver(
        unit, "waitlist entry", _ENTRY, {"branch_id": branch_id, "entry_id": entry_id}, as_dicts=True
    )
    return rows[0] if rows else None


async def entries_between(unit: Unit, branch_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The entries of slots starting in [start, end), with `offer_expires_at` while a place is offered."""
    return await fetch_on_driver(
        unit,
        "waitlist",
        _ENTRIES_BETWEEN,
        {"branch_id": branch_id, "start": start, "end": end},
        as_dicts=True,
    )


async def offer(unit: Unit, entry_id: str, hold_id: str) -> None:
    await execute_on_driver(unit, "offer place", _OFFER, {"entry_id": entry_id, "hold_id": hold_id})


async def lapse(unit: Unit, entry_id: str, hold_id: str) -> None:
    await execute_on_driver(unit, "lapse offer", _LAPSE, {"entry_id": entry_id, "hold_id": hold_id})


async def taken(unit: Unit, entry_id: str, appointment_id: str) -> None:
    await execute_on_driver(
        unit, "offer taken", _TAKEN, {"entry_id": entry_id, "appointment_id": appointment_id}
    )


# Confirmations and no-shows ------------------------------------------------------------------------------

_CONFIRMED = "UPDATE appointments SET confirmed_at = %(at)s WHERE appointment_id = %(appointment_id)s"
_COUNT_NO_SHOW = """
    INSERT INTO customer_no_shows (customer_id, no_shows) VALUES (%(customer_id)s, 1)
    ON CONFLICT (customer_id) DO UPDATE SET no_shows = customer_no_shows.no_shows + 1
"""
# A customer's own no-shows and those of the duplicates merged into them (merges do not chain).
_NO_SHOWS = """
    SELECT coalesce(sum(no_shows), 0) FROM customer_no_shows
    WHERE customer_id = %(customer_id)s
       OR customer_id IN (SELECT customer_id FROM directory_customers WHERE merged_into = %(customer_id)s)
"""


async def confirmed(unit: Unit, appointment_id: str, at: datetime) -> None:
    await execute_on_driver(unit, "confirmed", _CONFIRMED, {"appointment_id": appointment_id, "at": at})


async def count_no_show(unit: Unit, customer_id: str) -> None:
    await execute_on_driver(unit, "count no-show", _COUNT_NO_SHOW, {"customer_id": customer_id})


async def no_shows(unit: Unit, customer_id: str) -> int:
    row = await execute_on_driver(unit, "no-shows", _NO_SHOWS, {"customer_id": customer_id})
    return int(row[0]) if row else 0
