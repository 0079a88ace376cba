"""The commands the service accepts, as validated input: each is one intention (`SettleWorkOrder`), and a field
that breaks its schema is a 422 naming it before any handler runs."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from pitlane_events.identifiers import MobileInput, PlateInput
from pitlane_events.types import (
    Bay,
    Code,
    ContentHash,
    Discount,
    Fen,
    Id,
    InspectionItem,
    Kilometres,
    LineCategory,
    LineItem,
    NonBlank,
    OpeningHours,
    PaymentMethod,
    PositiveFen,
    StaffRole,
)
from pitlane_events.workorder import TimeZoneName

Name = Annotated[str, Field(min_length=1, max_length=200)]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpenBranch(Command):
    branch_id: Id
    name: Name
    address: NonBlank
    timezone: TimeZoneName = "Asia/Shanghai"
    opening_hours: list[OpeningHours] = Field(
        default_factory=lambda: [
            OpeningHours(weekday=d, opens_at=time(9), closes_at=time(18)) for d in range(1, 8)
        ]
    )
    bays: Annotated[list[Bay], Field(min_length=1)]
    slot_minutes: Annotated[int, Field(ge=15, le=480)] = 60


class AddStaffMember(Command):
    staff_id: Id
    display_name: Name
    role: StaffRole


class BookAppointment(Command):
    slot_start: AwareDatetime
    customer_name: Name
    phone: MobileInput
    plate: PlateInput
    service_requested: NonBlank
    customer_id: Id | None = None
    vehicle_id: Id | None = None
    campaign_id: Id | None = None
    reminder_id: Id | None = None


class BookByStaff(BookAppointment):
    channel: Literal["phone", "walk_in", "staff"] = "phone"


class RescheduleAppointment(Command):
    slot_start: AwareDatetime
    reason: NonBlank | None = None


class CancelAppointment(Command):
    reason: NonBlank
    cancelled_by: Literal["customer", "branch"] = "branch"


class CheckIn(Command):
    """Opens a work order; on arrival, the appointment's customer, plate and vehicle are the defaults."""

    vehicle_id: Id | None = None
    customer_id: Id | None = None
    customer_name: Name | None = None
    plate: PlateInput | None = None
    mileage_km: Kilometres
    complaint: NonBlank
    inspection: list[InspectionItem] = Field(default_factory=list)
    photo_hashes: list[ContentHash] = Field(default_factory=list)
    advisor_id: Id | None = None


class AssignTechnician(Command):
    technician_id: Id
    bay_id: Id | None = None


class RecordProgress(Command):
    text: NonBlank
    attachments: list[ContentHash] = Field(default_factory=list)


class ProposeAddOn(Command):
    item: NonBlank
    item_code: Code | None = None
    category: LineCategory
    price_fen: Fen
    reason: NonBlank
    photo_hashes: list[ContentHash] = Field(default_factory=list)


class RecordDecision(Command):
    """An advisor records the customer's decision given on the phone or at the counter."""

    decision: Literal["approved", "declined"]
    method: Literal["phone_call", "in_person"]
    estimate_revision_seen: Annotated[int, Field(ge=1)]
    reason: NonBlank | None = None


class RecordQualityCheck(Command):
    passed: bool
    note: NonBlank | None = None
    reasons: list[NonBlank] = Field(default_factory=list)

    @model_validator(mode="after")
    def _failure_has_reasons(self) -> RecordQualityCheck:
        if not self.passed and not self.reasons:
            raise ValueError("a failed quality check needs at least one reason")
        return self


class PaymentReceived(Command):
    method: PaymentMethod
    amount_fen: PositiveFen
    paid_at: AwareDatetime | None = None
    reference: Code | None = None


class SettleWorkOrder(Command):
    line_items: list[LineItem]
    discounts: list[Discount] = Field(default_factory=list)
    coupon_code: Code | None = None
    campaign_id: Id | None = None
    payments: list[PaymentReceived] = Field(default_factory=list)
    total_fen: Fen


class VoidWorkOrder(Command):
    reason: NonBlank
    refunded_fen: Fen = 0
