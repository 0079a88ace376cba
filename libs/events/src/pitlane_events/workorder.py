"""Events published by workorder: branches and staff, appointments, and work orders from check-in to payment.

Appointments and work orders belong to a branch: their envelopes carry its branch_id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from pitlane_events.model import DomainEvent, event
from pitlane_events.registry import upcaster
from pitlane_events.types import (
    AddOnSummary,
    Attachment,
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
    Payment,
    Phone,
    Plate,
    StaffRole,
    TimeSlot,
    ValueObject,
    Vin,
)

TimeZoneName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")]
EstimateRevision = Annotated[int, Field(ge=1)]
BranchField = Literal["branch_name", "address", "timezone", "opening_hours", "bays"]


class BookingChannel(StrEnum):
    """Where an appointment was booked."""

    ONLINE = "online"
    PHONE = "phone"
    WALK_IN = "walk_in"
    STAFF = "staff"


class VisitType(StrEnum):
    """Whether the customer waits at the branch while the car is worked on, or leaves it there."""

    WAITING = "waiting"
    DROP_OFF = "drop_off"


class DecidedBy(StrEnum):
    """Who recorded a decision on an add-on: the customer, or an advisor on the customer's word."""

    CUSTOMER = "customer"
    ADVISOR = "advisor"


class DecisionMethod(StrEnum):
    """How the customer's decision on an add-on reached the branch."""

    SIGNED_LINK = "signed_link"
    PHONE_CALL = "phone_call"
    IN_PERSON = "in_person"


class ProcessStage(StrEnum):
    """A stage of a chain's standard procedure (SOP) that a work order passes."""

    CHECK_IN = "check_in"
    INSPECTION = "inspection"
    DISPATCH = "dispatch"
    REPAIR = "repair"
    ADD_ON_APPROVAL = "add_on_approval"
    QUALITY_CHECK = "quality_check"
    SETTLEMENT = "settlement"
    HAND_OVER = "hand_over"


class ProcessScope(StrEnum):
    """Whose process definition a work order runs on."""

    BUILT_IN = "built_in"
    """The stages every order passed before chains defined their own: nothing required, no time limits."""
    CHAIN = "chain"
    """The chain's definition."""
    BRANCH = "branch"
    """The order's branch's own definition, which replaces the chain's there."""


class ProcessRef(ValueObject):
    """A version of a process definition; a version never changes once published."""

    scope: ProcessScope
    """The chain's, the branch's (the event's branch) or the built-in definition."""
    version: Annotated[int, Field(ge=0)]
    """The version within its scope, from 1; the built-in definition is version 0."""


BUILT_IN_PROCESS = ProcessRef(scope=ProcessScope.BUILT_IN, version=0)


class StageRecord(ValueObject):
    """One passage of a work order through a stage, with its time limit under the order's definition."""

    stage: ProcessStage
    """The stage."""
    occurrence: Annotated[int, Field(ge=1)]
    """The how-manieth passage through this stage (a failed QC sends the order through repair again)."""
    add_on_id: Id | None = None
    """The add-on awaiting the customer, for add_on_approval."""
    entered_at: AwareDatetime
    """When the stage began."""
    completed_at: AwareDatetime
    """When it was done."""
    due_at: AwareDatetime | None = None
    """Its deadline (entered_at plus the time limit); null when the definition sets no limit."""

    @model_validator(mode="after")
    def _completed_after_entered(self) -> StageRecord:
        if self.completed_at < self.entered_at:
            raise ValueError("completed_at must not be before entered_at")
        return self


class SuggestedTechnician(ValueObject):
    """One technician as a dispatch suggestion ranked them."""

    technician_id: Id
    """The technician."""
    skills_matched: Annotated[int, Field(ge=0)]
    """How many of the kinds of work the order needs the technician can do."""
    open_orders: Annotated[int, Field(ge=0)]
    """Work orders the technician was working on (dispatched, in progress, awaiting approval)."""
    minutes_left_on_shift: Annotated[int, Field(ge=0)] | None = None
    """Minutes until the technician's shift ends; null when no shift is known."""


class DispatchSuggestion(ValueObject):
    """The ranking the advisor was shown before choosing whom to dispatch."""

    suggested_at: AwareDatetime
    """When the ranking was made."""
    work_needed: tuple[LineCategory, ...] = ()
    """The kinds of work the order needed, as the ranking matched them."""
    ranking: tuple[SuggestedTechnician, ...]
    """Best first."""


