"""The appointment: booked for a slot, then moved, confirmed, cancelled, missed (no-show) or kept (arrived)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pitlane_events import DomainEvent
from pitlane_events.types import TimeSlot
from pitlane_events.workorder import (
    AppointmentArrived,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentConfirmed,
    AppointmentNoShow,
    AppointmentRescheduled,
    BookingChannel,
    VisitType,
)
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.errors import ConflictError, InvalidInputError


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    ARRIVED = "arrived"


class Appointment(Aggregate):
    keeps_correlation = True  # the visit's correlation is born with its booking
    # What the booking said: set by AppointmentBooked, the first event of every appointment (`book` records
    # it, and a stream without events is not loaded).
    customer_id: str
    vehicle_id: str | None
    plate: str
    slot: TimeSlot
    channel: BookingChannel
    campaign_id: str | None
    visit_type: VisitType | None
    service_requested: str
    confirmation_required: bool

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = AppointmentStatus.BOOKED
        self.work_order_id: str | None = None
        self.confirmed = False

    @classmethod
    def book(cls, event: AppointmentBooked, at: datetime) -> Appointment:
        if event.slot.start <= at:
            raise InvalidInputError("slot_start", "the slot has already begun")
        appointment = cls(event.appointment_id)
        appointment.record(event, at)
        return appointment

    def reschedule(self, slot: TimeSlot, reason: str | None, at: datetime) -> None:
        self._require_booked("reschedule")
        self.record(
            AppointmentRescheduled(
                appointment_id=self.id,
                customer_id=self.customer_id,
                previous_slot=self.slot,
                slot=slot,
                reason=reason,
            ),
            at,
        )

    def confirm(self, confirmed_by: Literal["customer", "branch"], at: datetime) -> bool:
        """True if the confirmation was recorded now, False if the appointment was confirmed already (a
        second tap on Confirm records nothing)."""
        self._require_booked("be confirmed")
        if self.confirmed:
            return False
        self.record(
            AppointmentConfirmed(
                appointment_id=self.id,
                customer_id=self.customer_id,
                slot=self.slot,
                confirmed_by=confirmed_by,
            ),
            at,
        )
        return True

    def awaits_confirmation(self) -> bool:
        """Booked by a customer who must confirm, and not confirmed yet: released at its deadline."""
        return self.status is AppointmentStatus.BOOKED and self.confirmation_required and not self.confirmed

    def cancel(self, cancelled_by: Literal["customer", "branch"], reason: str, at: datetime) -> None:
        self._require_booked("cancel")
        self.record(
            AppointmentCancelled(
                appointment_id=self.id, customer_id=self.customer_id, cancelled_by=cancelled_by, reason=reason
            ),
            at,
        )

    def is_missed(self, at: datetime, grace: timedelta) -> bool:
        return self.status is AppointmentStatus.BOOKED and at >= self.slot.start + grace

    def mark_no_show(self, at: datetime, grace: timedelta) -> None:
        self._require_booked("mark as no-show")
        if not self.is_missed(at, grace):
            raise ConflictError(
                f"appointment {self.id} is not missed yet: its grace period of {grace} has not run out"
            )
        self.record(
            AppointmentNoShow(appointment_id=self.id, customer_id=self.customer_id, slot=self.slot), at
        )

    def arrive(self, work_order_id: str, at: datetime) -> None:
        self._require_booked("check in")
        self.record(
            AppointmentArrived(
                appointment_id=self.id,
                customer_id=self.customer_id,
                work_order_id=work_order_id,
                arrived_at=at,
            ),
            at,
        )

    def _require_booked(self, action: str) -> None:
        if self.status is not AppointmentStatus.BOOKED:
            raise ConflictError(
                f"appointment {self.id} is {self.status}; only a booked appointment can {action}"
            )

    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        match event:
            case AppointmentBooked():
                self.customer_id = event.customer_id
                self.vehicle_id = event.vehicle_id
                self.plate = event.plate
                self.slot = event.slot
                self.channel = event.channel
                self.campaign_id = event.campaign_id
                self.visit_type = event.visit_type
                self.service_requested = event.service_requested
                self.confirmation_required = event.confirmation_required
            case AppointmentConfirmed():
                self.confirmed = True
            case AppointmentRescheduled():
                self.slot = event.slot
            case AppointmentCancelled():
                self.status = AppointmentStatus.CANCELLED
            case AppointmentNoShow():
                self.status = AppointmentStatus.NO_SHOW
            case AppointmentArrived():
                self.status = AppointmentStatus.ARRIVED
                self.work_order_id = event.work_order_id
