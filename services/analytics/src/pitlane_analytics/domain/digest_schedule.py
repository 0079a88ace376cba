"""When a KPI digest goes out, and which period it covers.

A digest goes out at a local wall-clock time in a time zone: daily, weekly on a weekday, or monthly on a day
of the month (1–28, so every month has it). Each send covers the last full period before its local date —
yesterday, last week (Monday to Sunday), last month — and is compared with the period before that.

Send instants are worked out from local dates and the wall-clock time, never by adding hours to an instant,
so a digest at 08:00 stays at 08:00 across a daylight-saving change. A wall-clock time that does not exist
that day (skipped by a change) is sent that many minutes after the change (02:30 → 03:30); one that happens
twice (the clocks go back) is sent at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

LAST_MONTH_DAY = 28  # every month has a 28th: a monthly digest never skips a month


class Cadence(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


@dataclass(frozen=True)
class DigestPeriod:
    """[start, end) in local dates, and the period just before it (the comparison)."""

    start: date
    end: date
    previous_start: date


@dataclass(frozen=True)
class DigestSchedule:
    cadence: Cadence
    send_time: time  # local wall-clock time
    timezone: ZoneInfo
    weekday: int | None = None  # weekly: ISO weekday, 1 = Monday … 7 = Sunday
    month_day: int | None = None  # monthly: 1–28

    def __post_init__(self) -> None:
        if (self.cadence is Cadence.WEEKLY) != (self.weekday is not None):
            raise ValueError("a weekday goes with a weekly digest, and only with it")
        if (self.cadence is Cadence.MONTHLY) != (self.month_day is not None):
            raise ValueError("a day of the month goes with a monthly digest, and only with it")
        if self.weekday is not None and not 1 <= self.weekday <= 7:
            raise ValueError("weekday is 1 (Monday) to 7 (Sunday)")
        if self.month_day is not None and not 1 <= self.month_day <= LAST_MONTH_DAY:
            raise ValueError(f"month_day is 1 to {LAST_MONTH_DAY}")

    def is_send_day(self, day: date) -> bool:
        match self.cadence:
            case Cadence.DAILY:
                return True
            case Cadence.WEEKLY:
                return day.isoweekday() == self.weekday
            case Cadence.MONTHLY:
                return day.day == self.month_day

    def send_instant(self, day: date) -> datetime:
        """The UTC instant of the send on local date `day`."""
        return datetime.combine(day, self.send_time, tzinfo=self.timezone).astimezone(UTC)

    def next_send_day(self, after: datetime) -> date:
        """The local date of the first send strictly after the instant `after`."""
        day = after.astimezone(self.timezone).date()
        while not (self.is_send_day(day) and self.send_instant(day) > after):
            day += timedelta(days=1)
        return day

    def period_sent_on(self, day: date) -> DigestPeriod:
        """The last full period before local date `day`, and the one before it."""
        match self.cadence:
            case Cadence.DAILY:
                return DigestPeriod(day - timedelta(days=1), day, day - timedelta(days=2))
            case Cadence.WEEKLY:
                this_monday = day - timedelta(days=day.weekday())
                start = this_monday - timedelta(days=7)
                return DigestPeriod(start, this_monday, start - timedelta(days=7))
            case Cadence.MONTHLY:
                end = day.replace(day=1)
                start = _month_before(end)
                return DigestPeriod(start, end, _month_before(start))


def _month_before(first_day: date) -> date:
    return (first_day - timedelta(days=1)).replace(day=1)
