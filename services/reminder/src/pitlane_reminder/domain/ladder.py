"""The reminder ladder: the steps of one due cycle, each a number of days before (negative) or after the
due date, and which of them are still to be sent."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

MAX_OFFSET_DAYS = 365


@dataclass(frozen=True)
class Ladder:
    """E.g. (-30, -7, 0, 7, 30): 30 and 7 days before the due date, on it, then 7 and 30 days overdue."""

    offsets_days: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.offsets_days:
            raise ValueError("a ladder has at least one step")
        if any(earlier >= later for earlier, later in pairwise(self.offsets_days)):
            raise ValueError("a ladder's steps are strictly increasing")
        if any(abs(offset) > MAX_OFFSET_DAYS for offset in self.offsets_days):
            raise ValueError(f"a ladder's steps are within {MAX_OFFSET_DAYS} days of the due date")


DEFAULT_LADDER = Ladder((-30, -7, 0, 7, 30))


def step_dates(ladder: Ladder, due_on: date) -> list[tuple[int, date]]:
    """Each step's offset and date, in order."""
    return [(offset, due_on + timedelta(days=offset)) for offset in ladder.offsets_days]


def steps_to_schedule(
    ladder: Ladder, due_on: date, *, sent: Collection[int], today: date
) -> list[tuple[int, date]]:
    """The steps still to send, in order, each with the date to send it on.

    Of the steps whose date has come (on or before `today`) only the latest counts: sent today if it has
    not been, the earlier ones skipped. A vehicle found 10 days overdue hears "7 days overdue" once, not
    four messages at once; and once that catch-up is sent, the steps before it never are, however often this
    is asked again. Later steps keep their own dates.
    """
    steps = step_dates(ladder, due_on)
    come = [offset for offset, on in steps if on <= today]
    catch_up = [(come[-1], today)] if come and come[-1] not in sent else []
    return catch_up + [(offset, on) for offset, on in steps if on > today and offset not in sent]