@event("workorder.BranchOpened", 1)
class BranchOpened(DomainEvent):
    """A branch (门店) joined the chain and takes bookings."""

    branch_id: Id
    """The branch's id."""
    branch_name: NonBlank
    """Name, e.g. 浦东张江店."""
    address: NonBlank
    """Street address."""
    timezone: TimeZoneName
    """IANA time zone, e.g. Asia/Shanghai."""
    opening_hours: tuple[OpeningHours, ...]
    """Opening hours per weekday; a missing weekday is closed."""
    bays: Annotated[tuple[Bay, ...], Field(min_length=1)]
    """Workshop bays; booking capacity follows from them."""


@event("workorder.BranchUpdated", 1)
class BranchUpdated(DomainEvent):
    """Some of a branch's details changed."""

    branch_id: Id
    """The branch's id."""
    changed_fields: Annotated[tuple[BranchField, ...], Field(min_length=1)]
    """Which fields changed."""
    branch_name: NonBlank | None = None
    """New name, if changed."""
    address: NonBlank | None = None
    """New address, if changed."""
    timezone: TimeZoneName | None = None
    """New time zone, if changed."""
    opening_hours: tuple[OpeningHours, ...] | None = None
    """The complete new opening hours, if changed."""
    bays: tuple[Bay, ...] | None = None
    """The complete new set of bays, if changed."""


@event("workorder.StaffMemberAdded", 1)
class StaffMemberAdded(DomainEvent):
    """A staff member joined a branch."""

    staff_id: Id
    """The staff member's user id."""
    display_name: NonBlank
    """Name, as shown on leaderboards and to customers."""
    role: StaffRole
    """Advisor, technician or manager."""


@event("workorder.CustomerIntroduced", 1)
class CustomerIntroduced(DomainEvent):
    """workorder met a customer it did not know (a first online booking, a walk-in) and gave them an id;
    customer-profile adopts the id by registering the customer under it, or merges it into the customer
    who already has the phone (ADR 11). Personal data: published for customer-profile only."""

    customer_id: Id
    """The id workorder gave the customer; bookings and work orders carry it."""
    full_name: NonBlank
    """The name the customer gave."""
    phone: Phone
    """The normalised mobile number the customer gave."""
    met_through: BookingChannel
    """How workorder met them (a booking's channel, or walk_in at check-in): customer-profile's source."""


@event("workorder.VehicleIntroduced", 1)
class VehicleIntroduced(DomainEvent):
    """workorder met a vehicle it did not know (a new car at check-in, or booked with its make) and gave it
    an id; customer-profile adopts the id by registering the vehicle under it (ADR 11)."""

    vehicle_id: Id
    """The id workorder gave the vehicle."""
    owner_customer_id: Id
    """Whose car it is, as workorder knows it."""
    plate: Plate
    """The normalised plate."""
    brand: NonBlank
    """The make, e.g. 大众."""
    model: NonBlank
    """The model, e.g. 朗逸."""
    vin: Vin | None = None
    """The VIN, when the advisor read it."""


@event("workorder.AppointmentBooked", 1)
class AppointmentBooked(DomainEvent):
    """A customer booked a slot at a branch."""

    appointment_id: Id
    """The appointment's id."""
    channel: BookingChannel
    """Where it was booked."""
    campaign_id: Id | None = None
    """The campaign whose link it was booked through, if any; used for attribution."""
    customer_id: Id
    """Who booked."""
    vehicle_id: Id | None = None
    """The vehicle, if already known to the chain."""
    plate: Plate
    """The vehicle's normalised plate."""
    slot: TimeSlot
    """The booked slot."""
    service_requested: NonBlank
    """What the customer asked for, e.g. 小保养."""
    reminder_id: Id | None = None
    """The reminder the booking answers, if any; used for reminder effectiveness."""
    visit_type: VisitType | None = None
    """Whether the customer waits on site or drops the car off; null on bookings from before it was asked."""
    confirmation_required: bool = False
    """The customer missed more appointments than the chain allows: the booking stands once the customer
    (through the appointment's link) or the branch confirms it (AppointmentConfirmed)."""


