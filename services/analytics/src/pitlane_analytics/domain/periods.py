"""A KPI period: the half-open range [from, to) of local dates in the chain's time zone, and the UTC instants
its bounds are (the read models keep UTC; a visit at 23:30 in Shanghai on 31 December is December's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class EmptyPeriodError(ValueError):
    """`to` is not after `from`: the period holds no day."""


@dataclass(frozen=True)
class Period:
    start: date  # the first local day in the period (`from`)
    end: date  # the first local day after it (`to`)
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise EmptyPeriodError(f"to ({self.end}) must be after from ({self.start})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def utc_start(self) -> datetime:
        return local_midnight(self.start, self.timezone)

    @property
    def utc_end(self) -> datetime:
        return local_midnight(self.end, self.timezone)

    def days_before_end(self, days: int) -> datetime:
        """The start of the `days` local days before `to`, as a UTC instant (active and churned windows)."""
        return local_midnight(self.end - timedelta(days=days), self.timezone)


def local_midnight(day: date, timezone: ZoneInfo) -> datetime:
    """The instant a local day begins, in UTC. In a zone that skips midnight (a DST change at 00:00) the
    day begins at the instant the clock shows the first time after the gap."""
    return datetime.combine(day, time(0), tzinfo=timezone).astimezone(UTC)
