"""What the routes answer, as pydantic models: the OpenAPI document shows each response as it is."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from pitlane_events import Actor
from pitlane_events.types import Bay, LineCategory, StaffRole, TimeSlot
from pitlane_events.workorder import BookingChannel, ProcessRef, ProcessStage
from pitlane_workorder.domain.workorder import WorkOrderState

# A local time of day, as the branch's clock shows it: no offset, so not JSON Schema's "time" (RFC 3339).
LocalTime = Annotated[
    time,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$",
            "description": "local time of day in the branch's time zone, HH:MM:SS",
        }
    ),
]


class OpeningHoursView(BaseModel):
    weekday: int = Field(ge=1, le=7, description="ISO weekday: 1 is Monday")
    opens_at: LocalTime
    closes_at: LocalTime


class BranchView(BaseModel):
    branch_id: str
    name: str
    address: str
    timezone: str = Field(description="IANA time zone; slots, opening hours and pages are in it")
    opening_hours: list[OpeningHoursView]
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
    places: int = Field(
        description="cars the slot takes: the bays, or the technicians on shift for all of it if fewer"
    )
    booked: int = Field(description="live bookings in the slot")
    held: int = Field(description="places held by customers completing the form or offered from the waitlist")
    remaining: int = Field(description="places still free, after bookings, holds and buffers around the slot")
    bookable: bool = Field(
        description="a booking (of the visit type and service asked, if given) fits now under the booking rules"
    )


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


class BranchCreated(BaseModel):
    branch_id: str


class StaffAdded(BaseModel):
    staff_id: str


class PublicBooking(BaseModel):
    """What an online booking answers: no customer id, which would tell whoever typed a phone number whose it
    is (ADR 13)."""

    appointment_id: str
    slot: TimeSlot


class Booked(PublicBooking):
    customer_id: str = Field(description="the customer the booking resolved to, or the new id it introduced")


class AttributionToken(BaseModel):
    attribution: str = Field(description="send it as `attribution` with an online booking made from the link")
    kind: Literal["campaign", "reminder"]
    source_id: str
    expires_at: datetime


class AppointmentView(BaseModel):
    appointment_id: str
    branch_id: str
    slot_start: datetime
    slot_end: datetime
    status: Literal["booked", "cancelled", "no_show", "arrived"]
    channel: BookingChannel
    campaign_id: str | None
    customer_id: str
    customer_name: str | None = Field(description="null for analysts, and once the customer is erased")
    phone: str | None = Field(
        description="E.164; masked for roles that do not see full numbers; null for analysts and once erased"
    )
    plate: str
    service_requested: str
    work_order_id: str | None
    version: int
    visit_type: Literal["waiting", "drop_off"] | None = Field(
        description="null on bookings from before it was asked"
    )
    confirmation_required: bool = Field(
        description="booked online by a customer over the chain's no-show threshold: released unless confirmed"
    )
    confirmed_at: datetime | None


class StoredMedia(BaseModel):
    content_hash: str
    media_type: str
    size_bytes: int


class CustomerLinkAnswer(BaseModel):
    url: str = Field(description="the link to send the customer")
    path: str
    expires_at: datetime


class StageNow(BaseModel):
    """A stage an order is in, on the board: since when, and its deadline under the order's definition."""

    stage: ProcessStage
    occurrence: int = Field(description="the how-manieth passage through the stage")
    add_on_id: str | None = Field(description="the add-on awaiting the customer, for add_on_approval")
    entered_at: datetime
    seconds_in_stage: float
    due_at: datetime | None = Field(description="null when the definition sets the stage no time limit")
    overdue: bool
    responsible_role: StaffRole


class StagePassageView(BaseModel):
    stage: ProcessStage
    occurrence: int
    add_on_id: str | None
    entered_at: datetime
    completed_at: datetime | None = Field(description="null while the order is in the stage")
    due_at: datetime | None
    responsible_role: StaffRole


class BoardCard(BaseModel):
    work_order_id: str
    plate: str
    customer_id: str
    customer_name: str | None = Field(description="null for analysts, and once the customer is erased")
    advisor_id: str
    technician_ids: list[str]
    pending_add_ons: int
    opened_at: datetime
    in_state_since: datetime
    seconds_in_state: float
    seconds_in_states: dict[str, float] = Field(description="per state, the current one up to now")
    stages: list[StageNow] = Field(
        description="the stages the order is in now, with time in stage and deadline"
    )
    version: int


class Board(BaseModel):
    branch_id: str
    as_of: datetime
    columns: dict[str, list[BoardCard]] = Field(description="open orders per state, oldest first")


class AddOnView(BaseModel):
    add_on_id: str
    item: str
    category: LineCategory
    price_fen: int
    reason: str
    photo_hashes: list[str]
    estimate_revision: int
    decision: Literal["approved", "declined"] | None


class HistoryEntry(BaseModel):
    version: int
    event_type: str
    occurred_at: datetime
    actor: Actor
    data: dict[str, Any] = Field(description="the event's data, as its schema in the event catalog says")


class WorkOrderDetail(BaseModel):
    work_order_id: str
    branch_id: str
    state: WorkOrderState
    version: int
    customer_id: str
    vehicle_id: str
    plate: str
    mileage_km: int
    complaint: str
    advisor_id: str
    technician_ids: list[str]
    estimate_revision: int
    add_ons: list[AddOnView]
    seconds_in_states: dict[str, float]
    process: ProcessRef = Field(description="the process definition version the order runs on")
    stages: list[StagePassageView] = Field(description="every stage passed or in progress, in order")
    history: list[HistoryEntry] = Field(description="every event of the order, in order: the audit trail")