@event("workorder.AppointmentConfirmed", 1)
class AppointmentConfirmed(DomainEvent):
    """The customer (through the appointment's link) or the branch (on the customer's word) confirmed that
    the customer is coming."""

    appointment_id: Id
    """The appointment's id."""
    customer_id: Id
    """Who booked."""
    slot: TimeSlot
    """The slot confirmed."""
    confirmed_by: Literal["customer", "branch"]
    """Who confirmed."""


@event("workorder.WaitlistSlotOffered", 1)
class WaitlistSlotOffered(DomainEvent):
    """A place freed in a full slot is offered to the customer first in its waitlist, held for them until
    `offer_expires_at`; the customer takes it through the offer's link, or it goes to the next in line.
    The aggregate is the waitlist entry."""

    waitlist_entry_id: Id
    """The waitlist entry the offer answers; the offer's link names it."""
    customer_id: Id
    """Who waits."""
    slot: TimeSlot
    """The slot offered."""
    service_requested: NonBlank
    """What the customer asked for."""
    offer_expires_at: AwareDatetime
    """Until when the place is held for the customer."""


@event("workorder.AppointmentRescheduled", 1)
class AppointmentRescheduled(DomainEvent):
    """An appointment moved to another slot."""

    appointment_id: Id
    """The appointment's id."""
    customer_id: Id
    """Who booked."""
    previous_slot: TimeSlot
    """The slot before."""
    slot: TimeSlot
    """The new slot."""
    reason: NonBlank | None = None
    """Why it moved."""


@event("workorder.AppointmentCancelled", 1)
class AppointmentCancelled(DomainEvent):
    """An appointment was cancelled before the customer arrived."""

    appointment_id: Id
    """The appointment's id."""
    customer_id: Id
    """Who booked."""
    cancelled_by: Literal["customer", "branch"]
    """Who cancelled."""
    reason: NonBlank
    """Why."""


@event("workorder.AppointmentNoShow", 1)
class AppointmentNoShow(DomainEvent):
    """The customer did not come for the booked slot."""

    appointment_id: Id
    """The appointment's id."""
    customer_id: Id
    """Who booked."""
    slot: TimeSlot
    """The slot that was missed."""


@event("workorder.AppointmentArrived", 1)
class AppointmentArrived(DomainEvent):
    """The customer arrived for the appointment and a work order was opened for it."""

    appointment_id: Id
    """The appointment's id."""
    customer_id: Id
    """Who booked."""
    work_order_id: Id
    """The work order opened on arrival."""
    arrived_at: AwareDatetime
    """When the vehicle was checked in."""


@event("workorder.WorkOrderOpened", 1)
class WorkOrderOpenedV1(DomainEvent):
    """A vehicle was checked in and a work order (工单) opened."""

    work_order_id: Id
    """The work order's id."""
    customer_id: Id
    """The customer."""
    vehicle_id: Id
    """The vehicle."""
    plate: Plate
    """The vehicle's normalised plate."""
    mileage_km: Kilometres
    """Odometer reading at check-in, in km."""
    complaint: NonBlank
    """What the customer reports or asks for, in their words."""
    inspection: tuple[InspectionItem, ...] = ()
    """The check-in inspection (环车检查)."""
    photo_hashes: tuple[ContentHash, ...] = ()
    """Check-in photos of the vehicle."""
    advisor_id: Id
    """The service advisor in charge."""
    appointment_id: Id | None = None
    """The appointment it came from; null for walk-ins."""
    mileage_correction: NonBlank | None = None
    """Why a reading below the vehicle's last known one is right (e.g. the odometer was replaced); null
    otherwise. Downstream, a corrected reading replaces the higher one."""


@event("workorder.WorkOrderOpened", 2)
class WorkOrderOpened(WorkOrderOpenedV1):
    """A vehicle was checked in and a work order (工单) opened, under a version of the process definition."""

    process: ProcessRef
    """The process definition version the order runs on, for the whole of its life."""
    work_categories: tuple[LineCategory, ...] = ()
    """The kinds of work the advisor expects, for dispatch by skill."""


@upcaster("workorder.WorkOrderOpened", 1)
def opened_before_process_definitions(data: dict[str, Any]) -> dict[str, Any]:
    """Orders opened before chains defined their process ran the built-in stages."""
    return {**data, "process": BUILT_IN_PROCESS.model_dump(mode="json"), "work_categories": []}


