"""What a booking decision reads (ADR 25): the branch's grid with its calendar, its roster once it plans by
shifts, its booking rules (the chain's defaults and its overrides) and the places taken around the time
asked for; and technicians' time on shift for dispatch."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_events.types import Bay, OpeningHours
from pitlane_events.workorder import VisitType
from pitlane_platform.db import Unit
from pitlane_platform.errors import NotFoundError
from pitlane_workorder.adapters import calendar, queries
from pitlane_workorder.domain.booking_rules import BookingRules, effective_rules
from pitlane_workorder.domain.capacity import Availability, BookingGrid, Place, loading_window
from pitlane_workorder.domain.shifts import Leave, Roster, Shift, ShiftTime


async def branch_grid(
    unit: Unit, branch_id: str, *, lock: bool, rules: BookingRules | None = None
) -> BookingGrid:
    """The branch's grid (its calendar from `rules`), or a 404. `lock` takes the branch row lock, which
    serialises every decision that takes or frees places at the branch (bookings, holds, waitlist offers,
    cancellations, shifts and rules): two of them never decide on the same state."""
    row = await queries.branch(unit, branch_id, lock=lock)
    if row is None:
        raise NotFoundError(f"branch {branch_id} does not exist")
    return BookingGrid(
        timezone=ZoneInfo(row["timezone"]),
        opening_hours=tuple(OpeningHours.model_validate(hours) for hours in row["opening_hours"]),
        bays=len([Bay.model_validate(bay) for bay in row["bays"]]),
        slot_minutes=row["slot_minutes"],
        dates=rules.dates if rules is not None else {},
    )


async def branch_rules(unit: Unit, branch_id: str) -> BookingRules:
    chain, branch = await calendar.rules(unit, branch_id)
    return effective_rules(chain, branch)


async def availability(
    unit: Unit, branch_id: str, around: datetime, now: datetime, *, lock: bool
) -> Availability:
    """The branch's availability for deciding on a time `around` (and suggesting others near it)."""
    rules = await branch_rules(unit, branch_id)
    grid = await branch_grid(unit, branch_id, lock=lock, rules=rules)
    return await _availability(unit, branch_id, grid, rules, loading_window(around, now, grid.timezone), now)


async def day_availability(unit: Unit, branch_id: str, day: date, now: datetime) -> Availability:
    """The branch's availability over one local day (and the buffers reaching into it)."""
    rules = await branch_rules(unit, branch_id)
    grid = await branch_grid(unit, branch_id, lock=False, rules=rules)
    start = datetime.combine(day - timedelta(days=1), time(), grid.timezone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=2), time(), grid.timezone).astimezone(UTC)
    return await _availability(unit, branch_id, grid, rules, (start, end), now)


async def _availability(
    unit: Unit,
    branch_id: str,
    grid: BookingGrid,
    rules: BookingRules,
    window: tuple[datetime, datetime],
    now: datetime,
) -> Availability:
    roster = await branch_roster(unit, branch_id, grid.timezone, *window)
    if roster is not None:
        grid = replace(grid, roster=roster)
    taken = [
        Place(
            start=start,
            end=end,
            visit_type=VisitType(visit_type) if visit_type else None,
            service=service,
            ref=ref,
            held=held,
        )
        for start, end, visit_type, service, ref, held in await calendar.places(unit, branch_id, *window, now)
    ]
    return Availability(grid=grid, rules=rules, taken=taken, now=now)


async def branch_roster(
    unit: Unit, branch_id: str, timezone: ZoneInfo, start: datetime, end: datetime
) -> Roster | None:
    """The branch's shifts and leave over [start, end); None while it has entered no shift at all (it books
    by bays alone)."""
    if not await calendar.plans_by_shifts(unit, branch_id):
        return None
    first, last = start.astimezone(timezone).date(), end.astimezone(timezone).date()
    return Roster(
        timezone=timezone,
        technicians=await calendar.technicians(unit, branch_id),
        shifts=[shift_of(row) for row in await calendar.shifts(unit, branch_id, first, last)],
        leave=[
            Leave(row["staff_id"], row["starts_at"], row["ends_at"])
            for row in await calendar.leave(unit, branch_id, start, end)
        ],
    )


def shift_of(row: dict[str, Any]) -> Shift:
    return Shift(
        staff_id=row["staff_id"],
        day=row["day"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        breaks=tuple(
            (time.fromisoformat(pause["starts_at"]), time.fromisoformat(pause["ends_at"]))
            for pause in row["breaks"]
        ),
    )


async def shift_time(unit: Unit, branch_id: str, now: datetime) -> dict[str, ShiftTime]:
    """Each technician of the branch with a shift on its local day of `now`: whether on shift right now,
    and the minutes of the day's shift (breaks and leave taken out) worked and still to work. For ranking
    dispatch suggestions; empty while the branch plans by bays alone."""
    grid = await branch_grid(unit, branch_id, lock=False)
    today = now.astimezone(grid.timezone).date()
    start, end = (
        datetime.combine(day, time(), grid.timezone).astimezone(UTC)
        for day in (today, today + timedelta(days=1))
    )
    roster = await branch_roster(unit, branch_id, grid.timezone, start, end)
    return roster.shift_time(now) if roster is not None else {}
