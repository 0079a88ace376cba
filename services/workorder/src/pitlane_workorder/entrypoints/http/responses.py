"""What the routes answer, as pydantic models: the OpenAPI document shows each response as it is."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from pitlane_events.types import Bay, OpeningHours, StaffRole
from pitlane_workorder.domain.workorder import WorkOrderState


class BranchView(BaseModel):
    branch_id: str
    name: str
    address: str
    timezone: str = Field(description="IANA time zone; slots, opening hours and pages are in it")
    opening_hours: list[OpeningHours]
    bays: list[Bay]
    slot_minutes: int = Field(description="length of a booking slot; slots start at opening time + n × this")
    opened_at: datetime


class StaffMemberView(BaseModel):
    branch_id: str
    staff_id: str
    display_name: str
    role: StaffRole


class SlotView(BaseModel):
    start: datetime
    end: datetime
    booked: int = Field(description="live bookings in the slot")
    remaining: int = Field(description="bays still free in the slot")
    bookable: bool = Field(description="not begun yet and a bay is free")


class DaySlots(BaseModel):
    branch_id: str
    on: date = Field(description="the branch's local day")
    timezone: str
    slot_minutes: int
    bays: int
    slots: list[SlotView]


class WorkOrderAnswer(BaseModel):
    """What every command on a work order answers; the ETag header carries `version` for If-Match."""

    work_order_id: str
    state: WorkOrderState
    version: int


class AddOnProposalAnswer(WorkOrderAnswer):
    add_on_id: str
    estimate_revision: int = Field(description="send it back as estimate_revision_seen with the decision")


class DecisionAnswer(WorkOrderAnswer):
    add_on_id: str
    decision: Literal["approved", "declined"]
    recorded: bool = Field(description="false when the same decision was already on record")
