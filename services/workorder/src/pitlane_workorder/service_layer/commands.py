"""The commands the service accepts, as validated input: each is one intention (`SettleWorkOrder`), and a field
that breaks its schema is a 422 naming it before any handler runs. Lists and texts are bounded
(service_layer/limits.py), so no command is too big for the events it becomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from pitlane_events.identifiers import MobileInput, PlateInput, VinInput
from pitlane_events.inputs import NOT_A_BOOLEAN, BranchIdInput, DatetimeInput
from pitlane_events.types import (
    Bay,
    Code,
    ContentHash,
    Discount,
    Id,
    InspectionItem,
    Kilometres,
    LineCategory,
    LineItem,
    OpeningHours,
    PaymentMethod,
    StaffRole,
)
from pitlane_events.workorder import TimeZoneName
from pitlane_workorder.domain.process import MAX_TIME_LIMIT_MINUTES
from pitlane_workorder.service_layer import limits


def _text(max_length: int) -> StringConstraints:
    # Called at import only, before mutmut can switch a mutant of it on: its mutants could never run.
    return StringConstraints(min_length=1, max_length=max_length)  # pragma: no mutate


Name = Annotated[str, _text(limits.NAME_LENGTH)]
Text = Annotated[str, _text(limits.TEXT_LENGTH)]
ItemCode = Annotated[str, _text(limits.CODE_LENGTH)]
ItemName = Annotated[str, _text(limits.ITEM_NAME_LENGTH)]
Fen = Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=limits.MAX_FEN)]
PositiveFen = Annotated[int, NOT_A_BOOLEAN, Field(gt=0, le=limits.MAX_FEN)]
Photos = Annotated[list[ContentHash], Field(max_length=limits.MAX_PHOTOS)]


# The shared value types, with their texts and lists bounded for input. The handlers pass on the plain value
# types (`plain`), so events and aggregates never hold these subclasses.


class BayInput(Bay):
    name: Annotated[str, _text(limits.BAY_NAME_LENGTH)]


class InspectionPoint(InspectionItem):
    item: ItemName
    note: Annotated[str, _text(limits.INSPECTION_NOTE_LENGTH)] | None = None
    photo_hashes: Annotated[
        tuple[ContentHash, ...], Field(max_length=limits.MAX_PHOTOS_PER_INSPECTION_POINT)
    ] = ()


class LineInput(LineItem):
    item_code: ItemCode
    name: ItemName
    unit_price_fen: Fen
    cost_fen: Fen | None = None
    line_total_fen: Fen


class DiscountInput(Discount):
    amount_fen: PositiveFen
    description: Annotated[str, _text(limits.DISCOUNT_DESCRIPTION_LENGTH)] | None = None


Value = TypeVar("Value", bound=BaseModel)


def plain(value_type: type[Value], values: Sequence[Value]) -> tuple[Value, ...]:
    """`values` (input subclasses of `value_type`) as `value_type` itself, as events carry it."""
    return tuple(value_type.model_validate(value.model_dump()) for value in values)


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpenBranch(Command):
    branch_id: BranchIdInput
    name: Name
    address: Annotated[str, _text(limits.ADDRESS_LENGTH)]
    timezone: TimeZoneName = "Asia/Shanghai"
    opening_hours: Annotated[list[OpeningHours], Field(max_length=limits.MAX_OPENING_PERIODS)] = Field(
        default_factory=lambda: [
            OpeningHours(weekday=d, opens_at=time(9), closes_at=time(18)) for d in range(1, 8)
        ]
    )
    bays: Annotated[list[BayInput], Field(min_length=1, max_length=limits.MAX_BAYS)]
    slot_minutes: Annotated[int, NOT_A_BOOLEAN, Field(ge=15, le=480)] = 60


class AddStaffMember(Command):
    staff_id: Id
    display_name: Name
    role: StaffRole


class BookAppointment(Command):
    """What every booking says: when, who (as they give themselves), which car and what for."""

    slot_start: DatetimeInput
    customer_name: Name
    phone: MobileInput
    plate: PlateInput
    service_requested: Text
    # Waiting customers and drop-offs have caps of their own (booking rules, ADR 25).
    visit_type: Literal["waiting", "drop_off"] = "waiting"
    # A car the chain does not know yet gets its id at booking when its make and model are given.
    brand: Name | None = None
    model: Name | None = None
    vin: VinInput | None = None


# base64url payload and signature (pitlane_platform/security/links.py); bounded so a pasted junk string is a 422.
SignedToken = Annotated[
    str, StringConstraints(min_length=3, max_length=512, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
]
# The same, carrying a dispatch suggestion's ranking (at most domain.dispatch.MAX_SUGGESTED technicians).
SuggestionToken = Annotated[
    str, StringConstraints(min_length=3, max_length=4096, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
]


class BookOnline(BookAppointment):
    """A booking by the customer, without a token. Anyone can send it, so it names no customer or vehicle id
    (the phone and plate resolve them) and says which campaign or reminder it came from only through the
    signed token of that campaign's or reminder's link."""

    attribution: SignedToken | None = None
    # The hold the form took on the slot (POST /v1/public/branches/{b}/holds): not counted against it.
    hold_id: Id | None = None


class BookByStaff(BookAppointment):
    channel: Literal["phone", "walk_in", "staff"] = "phone"
    customer_id: Id | None = None
    vehicle_id: Id | None = None
    campaign_id: Id | None = None
    reminder_id: Id | None = None


class MintAttribution(Command):
    kind: Literal["campaign", "reminder"]
    source_id: Id
    valid_days: Annotated[int, Field(ge=1, le=366)] = 90


class RescheduleAppointment(Command):
    slot_start: DatetimeInput
    reason: Text | None = None


class CancelAppointment(Command):
    reason: Text
    cancelled_by: Literal["customer", "branch"] = "branch"


class CheckIn(Command):
    """Opens a work order; on arrival, the appointment's customer, plate and vehicle are the defaults."""

    vehicle_id: Id | None = None
    customer_id: Id | None = None
    customer_name: Name | None = None
    # Who is coming: the phone finds the customer the chain knows; with a name, a new one is introduced.
    phone: MobileInput | None = None
    plate: PlateInput | None = None
    # A car the chain does not know yet needs its make and model.
    brand: Name | None = None
    model: Name | None = None
    vin: VinInput | None = None
    mileage_km: Annotated[Kilometres, NOT_A_BOOLEAN]
    # A reading below the vehicle's last known one is refused unless the advisor says why it is right.
    mileage_correction: Text | None = None
    complaint: Text
    inspection: Annotated[list[InspectionPoint], Field(max_length=limits.MAX_INSPECTION_POINTS)] = Field(
        default_factory=list
    )
    photo_hashes: Photos = Field(default_factory=list)
    advisor_id: Id | None = None
    # The kinds of work expected, for dispatch suggestions by skill.
    work_categories: Annotated[list[LineCategory], Field(max_length=len(LineCategory))] = Field(
        default_factory=list
    )


