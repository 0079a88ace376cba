"""How far a vehicle drives a day, from its odometer readings, and where its odometer will be on a date.

Readings are checked in time order against the last one accepted: one that goes backwards, or that would
mean driving more than a car can (a digit too many typed at check-in), is set aside with a reason an
advisor can read, so no reminder falls due early because of it. A correction (the odometer was replaced or
reset) is a lower reading that is right: it is accepted and starts a new baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import groupby

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Reading:
    """An odometer reading taken at an instant (timezone-aware)."""

    at: datetime
    km: int
    correction: bool = False

    def __post_init__(self) -> None:
        if self.at.utcoffset() is None:
            raise ValueError("a reading's time must be timezone-aware")
        if self.km < 0:
            raise ValueError("an odometer reading is never negative")


@dataclass(frozen=True)
class SetAside:
    """A reading left out of the estimate, and why, in plain English."""

    reading: Reading
    reason: str


@dataclass(frozen=True)
class Projection:
    """What a projection of the odometer needs of an estimate, and all a reminder's due date needs of it:
    the last accepted reading, the daily distance, and when the odometer its readings come from was fitted
    (a correction since which they count; None when they run from the first reading). Small enough to be
    kept on the vehicle's row, so a rule change re-evaluates a million vehicles without their readings."""

    last: Reading | None
    km_per_day: float | None
    defaulted: bool = False
    odometer_replaced_at: datetime | None = None

    def projected_km(self, on: datetime) -> int | None:
        """The odometer expected at `on`: the last reading plus the days since at the daily rate, and never
        less than the last reading (for a time before it, too)."""
        if self.last is None or self.km_per_day is None:
            return None
        driven = (on - self.last.at) / DAY * self.km_per_day
        return self.last.km + max(0, round(driven))

    def date_reaching(self, km: int) -> datetime | None:
        """When the odometer reaches `km`: the last reading's time if it already has; None if it never will
        (no rate, a car that does not move, or further away than the calendar goes)."""
        if self.last is None:
            return None
        if km <= self.last.km:
            return self.last.at
        if self.km_per_day is None or self.km_per_day <= 0:
            return None
        try:
            return self.last.at + (km - self.last.km) / self.km_per_day * DAY
        except OverflowError:  # a car that hardly moves: thousands of years away, as good as never
            return None


@dataclass(frozen=True)
class MileageEstimate:
    """The daily distance a vehicle drives and what it rests on.

    `based_on` holds the accepted readings since the last correction: those the rate is computed from, or,
    when `defaulted` (or the rate is None), the history too short to compute one from.
    """

    km_per_day: float | None
    last: Reading | None
    based_on: tuple[Reading, ...]
    set_aside: tuple[SetAside, ...]
    defaulted: bool

    @property
    def projection(self) -> Projection:
        first = self.based_on[0] if self.based_on else None
        return Projection(
            last=self.last,
            km_per_day=self.km_per_day,
            defaulted=self.defaulted,
            odometer_replaced_at=first.at if first is not None and first.correction else None,
        )

    def explain(self, tz: tzinfo = UTC) -> str:
        """One line an advisor can read to a customer, dates in `tz` (the chain's time zone), e.g. "about
        50 km a day from 3 readings between 2025-09-03 and 2026-01-01; 1 reading set aside (…)"."""
        if self.last is None:
            line = "no mileage readings"
        elif self.km_per_day is None:
            line = f"no daily distance yet (too short a history: {_readings(self.based_on, tz)})"
        elif self.defaulted:
            line = f"{about_km_a_day(self.km_per_day)} assumed (too short a history: {_readings(self.based_on, tz)})"
        else:
            line = f"{about_km_a_day(self.km_per_day)} from {_readings(self.based_on, tz)}"
        if self.based_on and self.based_on[0].correction:
            line += f"; counted from the odometer correction on {_local_date(self.based_on[0], tz)}"
        if self.set_aside:
            count = len(self.set_aside)
            reasons = "; ".join(aside.reason for aside in self.set_aside)
            line += f"; {count} reading{'s' if count > 1 else ''} set aside ({reasons})"
        return line


