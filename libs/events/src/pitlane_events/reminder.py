"""Events published by reminder: service and insurance reminders, and advisors' follow-up tasks."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import model_validator

from pitlane_events.model import DomainEvent, event
from pitlane_events.registry import upcaster
from pitlane_events.types import Channel, Code, Id, Kilometres, NonBlank, StaffRole
from pitlane_events.workorder import ProcessStage


class ReminderKind(StrEnum):
    """The rule that produced a reminder."""

    SERVICE_DUE_BY_MILEAGE = "service_due_by_mileage"
    SERVICE_DUE_BY_DATE = "service_due_by_date"
    INSURANCE_RENEWAL = "insurance_renewal"
    ANNUAL_INSPECTION = "annual_inspection"
    DECLINED_WORK = "declined_work"


class ReminderCancellation(StrEnum):
    """Why a reminder will not be sent."""

    SERVICED = "serviced"
    VEHICLE_SOLD = "vehicle_sold"
    CUSTOMER_ERASED = "customer_erased"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    SUPERSEDED = "superseded"
    MANUAL = "manual"


class FollowUpKindV1(StrEnum):
    """Why an advisor should call the customer (FollowUpTaskCreated v1)."""

    DECLINED_ADD_ON = "declined_add_on"
    NPS_DETRACTOR = "nps_detractor"
    REMINDER = "reminder"
    NO_SHOW = "no_show"


class FollowUpKind(StrEnum):
    """Why a task was made: a customer to contact, or a late stage of a work order to chase."""

    DECLINED_ADD_ON = "declined_add_on"
    NPS_DETRACTOR = "nps_detractor"
    REMINDER = "reminder"
    NO_SHOW = "no_show"
    STAGE_OVERDUE = "stage_overdue"


class FollowUpOutcome(StrEnum):
    """How a follow-up ended."""

    BOOKED = "booked"
    RESOLVED = "resolved"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"


class _DueByDateOrMileage(DomainEvent):
    """A reminder is due on a date, at a mileage, or whichever comes first."""

    due_on: date | None = None
    """Date the reminder is due, if date-based."""
    due_mileage_km: Kilometres | None = None
    """Odometer reading at which it is due, if mileage-based."""

    @model_validator(mode="after")
    def _has_a_due_point(self) -> _DueByDateOrMileage:
        if self.due_on is None and self.due_mileage_km is None:
            raise ValueError("due_on or due_mileage_km is required")
        return self


@event("reminder.ReminderScheduled", 1)
class ReminderScheduled(_DueByDateOrMileage):
    """A reminder was scheduled for a vehicle by one of the chain's rules."""

    reminder_id: Id
    """The reminder's id."""
    rule_id: Id
    """The rule that scheduled it."""
    kind: ReminderKind
    """Kind of rule."""
    vehicle_id: Id
    """The vehicle it is about."""
    customer_id: Id
    """The owner to remind."""


@event("reminder.ReminderRescheduled", 1)
class ReminderRescheduled(_DueByDateOrMileage):
    """A reminder's due point moved (e.g. a new mileage reading or a renewed policy)."""

    reminder_id: Id
    """The reminder's id."""
    reason: NonBlank
    """Why it moved."""


@event("reminder.ReminderDue", 1)
class ReminderDue(_DueByDateOrMileage):
    """A reminder fell due; notification contacts the customer, reminder may open a follow-up task."""

    reminder_id: Id
    """The reminder's id."""
    kind: ReminderKind
    """Kind of rule."""
    vehicle_id: Id
    """The vehicle it is about."""
    customer_id: Id
    """The owner to remind."""
    preferred_branch_id: Id | None = None
    """The branch the vehicle last visited, to book it there."""
    channel: Channel | None = None
    """The channel the rule asks notification to try first; null: notification's own order."""
    template: Code | None = None
    """The notification template the rule names; null: notification's template for reminders."""


@event("reminder.ReminderCancelled", 1)
class ReminderCancelled(DomainEvent):
    """A scheduled reminder was withdrawn before it fell due."""

    reminder_id: Id
    """The reminder's id."""
    reason: ReminderCancellation
    """Why."""


@event("reminder.FollowUpTaskCreated", 1)
class FollowUpTaskCreatedV1(DomainEvent):
    """An advisor was given a task to contact a customer."""

    task_id: Id
    """The task's id."""
    kind: FollowUpKindV1
    """Why the customer should be contacted."""
    advisor_id: Id
    """The advisor responsible."""
    customer_id: Id
    """The customer to contact."""
    vehicle_id: Id | None = None
    """The vehicle concerned, if any."""
    due_on: date
    """Day the task should be done by."""
    work_order_id: Id | None = None
    """The work order behind it (declined add-on, detractor), if any."""
    add_on_id: Id | None = None
    """The declined add-on, for declined_add_on tasks."""
    survey_id: Id | None = None
    """The NPS survey, for nps_detractor tasks."""
    reminder_id: Id | None = None
    """The reminder, for reminder tasks."""
    note: NonBlank | None = None
    """What the advisor should know before calling."""


@event("reminder.FollowUpTaskCreated", 2)
class FollowUpTaskCreated(FollowUpTaskCreatedV1):
    """A staff member was given a task: a customer to contact, or a late stage of a work order to chase."""

    kind: FollowUpKind  # type: ignore[assignment]  # v2 adds stage_overdue
    """Why the task was made."""
    responsible_role: StaffRole | None = None
    """For stage_overdue: the stage's responsible role at the branch (the task is for whoever holds it)."""
    stage: ProcessStage | None = None
    """For stage_overdue: the late stage of `work_order_id`."""


@upcaster("reminder.FollowUpTaskCreated", 1)
def tasks_before_stage_overdue(data: dict[str, Any]) -> dict[str, Any]:
    """v1's kinds are all v2's; its tasks were about customers, for no role or stage."""
    return {**data, "responsible_role": None, "stage": None}


@event("reminder.FollowUpTaskAssigned", 1)
class FollowUpTaskAssigned(DomainEvent):
    """A follow-up task was handed to another advisor."""

    task_id: Id
    """The task's id."""
    advisor_id: Id
    """The advisor now responsible."""
    previous_advisor_id: Id
    """The advisor responsible before."""


@event("reminder.FollowUpTaskCompleted", 1)
class FollowUpTaskCompleted(DomainEvent):
    """An advisor finished a follow-up task."""

    task_id: Id
    """The task's id."""
    advisor_id: Id
    """The advisor who did it."""
    outcome: FollowUpOutcome
    """How it ended."""
    note: NonBlank | None = None
    """What was agreed."""
    auto_closed_reason: NonBlank | None = None
    """Set when nobody closed it by hand: why it closed itself (customer_booked, customer_erased)."""
