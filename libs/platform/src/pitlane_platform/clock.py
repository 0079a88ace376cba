"""Time is injected: every reader of "now" takes a Clock, so reminders, surveys and KPIs can be tested and
demoed across months without waiting for them."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


class SteeredClock:
    """Real time shifted by the offset another process writes to a file (`write_clock_offset`): how `pitlane
    demo` walks running services through two years of history and back to the present (ADR 27). No file: no
    offset. Every reading looks at the file (a stat; the file is replaced whole), so every process sees a
    move at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._offset = None, timedelta(0)
        else:
            if (stat.st_ino, stat.st_mtime_ns) != self._seen:
                self._offset = timedelta(microseconds=int(self.path.read_text()))
                self._seen = (stat.st_ino, stat.st_mtime_ns)
        return datetime.now(UTC) + self._offset


def write_clock_offset(path: Path, offset: timedelta) -> None:
    """Steer every SteeredClock reading `path`: replaced whole, so no reader sees half a number."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(str(offset // timedelta(microseconds=1)))
    os.replace(partial, path)


def clock_from_settings(
    fixed_at: datetime | None, offset: timedelta | None, offset_file: Path | None = None
) -> Clock:
    if fixed_at is not None:
        return FixedClock(fixed_at)
    if offset_file is not None:
        return SteeredClock(offset_file)
    if offset:
        return OffsetClock(offset)
    return SystemClock()
