"""The booking rules a chain sets for its branches (ADR 25): the chain's defaults, and each branch's overrides
of them, merged field by field (a field a branch leaves unset is the chain's; one neither sets is the
default below, which is how booking worked before there were rules). Calendar dates merge by date: a
branch's entry for a date replaces the chain's.

The rules as stored are the JSON the API accepted (field names as in the API: `min_notice_minutes`, …);
`effective_rules` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from types import MappingProxyType
from typing import Any

from pitlane_events.workorder import VisitType

# The caps per visit type, by the field that sets each (the rule a 409 names).
VISIT_TYPE_CAPS = MappingProxyType(
    {VisitType.WAITING: "max_waiting_per_day", VisitType.DROP_OFF: "max_drop_off_per_day"}
)


@dataclass(frozen=True)
class DateOverride:
    """A date that is not like its weekday: closed (a public holiday, a branch's own closure) or open
    (China's make-up working days, 调休: a Sunday worked as a weekday), with the opening hours of weekday
    `as_weekday` or `hours` of its own."""

    on: date
    closed: bool
    as_weekday: int | None = None
    hours: tuple[tuple[time, time], ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class BookingRules:
    min_notice: timedelta = timedelta(0)
    """A slot must start at least this long after the booking."""
    max_days_ahead: int | None = None
    """A slot's local date may be at most this many days after today's; None: no limit."""
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    """A booking keeps its place this long before and after its slot (preparation, hand-over)."""
    max_per_day: int | None = None
    max_per_service_per_day: Mapping[str, int] = field(default_factory=dict)
    """Per `service_requested`, as the booking form offers it (exact text)."""
    max_per_visit_type_per_day: Mapping[VisitType, int] = field(default_factory=dict)
    hold: timedelta = timedelta(minutes=5)
    """How long a slot is held while the customer completes the online form."""
    waitlist_hold: timedelta = timedelta(minutes=30)
    """How long a freed place is held for the waitlisted customer it is offered to."""
    no_show_threshold: int | None = None
    """A customer with more no-shows than this books only with a confirmation; None: never asked."""
    confirmation_deadline: timedelta = timedelta(hours=2)
    """An unconfirmed booking that needed confirmation is released this long before its slot."""
    dates: Mapping[date, DateOverride] = field(default_factory=dict)

    def needs_confirmation(self, no_shows: int) -> bool:
        return self.no_show_threshold is not None and no_shows > self.no_show_threshold


def effective_rules(chain: Mapping[str, Any], branch: Mapping[str, Any]) -> BookingRules:
    """The rules a branch books by: its own where set, else the chain's, else the defaults."""

    def chosen(name: str) -> Any:
        value = branch.get(name)
        return chain.get(name) if value is None else value

    def minutes(name: str, default: timedelta) -> timedelta:
        value = chosen(name)
        return default if value is None else timedelta(minutes=value)

    defaults = BookingRules()
    visit_type_caps = {
        visit_type: cap for visit_type, name in VISIT_TYPE_CAPS.items() if (cap := chosen(name)) is not None
    }
    dates = {
        override.on: override
        for entry in [*(chain.get("dates") or []), *(branch.get("dates") or [])]
        for override in [_date_override(entry)]
    }
    return BookingRules(
        min_notice=minutes("min_notice_minutes", defaults.min_notice),
        max_days_ahead=chosen("max_days_ahead"),
        buffer_before=minutes("buffer_before_minutes", defaults.buffer_before),
        buffer_after=minutes("buffer_after_minutes", defaults.buffer_after),
        max_per_day=chosen("max_per_day"),
        max_per_service_per_day=MappingProxyType(
            {**(chain.get("max_per_service_per_day") or {}), **(branch.get("max_per_service_per_day") or {})}
        ),
        max_per_visit_type_per_day=MappingProxyType(visit_type_caps),
        hold=minutes("hold_minutes", defaults.hold),
        waitlist_hold=minutes("waitlist_hold_minutes", defaults.waitlist_hold),
        no_show_threshold=chosen("no_show_threshold"),
        confirmation_deadline=minutes("confirmation_deadline_minutes", defaults.confirmation_deadline),
        dates=MappingProxyType(dates),
    )


def _date_override(entry: Mapping[str, Any]) -> DateOverride:
    return DateOverride(
        on=date.fromisoformat(entry["on"]),
        closed=entry["closed"],
        as_weekday=entry.get("as_weekday"),
        hours=tuple(
            (time.fromisoformat(hours["opens_at"]), time.fromisoformat(hours["closes_at"]))
            for hours in entry.get("opening_hours") or []
        ),
        note=entry.get("note"),
    )