@event("workorder.TechnicianAssigned", 1)
class TechnicianAssigned(DomainEvent):
    """A technician was dispatched to a work order."""

    work_order_id: Id
    """The work order."""
    technician_id: Id
    """The technician."""
    bay_id: Id | None = None
    """The bay the vehicle goes to, if assigned."""
    suggestion: DispatchSuggestion | None = None
    """The ranking the advisor was shown before choosing, if one was asked for."""


@event("workorder.ProgressRecorded", 1)
class ProgressRecorded(DomainEvent):
    """Progress was posted on a work order; the customer sees it on the progress page."""

    work_order_id: Id
    """The work order."""
    recorded_by: Id
    """The staff member who posted it."""
    text: NonBlank
    """What was done or found."""
    attachments: tuple[Attachment, ...] = ()
    """Photos or videos."""
    work_done: bool = False
    """The technician reports the repair finished: the order waits for its quality check from now."""


@event("workorder.AddOnProposed", 1)
class AddOnProposed(DomainEvent):
    """Extra work was proposed to the customer, with evidence, in a new estimate revision."""

    work_order_id: Id
    """The work order."""
    add_on_id: Id
    """The add-on's id."""
    item: NonBlank
    """What is proposed, e.g. 更换前刹车片."""
    item_code: Code | None = None
    """Catalogue code, if the item is in the catalogue."""
    category: LineCategory
    """Kind of work."""
    price_fen: Fen
    """Quoted price, in fen."""
    reason: NonBlank
    """Why it is needed, e.g. 刹车片剩余2mm."""
    photo_hashes: tuple[ContentHash, ...] = ()
    """Photos shown to the customer as evidence."""
    estimate_revision: EstimateRevision
    """The estimate revision that includes the add-on."""
    proposed_by: Id
    """Staff member who proposed it."""


class _AddOnDecided(DomainEvent):
    """What the customer saw and how the decision on an add-on was recorded (the consent trail)."""

    work_order_id: Id
    """The work order."""
    add_on_id: Id
    """The add-on decided on."""
    item: NonBlank
    """What was proposed."""
    category: LineCategory
    """Kind of work."""
    price_fen: Fen
    """Quoted price, in fen."""
    estimate_revision_seen: EstimateRevision
    """The estimate revision the customer decided on."""
    photo_hashes_seen: tuple[ContentHash, ...] = ()
    """The evidence photos the customer was shown."""
    decided_by: DecidedBy
    """Who recorded the decision."""
    method: DecisionMethod
    """How the decision reached the branch."""
    decided_at: AwareDatetime
    """When the customer decided."""


@event("workorder.AddOnApproved", 1)
class AddOnApproved(_AddOnDecided):
    """The customer approved a proposed add-on."""


@event("workorder.AddOnDeclined", 1)
class AddOnDeclined(_AddOnDecided):
    """The customer declined a proposed add-on; reminder may follow it up later."""

    reason: NonBlank | None = None
    """Why, if the customer said."""


@event("workorder.QualityCheckPassed", 1)
class QualityCheckPassed(DomainEvent):
    """The finished work passed quality control."""

    work_order_id: Id
    """The work order."""
    inspector_id: Id
    """Who checked."""
    note: NonBlank | None = None
    """Remarks."""


@event("workorder.QualityCheckFailed", 1)
class QualityCheckFailed(DomainEvent):
    """The finished work failed quality control and goes back to the technician."""

    work_order_id: Id
    """The work order."""
    inspector_id: Id
    """Who checked."""
    reasons: Annotated[tuple[NonBlank, ...], Field(min_length=1)]
    """What failed."""


