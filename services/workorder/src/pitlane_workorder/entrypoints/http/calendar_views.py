"""What the booking calendar's routes answer (ADR 25): rosters, leave, booking rules, holds and waitlists."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from pitlane_events.types import TimeSlot
from pitlane_workorder.entrypoints.http.responses import LocalTime
from pitlane_workorder.service_layer.calendar_commands import BookingRulesInput


class BreakView(BaseModel):
    starts_at: LocalTime
    ends_at: LocalTime


class ShiftView(BaseModel):
    staff_id: str
    day: date = Field(description="the branch's local day")
    starts_at: LocalTime
    ends_at: LocalTime
    breaks: list[BreakView]


class LeaveView(BaseModel):
    leave_id: str
    staff_id: str
    starts_at: datetime
    ends_at: datetime
    kind: str


class RosterView(BaseModel):
    branch_id: str
    first: date
    last: date
    plans_by_shifts: bool = Field(
        description="false until the branch enters its first shift: until then capacity counts bays alone"
    )
    shifts: list[ShiftView]
    leave: list[LeaveView] = Field(description="leave overlapping the days")


class LeaveRecorded(BaseModel):
    leave_id: str


class DateOverrideView(BaseModel):
    on: date
    closed: bool
    as_weekday: int | None
    opening_hours: list[tuple[LocalTime, LocalTime]] = Field(description="[opens_at, closes_at] periods")
    note: str | None


class EffectiveRules(BaseModel):
    """The rules a branch books by: its own, else the chain's, else the defaults."""

    min_notice_minutes: int
    max_days_ahead: int | None
    buffer_before_minutes: int
    buffer_after_minutes: int
    max_per_day: int | None
    max_per_service_per_day: dict[str, int]
    max_waiting_per_day: int | None
    max_drop_off_per_day: int | None
    hold_minutes: int
    waitlist_hold_minutes: int
    no_show_threshold: int | None
    confirmation_deadline_minutes: int
    dates: list[DateOverrideView]


class BranchRulesView(BaseModel):
    branch_id: str
    chain: BookingRulesInput = Field(description="what the chain sets for every branch")
    branch: BookingRulesInput = Field(description="what this branch overrides")
    effective: EffectiveRules


class HoldAnswer(BaseModel):
    hold_id: str = Field(description="send it as `hold_id` with the booking; keep it secret")
    slot: TimeSlot
    expires_at: datetime


class WaitlistJoined(BaseModel):
    """What joining a waitlist answers: no customer id (ADR 13), the entry and how many wait before."""

    waitlist_entry_id: str
    ahead: int = Field(description="customers waiting for the slot before this one")


class WaitlistEntryView(BaseModel):
    waitlist_entry_id: str
    position: int
    slot_start: datetime
    slot_end: datetime
    status: Literal["waiting", "offered", "booked", "lapsed"]
    customer_id: str
    customer_name: str | None = Field(description="null for analysts, and once the customer is erased")
    phone: str | None = Field(description="masked for roles that do not see full numbers; null for analysts")
    plate: str
    service_requested: str
    visit_type: Literal["waiting", "drop_off"]
    joined_at: datetime
    offer_expires_at: datetime | None = Field(description="while a place is offered: until when it is held")
    appointment_id: str | None = Field(description="the booking made from the offer")
