"""The booking calendar's commands (ADR 25), as validated input: a day's shifts, leave, the booking rules of
the chain and of a branch, a hold on a slot, joining a slot's waitlist. Every number is bounded and every
list limited, so bad input is a 422 naming the field and nothing reaches the database that it cannot store.
Rules within one entry (a break inside its shift) are checked here, naming the entry; rules across
entries or against stored state (one shift per staff member, one entry per date, staff of the branch) by
the handlers, naming the field."""

from __future__ import annotations

from datetime import time
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from pitlane_events.inputs import NOT_A_BOOLEAN, DateInput, DatetimeInput
from pitlane_events.types import Id
from pitlane_workorder.service_layer import limits
from pitlane_workorder.service_layer.commands import BookAppointment, Command, Text

Minutes = Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=limits.MAX_RULE_MINUTES)]
Cap = Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=limits.MAX_DAILY_CAP)]
VisitTypeInput = Literal["waiting", "drop_off"]
ServiceName = Annotated[str, StringConstraints(min_length=1, max_length=limits.ITEM_NAME_LENGTH)]


def _field_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("calendar_rule", message)


class Period(Command):
    """A part of a local day, [starts_at, ends_at)."""

    starts_at: time
    ends_at: time

    @model_validator(mode="after")
    def _ends_after_start(self) -> Period:
        if self.ends_at <= self.starts_at:
            raise _field_error("ends_at must be after starts_at")
        return self


class ShiftInput(Period):
    """A staff member's shift on the day, with its breaks (inside it, not overlapping)."""

    staff_id: Id
    breaks: Annotated[list[Period], Field(max_length=limits.MAX_BREAKS)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _breaks_inside_and_apart(self) -> ShiftInput:
        ordered = sorted(self.breaks, key=lambda pause: pause.starts_at)
        for pause in ordered:
            if pause.starts_at < self.starts_at or pause.ends_at > self.ends_at:
                raise _field_error("every break lies inside the shift")
        for earlier, later in pairwise(ordered):
            if later.starts_at < earlier.ends_at:
                raise _field_error("breaks do not overlap")
        return self


class DayShifts(Command):
    """Every shift of a local day at the branch; staff not listed are off that day."""

    shifts: Annotated[list[ShiftInput], Field(max_length=limits.MAX_SHIFTS_PER_DAY)]


class RecordLeave(Command):
    starts_at: DatetimeInput
    ends_at: DatetimeInput
    kind: Literal["annual", "sick", "personal", "training", "other"]

    @model_validator(mode="after")
    def _ends_after_start(self) -> RecordLeave:
        if self.ends_at <= self.starts_at:
            raise _field_error("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > limits.MAX_LEAVE:
            raise _field_error(f"one period of leave lasts at most {limits.MAX_LEAVE.days} days")
        return self


class OpeningPeriod(Command):
    opens_at: time
    closes_at: time

    @model_validator(mode="after")
    def _closes_after_opening(self) -> OpeningPeriod:
        if self.closes_at <= self.opens_at:
            raise _field_error("closes_at must be after opens_at")
        return self


class DateOverrideInput(Command):
    """A date that is not like its weekday: `closed` (a holiday), or open (调休, a make-up working day) with
    the hours of weekday `as_weekday` or `opening_hours` of its own."""

    on: DateInput
    closed: bool
    as_weekday: Annotated[int, NOT_A_BOOLEAN, Field(ge=1, le=7)] | None = None
    opening_hours: Annotated[list[OpeningPeriod], Field(min_length=1, max_length=3)] | None = None
    note: Annotated[str, StringConstraints(min_length=1, max_length=limits.NAME_LENGTH)] | None = None

    @model_validator(mode="after")
    def _open_days_say_their_hours(self) -> DateOverrideInput:
        says_hours = self.as_weekday is not None or self.opening_hours is not None
        if self.closed and says_hours:
            raise _field_error("a closed date has no hours")
        if not self.closed and not says_hours:
            raise _field_error("an open date needs as_weekday or opening_hours")
        if self.as_weekday is not None and self.opening_hours is not None:
            raise _field_error("as_weekday or opening_hours, not both")
        return self


class BookingRulesInput(Command):
    """The rules a scope (the chain, or one branch) sets; a field left out (or null) is inherited: a branch's
    from the chain, the chain's from the defaults (docs/services/workorder.md)."""

    min_notice_minutes: Minutes | None = None
    max_days_ahead: Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=limits.MAX_DAYS_AHEAD)] | None = None
    buffer_before_minutes: Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=limits.MAX_BUFFER_MINUTES)] | None = (
        None
    )
    buffer_after_minutes: Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=limits.MAX_BUFFER_MINUTES)] | None = (
        None
    )
    max_per_day: Cap | None = None
    max_per_service_per_day: (
        Annotated[dict[ServiceName, Cap], Field(max_length=limits.MAX_SERVICE_CAPS)] | None
    ) = None
    max_waiting_per_day: Cap | None = None
    max_drop_off_per_day: Cap | None = None
    hold_minutes: Annotated[int, NOT_A_BOOLEAN, Field(ge=1, le=60)] | None = None
    waitlist_hold_minutes: Annotated[int, NOT_A_BOOLEAN, Field(ge=1, le=limits.MAX_RULE_MINUTES)] | None = (
        None
    )
    no_show_threshold: Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=100)] | None = None
    confirmation_deadline_minutes: Minutes | None = None
    dates: Annotated[list[DateOverrideInput], Field(max_length=limits.MAX_CALENDAR_DATES)] | None = None


class HoldSlot(Command):
    """Hold a slot while the customer completes the online form; the booking sends the hold's id."""

    slot_start: DatetimeInput
    service_requested: Text
    visit_type: VisitTypeInput = "waiting"


class JoinWaitlist(BookAppointment):
    """Wait for a place in a full slot: offered to the first in line when one frees, held for a while."""
