"""Time is injected: every reader of "now" takes a Clock, so reminders, surveys and KPIs can be tested and
demoed across months without waiting for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """Stands still until told to move; for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        self._at += by


class OffsetClock:
    """Real time shifted by an offset; for demos ("it is now three months later")."""

    def __init__(self, offset: timedelta, base: Clock | None = None) -> None:
        self.offset = offset
        self._base = base or SystemClock()

    def now(self) -> datetime:
        return self._base.now() + self.offset


def clock_from_settings(fixed_at: datetime | None, offset: timedelta | None) -> Clock:
    if fixed_at is not None:
        return FixedClock(fixed_at)
    if offset:
        return OffsetClock(offset)
    return SystemClock()
