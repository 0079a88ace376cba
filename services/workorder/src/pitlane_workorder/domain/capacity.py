"""A branch's booking capacity: a grid of equal slots inside its opening hours, and the booking rules a chain
sets for it (ADR 25).

Bookings are made on the grid (a slot starts at opening time plus a whole number of slot lengths). Which days
have slots follows the weekday's opening hours unless the branch's calendar says otherwise: a holiday has
none, a make-up working day (调休) has a weekday's. A slot takes as many cars as the branch has bays — or,
once the branch plans by shifts, as many as it has bays and technicians working all of the slot, whichever
is fewer. A place is taken by a live booking or a hold (a customer completing the online form, a waitlist
offer), for its slot and the rules' buffers before and after it; the places taken around a slot are those
whose times, buffers included, overlap the slot's. Caps per day, per service and per visit type count the
places of the slot's local day.

A time that is not bookable (off the grid, a closed day, begun, too soon, too far ahead) is a 422 naming
the field, suggesting the free slots nearest to it; a slot without room is a 409 naming the rule, suggesting
the next free slots.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pitlane_events.types import OpeningHours, TimeSlot
from pitlane_events.workorder import VisitType
from pitlane_platform.errors import ConflictError, InvalidInputError
from pitlane_workorder.domain.booking_rules import VISIT_TYPE_CAPS, BookingRules, DateOverride
from pitlane_workorder.domain.shifts import Roster, overlaps

SUGGESTED_SLOTS = 3
SUGGESTION_HORIZON = timedelta(days=14)
# How far before an off-grid time its nearest free slots are looked for: the evening before a time asked for
# in the small hours is nearer than the next morning.
NEAREST_LOOKBACK = timedelta(days=1)


class NoRoomError(ConflictError):
    """The slot has no room for the booking under `rule`; `next_free` suggests the earliest slots that do."""

    def __init__(self, rule: str, message: str, next_free: list[TimeSlot]) -> None:
        super().__init__(f"{message}; {len(next_free)} next free slot(s) suggested")
        self.rule = rule
        self.next_free = next_free


class SlotFullError(NoRoomError):
    title = "Slot fully booked"


class BookingCapError(NoRoomError):
    """A cap of the slot's day (per day, per service, per visit type) is reached."""

    title = "Booking cap reached"


class UnbookableTimeError(InvalidInputError):
    """The time asked for is not the start of a bookable slot (off the grid, a closed day, begun, too soon or
    too far ahead); `nearest_free` suggests the free slots closest to it, earlier or later."""

    title = "Not a bookable slot"

    def __init__(self, field: str, message: str, nearest_free: list[TimeSlot]) -> None:
        super().__init__(field, message)
        self.nearest_free = nearest_free


@dataclass(frozen=True)
class Place:
    """A place taken in a slot: a live booking, or a hold (`held`); `ref` is the appointment's or the
    hold's id."""

    start: datetime
    end: datetime
    visit_type: VisitType | None
    service: str
    ref: str
    held: bool = False


@dataclass(frozen=True)
class BookingRequest:
    """What a booking asks for besides its time: the caps per visit type and per service apply to it."""

    visit_type: VisitType
    service: str


@dataclass(frozen=True)
class SlotCapacity:
    slot: TimeSlot
    places: int
    booked: int
    held: int
    remaining: int
    bookable: bool


