"""Who works when: each staff member's shift on a local day, its breaks, and leave. A technician counts for a
slot's capacity when working all of it — inside a shift, on no break and on no leave — and dispatch ranks
technicians by their time on shift today (`Roster.shift_time`).

A shift is on one local day (opening before midnight and closing after it is two shifts); breaks lie inside
it and do not overlap. Leave is a period of aware datetimes: a day off, an afternoon at the doctor's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class Shift:
    staff_id: str
    day: date
    starts_at: time
    ends_at: time
    breaks: tuple[tuple[time, time], ...] = ()


@dataclass(frozen=True)
class Leave:
    staff_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class ShiftTime:
    """A technician's day at a moment: working right now, and the minutes of the day's shift (breaks and
    leave taken out) already worked and still to work."""

    on_shift: bool
    worked_minutes: int
    remaining_minutes: int


def subtract(periods: Iterable[Period], taken: Iterable[Period]) -> list[Period]:
    """`periods` without any moment of `taken`, in time order."""
    left = sorted(periods)
    for cut_start, cut_end in taken:
        kept: list[Period] = []
        for start, end in left:
            if cut_end <= start or end <= cut_start:
                kept.append((start, end))
                continue
            if start < cut_start:
                kept.append((start, cut_start))
            if cut_end < end:
                kept.append((cut_end, end))
        left = kept
    return left


def overlaps(first: Period, second: Period) -> bool:
    return first[0] < second[1] and second[0] < first[1]


@dataclass(frozen=True)
class Roster:
    """A branch's shifts and leave over some days, and which of its staff are technicians."""

    timezone: ZoneInfo
    technicians: frozenset[str]
    shifts: Sequence[Shift]
    leave: Sequence[Leave] = ()
    _working: dict[str, list[Period]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        working: dict[str, list[Period]] = {}
        for shift in self.shifts:
            start = datetime.combine(shift.day, shift.starts_at, self.timezone).astimezone(UTC)
            end = datetime.combine(shift.day, shift.ends_at, self.timezone).astimezone(UTC)
            breaks = [
                (
                    datetime.combine(shift.day, begins, self.timezone).astimezone(UTC),
                    datetime.combine(shift.day, ends, self.timezone).astimezone(UTC),
                )
                for begins, ends in shift.breaks
            ]
            away = [
                (leave.starts_at, leave.ends_at) for leave in self.leave if leave.staff_id == shift.staff_id
            ]
            working.setdefault(shift.staff_id, []).extend(subtract([(start, end)], [*breaks, *away]))
        object.__setattr__(self, "_working", working)

    def working_periods(self, staff_id: str) -> list[Period]:
        """When the staff member works, breaks and leave taken out, in time order."""
        return sorted(self._working.get(staff_id, []))

    def technicians_working(self, start: datetime, end: datetime) -> int:
        """How many technicians work all of [start, end)."""
        return sum(
            any(begins <= start and end <= ends for begins, ends in self._working.get(staff_id, []))
            for staff_id in self.technicians
        )

    def shift_time(self, now: datetime) -> dict[str, ShiftTime]:
        """Each technician with a shift on the branch's local day of `now`: on shift now or not, and the
        minutes of that day's shift worked and still to work."""
        today = now.astimezone(self.timezone).date()
        day_start = datetime.combine(today, time(), self.timezone).astimezone(UTC)
        day_end = datetime.combine(today + timedelta(days=1), time(), self.timezone).astimezone(UTC)
        times: dict[str, ShiftTime] = {}
        for staff_id in sorted(self.technicians):
            periods = [
                (max(start, day_start), min(end, day_end))
                for start, end in self._working.get(staff_id, [])
                if overlaps((start, end), (day_start, day_end))
            ]
            if not any(shift.staff_id == staff_id and shift.day == today for shift in self.shifts):
                continue
            worked = sum((min(end, now) - start for start, end in periods if start < now), timedelta())
            remaining = sum((end - max(start, now) for start, end in periods if end > now), timedelta())
            times[staff_id] = ShiftTime(
                on_shift=any(start <= now < end for start, end in periods),
                worked_minutes=int(worked.total_seconds() // 60),
                remaining_minutes=int(remaining.total_seconds() // 60),
            )
        return times