class AssignTechnician(Command):
    technician_id: Id
    bay_id: Id | None = None
    # The dispatch suggestion the advisor was shown (GET …/dispatch-suggestions), recorded with the choice.
    suggestion_token: SuggestionToken | None = None


class RecordProgress(Command):
    text: Text
    attachments: Photos = Field(default_factory=list)
    # The repair is finished: the quality check's time starts.
    work_done: bool = False


class ProposeAddOn(Command):
    item: ItemName
    item_code: ItemCode | None = None
    category: LineCategory
    price_fen: Fen
    reason: Text
    photo_hashes: Photos = Field(default_factory=list)


class RecordDecision(Command):
    """An advisor records the customer's decision given on the phone or at the counter."""

    decision: Literal["approved", "declined"]
    method: Literal["phone_call", "in_person"]
    estimate_revision_seen: Annotated[int, NOT_A_BOOLEAN, Field(ge=1, le=limits.MAX_REVISION)]
    reason: Text | None = None


class RecordQualityCheck(Command):
    passed: bool
    note: Text | None = None
    reasons: Annotated[
        list[Annotated[str, _text(limits.QUALITY_CHECK_REASON_LENGTH)]],
        Field(max_length=limits.MAX_QUALITY_CHECK_REASONS),
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _failure_has_reasons(self) -> RecordQualityCheck:
        if not self.passed and not self.reasons:
            raise ValueError("a failed quality check needs at least one reason")
        return self


class PaymentReceived(Command):
    method: PaymentMethod
    amount_fen: PositiveFen
    paid_at: DatetimeInput | None = None
    reference: Code | None = None


class SettleWorkOrder(Command):
    line_items: Annotated[list[LineInput], Field(max_length=limits.MAX_LINE_ITEMS)]
    discounts: Annotated[list[DiscountInput], Field(max_length=limits.MAX_DISCOUNTS)] = Field(
        default_factory=list
    )
    coupon_code: Code | None = None
    campaign_id: Id | None = None
    payments: Annotated[list[PaymentReceived], Field(max_length=limits.MAX_PAYMENTS)] = Field(
        default_factory=list
    )
    total_fen: Fen


class VoidWorkOrder(Command):
    reason: Text
    refunded_fen: Fen = 0


# The process engine ---------------------------------------------------------------------------------------


class StageSettings(Command):
    """One stage of a process definition; what is left out takes the built-in value."""

    mandatory: bool | None = Field(
        default=None, description="may the stage be skipped? Only the inspection may; QC never"
    )
    photos_required: bool = Field(
        default=False, description="check-in, inspection points, each progress step, each add-on"
    )
    time_limit_minutes: Annotated[int, NOT_A_BOOLEAN, Field(ge=1, le=MAX_TIME_LIMIT_MINUTES)] | None = Field(
        default=None, description="from the stage's start; check-in and inspection take none"
    )
    responsible_role: StaffRole | None = None


class ProcessStages(Command):
    check_in: StageSettings = StageSettings()
    inspection: StageSettings = StageSettings()
    dispatch: StageSettings = StageSettings()
    repair: StageSettings = StageSettings()
    add_on_approval: StageSettings = StageSettings()
    quality_check: StageSettings = StageSettings()
    settlement: StageSettings = StageSettings()
    hand_over: StageSettings = StageSettings()


class DefineProcess(Command):
    """A chain's or a branch's process definition: published as a new version unless it is the newest's."""

    stages: ProcessStages = ProcessStages()


class SetSkills(Command):
    skills: Annotated[list[LineCategory], Field(max_length=len(LineCategory))]