def estimate(
    readings: Sequence[Reading],
    *,
    max_km_per_day: float = 1000.0,
    min_span_days: float = 7.0,
    default_km_per_day: float | None = None,
) -> MileageEstimate:
    """The daily distance from `readings` (any order; the same reading reported twice counts once).

    The rate is the distance between the first and last accepted readings since the last correction over
    the days between them, once they span `min_span_days`; before that it is `default_km_per_day` (with
    `defaulted`) or None.

    Readings taken at the same instant cannot both be right: the first of them that passes the checks is
    kept, trying a correction first (staff confirmed it), then the lower reading (if it is the wrong one, a
    reminder comes a little late; a wrong higher one would make it fall due early).
    """
    if max_km_per_day <= 0 or min_span_days <= 0:
        raise ValueError("max_km_per_day and min_span_days must be positive")
    if default_km_per_day is not None and default_km_per_day <= 0:
        raise ValueError("default_km_per_day must be positive")

    baseline: list[Reading] = []  # accepted since the last correction
    set_aside: list[SetAside] = []
    in_order = sorted(set(readings), key=lambda reading: (reading.at, not reading.correction, reading.km))
    for _, same_instant in groupby(in_order, key=lambda reading: reading.at):
        kept: Reading | None = None
        for reading in same_instant:
            if kept is not None:
                set_aside.append(
                    SetAside(reading, f"taken at the same time as the {kept.km:,} km reading kept")
                )
                continue
            doubt = _doubt(reading, baseline[-1] if baseline else None, max_km_per_day)
            if doubt is not None:
                set_aside.append(SetAside(reading, doubt))
                continue
            kept = reading
            baseline = [reading] if reading.correction else [*baseline, reading]

    km_per_day, defaulted = default_km_per_day, default_km_per_day is not None
    if baseline:
        span_days = (baseline[-1].at - baseline[0].at) / DAY
        if span_days >= min_span_days:
            km_per_day, defaulted = (baseline[-1].km - baseline[0].km) / span_days, False
    return MileageEstimate(
        km_per_day=km_per_day,
        last=baseline[-1] if baseline else None,
        based_on=tuple(baseline),
        set_aside=tuple(set_aside),
        defaulted=defaulted,
    )


def about_km_a_day(km_per_day: float) -> str:
    """E.g. "about 50 km a day", "about 1,250 km a day", "about 0.3 km a day" (a car that is hardly used)."""
    figure = f"{km_per_day:,.0f}" if km_per_day >= 10 else f"{km_per_day:.2g}"
    return f"about {figure} km a day"


def _doubt(reading: Reading, last: Reading | None, max_km_per_day: float) -> str | None:
    """Why `reading` cannot follow `last`, or None when it can."""
    if last is None or reading.correction:  # nothing to compare with, or a new odometer
        return None
    if reading.km < last.km:
        return f"goes backwards from {last.km:,} km"
    # Over less than a day a rate is noise (60 km in the hour to the workshop is 1,440 km a day): a day's
    # worth of driving is always plausible.
    implied = (reading.km - last.km) / max((reading.at - last.at) / DAY, 1.0)
    if implied > max_km_per_day:
        return f"implies {implied:,.0f} km a day since the last reading"
    return None


def _local_date(reading: Reading, tz: tzinfo) -> date:
    return reading.at.astimezone(tz).date()


def _readings(readings: Sequence[Reading], tz: tzinfo) -> str:
    """E.g. "3 readings between 2025-09-03 and 2026-01-01", "1 reading on 2026-01-01"."""
    first, last = _local_date(readings[0], tz), _local_date(readings[-1], tz)
    count = f"{len(readings)} reading{'s' if len(readings) > 1 else ''}"
    return f"{count} on {first}" if first == last else f"{count} between {first} and {last}"
