"""A branch's booking capacity: a grid of equal slots inside its opening hours, each taking as many cars as
the branch has bays.

Bookings are made on the grid (a slot starts at opening time plus a whole number of slot lengths), so two
bookings either share a slot or do not overlap at all, and "how many cars in this slot" is an exact count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pitlane_events.types import OpeningHours, TimeSlot
from pitlane_platform.errors import ConflictError, InvalidInputError

SUGGESTED_SLOTS = 3
SUGGESTION_HORIZON = timedelta(days=14)


class SlotFullError(ConflictError):
    """Every bay is booked for the slot; `next_free` suggests the earliest slots that still have room."""

    title = "Slot fully booked"

    def __init__(self, slot: TimeSlot, bays: int, next_free: list[TimeSlot]) -> None:
        super().__init__(
            f"all {bays} bays are booked from {slot.start.isoformat()} to {slot.end.isoformat()}; "
            f"{len(next_free)} next free slot(s) suggested"
        )
        self.next_free = next_free


@dataclass(frozen=True)
class BookingGrid:
    timezone: ZoneInfo
    opening_hours: tuple[OpeningHours, ...]
    bays: int
    slot_minutes: int

    @property
    def slot_length(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def slot_starting_at(self, start: datetime, *, field: str = "slot_start") -> TimeSlot:
        """The grid slot that starts at `start`, or InvalidInputError naming `field` if there is none."""
        if start.tzinfo is None:
            raise InvalidInputError(field, "needs a UTC offset, e.g. 2026-11-20T09:00:00+08:00")
        local = start.astimezone(self.timezone)
        for slot in self._slots_on(local.date()):
            if slot.start == start:
                return slot
        raise InvalidInputError(
            field,
            f"{local.isoformat()} is not the start of a {self.slot_minutes}-minute slot within opening hours",
        )

    def slots_from(self, earliest: datetime) -> Iterator[TimeSlot]:
        """Grid slots starting at or after `earliest`, in time order, up to the suggestion horizon."""
        day = earliest.astimezone(self.timezone).date()
        last_day = (earliest + SUGGESTION_HORIZON).astimezone(self.timezone).date()
        while day <= last_day:
            for slot in self._slots_on(day):
                if slot.start >= earliest:
                    yield slot
            day += timedelta(days=1)

    def _slots_on(self, day: date) -> Iterator[TimeSlot]:
        for hours in sorted(self.opening_hours, key=lambda h: h.opens_at):
            if hours.weekday != day.isoweekday():
                continue
            start = datetime.combine(day, hours.opens_at, self.timezone)
            closes = datetime.combine(day, hours.closes_at, self.timezone)
            while start + self.slot_length <= closes:
                yield TimeSlot(start=start.astimezone(UTC), end=(start + self.slot_length).astimezone(UTC))
                start += self.slot_length

    def ensure_room(self, slot: TimeSlot, booked: Mapping[datetime, int], *, not_before: datetime) -> None:
        """Raise SlotFullError with suggestions when `slot` is full. `booked` counts live bookings per slot
        start, from `slot.start` on."""
        if booked.get(slot.start, 0) < self.bays:
            return
        raise SlotFullError(slot, self.bays, self.free_slots(booked, after=max(slot.start, not_before)))

    def free_slots(self, booked: Mapping[datetime, int], *, after: datetime) -> list[TimeSlot]:
        free: list[TimeSlot] = []
        for slot in self.slots_from(after):
            if slot.start > after and booked.get(slot.start, 0) < self.bays:
                free.append(slot)
                if len(free) == SUGGESTED_SLOTS:
                    break
        return free
