"""What the service layer is asked to send: a message for one customer, caused by a trigger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pitlane_events.types import Channel, Purpose


class Trigger(StrEnum):
    """Why a message is sent; also the key of its template."""

    APPOINTMENT_BOOKED = "appointment_booked"
    APPOINTMENT_REMINDER = "appointment_reminder"
    APPOINTMENT_SOON = "appointment_soon"
    WAITLIST_OFFER = "waitlist_offer"
    WORK_ORDER_PROGRESS = "work_order_progress"
    ADD_ON_PROPOSED = "add_on_proposed"
    WORK_ORDER_COMPLETED = "work_order_completed"
    NPS_SURVEY = "nps_survey"
    NPS_SURVEY_REMINDER = "nps_survey_reminder"
    REMINDER_DUE = "reminder_due"
    CAMPAIGN = "campaign"
    # To a branch's managers: a stage of a work order ran past its time limit.
    STAGE_OVERDUE = "stage_overdue"
    # Several messages due to one customer on one channel at once, sent as one.
    DIGEST = "digest"


# Surveys and marketing share one contact-frequency limit per customer; service messages about the
# customer's own car and appointments are never held back by it.
LIMITED_TRIGGERS = frozenset({Trigger.NPS_SURVEY, Trigger.CAMPAIGN})


@dataclass(frozen=True)
class Related:
    """The records a message is about, kept on the message and published with it."""

    work_order_id: str | None = None
    appointment_id: str | None = None
    reminder_id: str | None = None
    campaign_id: str | None = None
    survey_id: str | None = None


# Staff are recipients beside customers, under ids of their own (service_layer/staff_alerts.py).
STAFF = "staff:"


def staff_recipient(staff_id: str) -> str:
    return STAFF + staff_id


def is_staff(recipient: str) -> bool:
    return recipient.startswith(STAFF)


@dataclass(frozen=True)
class MessageRequest:
    trigger: Trigger
    purpose: Purpose
    customer_id: str
    # What caused it (an event id, a timer key): with the trigger, channel and recipient, the message's
    # identity, so a redelivered cause sends nothing new.
    cause: str
    due_at: datetime
    branch_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    related: Related = Related()
    # Channels to try, in order; None: the chain's order (WeChat, SMS, e-mail).
    channels: tuple[Channel, ...] | None = None
    # A template other than the trigger's own (a campaign names its template).
    template: str | None = None
    # The correlation of its cause (an event's, a timer's): the events about the message carry it.
    correlation_id: UUID | None = None