def loading_window(start: datetime, now: datetime, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """[from, to) of the places a decision about `start` counts: the slots it may suggest (from the day
    before `start`, never begun, to SUGGESTION_HORIZON after it), whole local days of them for the caps per
    day, and a day on either side for the buffers reaching into them."""
    first = max(now, start - NEAREST_LOOKBACK).astimezone(timezone).date() - timedelta(days=1)
    last = (max(now, start) + SUGGESTION_HORIZON).astimezone(timezone).date() + timedelta(days=2)
    return (
        datetime.combine(first, time(), timezone).astimezone(UTC),
        datetime.combine(last, time(), timezone).astimezone(UTC),
    )


@dataclass(frozen=True)
class BookingGrid:
    """The branch's slots and how many cars each takes."""

    timezone: ZoneInfo
    opening_hours: tuple[OpeningHours, ...]
    bays: int
    slot_minutes: int
    dates: Mapping[date, DateOverride] = field(default_factory=dict)
    # None: the branch has entered no shift and books by its bays alone.
    roster: Roster | None = None

    @property
    def slot_length(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def hours_on(self, day: date) -> list[tuple[time, time]]:
        """The local day's opening periods, as the calendar has them."""
        override = self.dates.get(day)
        if override is not None and override.closed:
            return []
        if override is not None and override.hours:
            return sorted(override.hours)
        weekday = override.as_weekday if override is not None and override.as_weekday else day.isoweekday()
        return sorted((h.opens_at, h.closes_at) for h in self.opening_hours if h.weekday == weekday)

    def slots_on(self, day: date) -> Iterator[TimeSlot]:
        """The grid slots of a local day, in time order."""
        for opens_at, closes_at in self.hours_on(day):
            start = datetime.combine(day, opens_at, self.timezone)
            closes = datetime.combine(day, closes_at, self.timezone)
            while start + self.slot_length <= closes:
                yield TimeSlot(start=start.astimezone(UTC), end=(start + self.slot_length).astimezone(UTC))
                start += self.slot_length

    def slots_between(self, earliest: datetime, horizon: datetime) -> Iterator[TimeSlot]:
        """Grid slots starting in [earliest, horizon), in time order."""
        day = earliest.astimezone(self.timezone).date()
        last_day = horizon.astimezone(self.timezone).date()
        while day <= last_day:
            for slot in self.slots_on(day):
                if earliest <= slot.start < horizon:
                    yield slot
            day += timedelta(days=1)

    def places(self, slot: TimeSlot) -> int:
        """Cars the slot takes: the bays, or fewer when fewer technicians work all of it."""
        if self.roster is None:
            return self.bays
        return min(self.bays, self.roster.technicians_working(slot.start, slot.end))


@dataclass(frozen=True)
class Availability:
    """The grid under the branch's rules, with the places taken around the time being decided (over
    `loading_window`), at `now`."""

    grid: BookingGrid
    rules: BookingRules
    taken: Sequence[Place]
    now: datetime
    _by_day: dict[date, list[Place]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_day: dict[date, list[Place]] = defaultdict(list)
        for place in self.taken:
            by_day[self._local_day(place.start)].append(place)
        object.__setattr__(self, "_by_day", dict(by_day))

    def without(self, ref: str) -> Availability:
        """The same, with the caller's own place (the hold it books with, the appointment it moves) not
        counted against it."""
        return replace(self, taken=[place for place in self.taken if place.ref != ref])

    def with_place(self, place: Place) -> Availability:
        return replace(self, taken=[*self.taken, place])

    # When -----------------------------------------------------------------------------------------------

    def slot_at(self, start: datetime, request: BookingRequest | None, *, field: str) -> TimeSlot:
        """The bookable slot that starts at `start`, or an UnbookableTimeError naming `field` that suggests
        the free slots nearest to it."""
        if start.tzinfo is None:
            raise InvalidInputError(field, "needs a UTC offset, e.g. 2026-11-20T09:00:00+08:00")
        local = start.astimezone(self.grid.timezone)
        slot = next((slot for slot in self.grid.slots_on(local.date()) if slot.start == start), None)
        reason = self._off_the_grid(local) if slot is None else self._not_bookable_because(slot)
        if reason is not None:
            raise UnbookableTimeError(field, reason, self.nearest_free(start, request))
        assert slot is not None  # a time off the grid has a reason
        return slot

    def _off_the_grid(self, local: datetime) -> str:
        override = self.grid.dates.get(local.date())
        if override is not None and override.closed:
            return f"{local.date().isoformat()} is closed ({override.note or 'holiday'})"
        return (
            f"{local.isoformat()} is not the start of a {self.grid.slot_minutes}-minute slot within opening"
            " hours"
        )

    def _not_bookable_because(self, slot: TimeSlot) -> str | None:
        if slot.start <= self.now:
            return "the slot has already begun"
        if slot.start < self.now + self.rules.min_notice:
            minutes = int(self.rules.min_notice.total_seconds() // 60)
            return f"bookings need {minutes} minutes' notice (min_notice_minutes)"
        last_day = self._last_bookable_day()
        if last_day is not None and self._local_day(slot.start) > last_day:
            return (
                f"bookings are taken at most {self.rules.max_days_ahead} days ahead, until"
                f" {last_day.isoformat()} (max_days_ahead)"
            )
        return None

    def _last_bookable_day(self) -> date | None:
        if self.rules.max_days_ahead is None:
            return None
        return self._local_day(self.now) + timedelta(days=self.rules.max_days_ahead)

    # Room -----------------------------------------------------------------------------------------------

    def ensure_room(self, slot: TimeSlot, request: BookingRequest) -> None:
        """Raise the NoRoomError of the first rule the booking breaks, suggesting the next free slots."""
        conflict = self._conflict(slot, request)
        if conflict is None:
            return
        error, rule, message = conflict
        raise error(rule, message, self.next_free(max(slot.start, self.now), request))

    def has_room(self, slot: TimeSlot, request: BookingRequest | None) -> bool:
        return self._conflict(slot, request) is None

    def _conflict(
        self, slot: TimeSlot, request: BookingRequest | None
    ) -> tuple[type[NoRoomError], str, str] | None:
        places = self.grid.places(slot)
        if self.taken_around(slot) >= places:
            span = f"from {slot.start.isoformat()} to {slot.end.isoformat()}"
            if places == 0:
                return SlotFullError, "capacity", f"no technician is on shift {span}"
            what = "bays" if places == self.grid.bays else "technicians on shift"
            return SlotFullError, "capacity", f"all {places} {what} are booked {span}"
        day = self._local_day(slot.start)
        on_day = self._by_day.get(day, [])
        caps: list[tuple[str, int | None, int]] = [("max_per_day", self.rules.max_per_day, len(on_day))]
        if request is not None:
            caps.append(
                (
                    VISIT_TYPE_CAPS[request.visit_type],
                    self.rules.max_per_visit_type_per_day.get(request.visit_type),
                    sum(place.visit_type is request.visit_type for place in on_day),
                )
            )
            caps.append(
                (
                    "max_per_service_per_day",
                    self.rules.max_per_service_per_day.get(request.service),
                    sum(place.service == request.service for place in on_day),
                )
            )
        for rule, cap, count in caps:
            if cap is not None and count >= cap:
                return (
                    BookingCapError,
                    rule,
                    f"{day.isoformat()} has {count} of at most {cap} bookings ({rule})",
                )
        return None

    def taken_around(self, slot: TimeSlot) -> int:
        """Places whose times, buffers included, overlap the slot's."""
        held_for = (slot.start - self.rules.buffer_before, slot.end + self.rules.buffer_after)
        day = self._local_day(slot.start)
        return sum(
            overlaps(held_for, (place.start - self.rules.buffer_before, place.end + self.rules.buffer_after))
            for neighbour in (day - timedelta(days=1), day, day + timedelta(days=1))
            for place in self._by_day.get(neighbour, [])
        )

    def fits(self, slot: TimeSlot, request: BookingRequest | None) -> bool:
        return self._not_bookable_because(slot) is None and self.has_room(slot, request)

    # Suggestions ----------------------------------------------------------------------------------------

    def next_free(self, after: datetime, request: BookingRequest | None) -> list[TimeSlot]:
        """The first free slots after `after`, up to SUGGESTION_HORIZON later."""
        free: list[TimeSlot] = []
        for slot in self.grid.slots_between(after, after + SUGGESTION_HORIZON):
            if slot.start > after and self.fits(slot, request):
                free.append(slot)
                if len(free) == SUGGESTED_SLOTS:
                    break
        return free

    def nearest_free(self, start: datetime, request: BookingRequest | None) -> list[TimeSlot]:
        """The free slots closest in time to `start` (the earlier one on a tie), in time order, from the day
        before it (never a slot begun) to SUGGESTION_HORIZON after it."""
        earliest = max(self.now, start - NEAREST_LOOKBACK)
        free = (
            slot
            for slot in self.grid.slots_between(earliest, max(self.now, start) + SUGGESTION_HORIZON)
            if self.fits(slot, request)
        )
        nearest = heapq.nsmallest(
            SUGGESTED_SLOTS, free, key=lambda slot: (abs(slot.start - start), slot.start)
        )
        return sorted(nearest, key=lambda slot: slot.start)

    def capacity_on(self, day: date, request: BookingRequest | None) -> list[SlotCapacity]:
        """Each grid slot of a local day: its places, the bookings and holds in it, the places left, and
        whether a booking (of `request`, if given) fits now."""
        capacity = []
        for slot in self.grid.slots_on(day):
            places = self.grid.places(slot)
            in_slot = [place for place in self.taken if place.start == slot.start]
            held = sum(place.held for place in in_slot)
            capacity.append(
                SlotCapacity(
                    slot=slot,
                    places=places,
                    booked=len(in_slot) - held,
                    held=held,
                    remaining=max(0, places - self.taken_around(slot)),
                    bookable=self.fits(slot, request),
                )
            )
        return capacity

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.grid.timezone).date()
