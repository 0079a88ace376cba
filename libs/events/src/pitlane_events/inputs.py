"""Types for what clients send, stricter than the event schemas (which stay as they are published): dates
within a calendar the services can compute with, numbers that are numbers, branch ids that are NATS subject
tokens. Each makes a bad value a 422 naming the field, where it once was a 500 deeper down.

- A date or time must be ISO 8601 text (or a date object, from a spreadsheet): pydantic would otherwise take
  `0` for 1970-01-01. It must lie between `EARLIEST_DATE` and `LATEST_DATE`: a day or a slot added to
  9999-12-31 overflows Python's calendar.
- A number must not be `true` or `false` (pydantic would take `false` for 0 km). Numeric text stays
  accepted: imported CSV cells are text.
- A branch id becomes one token of the subjects its events are published under (`<service>.<branch>.…`):
  a dot, a wildcard or a space would make the broker refuse them or route them elsewhere.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)
"""Far beyond any booking, birthday or insurance term, and far from the calendar's end."""

SUBJECT_TOKEN_FORBIDDEN = frozenset(".*> \t\r\n")
"""Characters a NATS subject token cannot hold (the envelope refuses a branch id with one; `BranchIdInput`
refuses these and every other white space)."""


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str | date):
        raise ValueError("must be an ISO 8601 date or time as text, e.g. 2026-12-03")
    return value


def _within_calendar(value: date) -> date:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"must lie between {EARLIEST_DATE} and {LATEST_DATE}")
    return value


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


DateInput = Annotated[date, BeforeValidator(_iso_text), AfterValidator(_within_calendar)]
"""A calendar date a client sends: ISO text, within [EARLIEST_DATE, LATEST_DATE]."""

DatetimeInput = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_within_calendar)]
"""A point in time a client sends: ISO text with its offset, within [EARLIEST_DATE, LATEST_DATE]."""

NOT_A_BOOLEAN = BeforeValidator(_not_a_boolean)
"""Add to an integer field's `Annotated[...]`: `true` and `false` are refused, not read as 1 and 0."""

BranchIdInput = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^.*>\s]+$")]
"""A branch id a client chooses: an id (1–64 characters) usable as a NATS subject token."""