class _Bill(DomainEvent):
    """What a work order charged and how it was paid; totals are checked so readers can rely on them."""

    work_order_id: Id
    """The work order."""
    customer_id: Id
    """The customer billed."""
    line_items: tuple[LineItem, ...]
    """Everything charged."""
    discounts: tuple[Discount, ...] = ()
    """Order-level discounts."""
    coupon_code: Code | None = None
    """The coupon redeemed on the order, if any."""
    campaign_id: Id | None = None
    """The campaign the order is attributed to, if any (coupon or campaign booking)."""
    subtotal_fen: Fen
    """Sum of the line totals, in fen."""
    discount_fen: Fen
    """Sum of the discounts, in fen."""
    total_fen: Fen
    """What the customer owes: subtotal minus discounts, in fen."""
    paid_fen: Fen
    """Sum of the payments, in fen."""
    payments: tuple[Payment, ...] = ()
    """Payments received."""

    @model_validator(mode="after")
    def _totals_add_up(self) -> _Bill:
        if self.subtotal_fen != sum(line.line_total_fen for line in self.line_items):
            raise ValueError("subtotal_fen must equal the sum of line_total_fen")
        if self.discount_fen != sum(discount.amount_fen for discount in self.discounts):
            raise ValueError("discount_fen must equal the sum of the discounts")
        if self.total_fen != self.subtotal_fen - self.discount_fen:
            raise ValueError("total_fen must equal subtotal_fen - discount_fen")
        if self.paid_fen != sum(payment.amount_fen for payment in self.payments):
            raise ValueError("paid_fen must equal the sum of the payments")
        return self


@event("workorder.WorkOrderSettled", 1)
class WorkOrderSettled(_Bill):
    """The bill was finalised and paid at the counter (结算)."""

    settled_by: Id
    """Staff member who settled it."""


@event("workorder.WorkOrderCompleted", 1)
class WorkOrderCompleted(_Bill):
    """The vehicle was handed back: a visit. Carries everything consumers need, so nobody calls back."""

    vehicle_id: Id
    """The vehicle."""
    plate: Plate
    """The vehicle's normalised plate."""
    mileage_km: Kilometres
    """Odometer reading on the work order, in km."""
    branch_id: Id
    """The branch of the visit."""
    advisor_id: Id
    """The service advisor in charge."""
    technician_ids: tuple[Id, ...]
    """Technicians who worked on it."""
    appointment_id: Id | None = None
    """The appointment it came from; null for walk-ins."""
    add_ons: tuple[AddOnSummary, ...] = ()
    """Add-ons proposed during the visit and what the customer decided."""
    opened_at: AwareDatetime
    """When the vehicle was checked in."""
    completed_at: AwareDatetime
    """When the vehicle was handed back."""
    stages: tuple[StageRecord, ...] = ()
    """Every stage the order passed, with its deadline under the order's process definition (empty for
    orders completed before stages were recorded)."""

    @model_validator(mode="after")
    def _completed_after_opening(self) -> WorkOrderCompleted:
        if self.completed_at < self.opened_at:
            raise ValueError("completed_at must not be before opened_at")
        return self


@event("workorder.WorkOrderVoided", 1)
class WorkOrderVoided(DomainEvent):
    """A work order was voided by a manager; if it was completed, it no longer counts as a visit."""

    work_order_id: Id
    """The work order."""
    customer_id: Id
    """The customer."""
    reason: NonBlank
    """Why."""
    manager_id: Id
    """The manager who voided it."""
    refunded_fen: Fen = 0
    """Money given back, in fen."""


@event("workorder.WorkOrderStageOverdue", 1)
class WorkOrderStageOverdue(DomainEvent):
    """A stage of a work order ran past its time limit: published once per passage through the stage. The
    envelope's aggregate is that passage (an id derived from the order, the stage and the occurrence), not
    the order, whose version a deadline passing does not move."""

    work_order_id: Id
    """The work order."""
    stage: ProcessStage
    """The stage that is late."""
    occurrence: Annotated[int, Field(ge=1)]
    """The how-manieth passage through the stage."""
    add_on_id: Id | None = None
    """The add-on still unanswered, for add_on_approval."""
    entered_at: AwareDatetime
    """When the stage began."""
    due_at: AwareDatetime
    """The deadline that passed."""
    time_limit_minutes: Annotated[int, Field(ge=1)]
    """The stage's time limit under the order's definition."""
    responsible_role: StaffRole
    """Who answers for the stage at the branch, as the definition says."""
    responsible_staff_id: Id | None = None
    """The staff member in that role on the order (its advisor, its technician), if it has one."""
    customer_id: Id
    """The order's customer."""
    vehicle_id: Id
    """The order's vehicle."""
    process: ProcessRef
    """The definition version the order runs on."""
