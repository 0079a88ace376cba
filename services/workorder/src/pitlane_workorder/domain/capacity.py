"""A branch's booking capacity: a grid of equal slots inside its opening hours, each taking as many cars as
the branch has bays.

Bookings are made on the grid (a slot starts at opening time plus a whole number of slot lengths), so two
bookings either share a slot or do not overlap at all, and "how many cars in this slot" is an exact count.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pitlane_events.types import OpeningHours, TimeSlot
from pitlane_platform.errors import ConflictError, InvalidInputError

SUGGESTED_SLOTS = 3
SUGGESTION_HORIZON = timedelta(days=14)
# How far before an off-grid time its nearest free slots are looked for: the evening before a time asked for
# in the small hours is nearer than the next morning.
NEAREST_LOOKBACK = timedelta(days=1)


class SlotFullError(ConflictError):
    """Every bay is booked for the slot; `next_free` suggests the earliest slots that still have room."""

    title = "Slot fully booked"

    def __init__(self, slot: TimeSlot, bays: int, next_free: list[TimeSlot]) -> None:
        super().__init__(
            f"all {bays} bays are booked from {slot.start.isoformat()} to {slot.end.isoformat()}; "
            f"{len(next_free)} next free slot(s) suggested"
        )
        self.next_free = next_free


class OffGridSlotError(InvalidInputError):
    """The time asked for is not the start of a slot within opening hours; `nearest_free` suggests the free
    slots closest to it (earlier or later, never already begun)."""

    title = "Not a bookable slot"

    def __init__(self, field: str, message: str, nearest_free: list[TimeSlot]) -> None:
        super().__init__(field, message)
        self.nearest_free = nearest_free


@dataclass(frozen=True)
class SlotCapacity:
    slot: TimeSlot
    booked: int
    remaining: int


def suggestion_window(start: datetime, now: datetime) -> tuple[datetime, datetime]:
    """[from, to) of the slot starts a booking at `start` may be pointed to: the nearest ones around an
    off-grid time, and the next ones after a full slot; never a slot that has begun."""
    return max(now, start - NEAREST_LOOKBACK), max(now, start) + SUGGESTION_HORIZON


@dataclass(frozen=True)
class BookingGrid:
    timezone: ZoneInfo
    opening_hours: tuple[OpeningHours, ...]
    bays: int
    slot_minutes: int

    @property
    def slot_length(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def slot_starting_at(
        self, start: datetime, booked: Mapping[datetime, int], *, not_before: datetime, field: str
    ) -> TimeSlot:
        """The grid slot that starts at `start`, or an OffGridSlotError naming `field` that suggests the free
        slots nearest to `start`. `booked` counts live bookings per slot start over `suggestion_window`."""
        if start.tzinfo is None:
            raise InvalidInputError(field, "needs a UTC offset, e.g. 2026-11-20T09:00:00+08:00")
        local = start.astimezone(self.timezone)
        for slot in self.slots_on(local.date()):
            if slot.start == start:
                return slot
        raise OffGridSlotError(
            field,
            f"{local.isoformat()} is not the start of a {self.slot_minutes}-minute slot within opening hours",
            self.nearest_free_slots(start, booked, not_before=not_before),
        )

    def nearest_free_slots(
        self, start: datetime, booked: Mapping[datetime, int], *, not_before: datetime
    ) -> list[TimeSlot]:
        """The free slots closest in time to `start` (the earlier one on a tie), in time order."""
        free = (
            slot
            for slot in self.slots_from(suggestion_window(start, not_before)[0])
            if slot.start > not_before and booked.get(slot.start, 0) < self.bays
        )
        nearest = heapq.nsmallest(
            SUGGESTED_SLOTS, free, key=lambda slot: (abs(slot.start - start), slot.start)
        )
        return sorted(nearest, key=lambda slot: slot.start)

    def slots_from(self, earliest: datetime) -> Iterator[TimeSlot]:
        """Grid slots starting in [earliest, earliest + SUGGESTION_HORIZON), in time order: no further, for
        the bookings `suggestion_window` counts end there."""
        horizon = earliest + SUGGESTION_HORIZON
        day = earliest.astimezone(self.timezone).date()
        last_day = horizon.astimezone(self.timezone).date()
        while day <= last_day:
            for slot in self.slots_on(day):
                if earliest <= slot.start < horizon:
                    yield slot
            day += timedelta(days=1)

    def capacity_on(self, day: date, booked: Mapping[datetime, int]) -> list[SlotCapacity]:
        """Each grid slot of a local day with its live bookings and the bays still free."""
        return [
            SlotCapacity(slot, booked.get(slot.start, 0), self.bays - booked.get(slot.start, 0))
            for slot in self.slots_on(day)
        ]

    def slots_on(self, day: date) -> Iterator[TimeSlot]:
        """The grid slots of a local day, in time order."""
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
        start over `suggestion_window`."""
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
