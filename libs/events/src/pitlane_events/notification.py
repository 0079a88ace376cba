"""Events published by notification: messages, NPS surveys and answers, campaigns, unsubscribes."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field, model_validator

from pitlane_events.model import DomainEvent, event
from pitlane_events.types import Channel, Code, Fen, Id, IdBatch, NonBlank, Purpose

NpsScore = Annotated[int, Field(ge=0, le=10)]


class AudienceGroup(StrEnum):
    """Which side of a campaign's control-group split a customer was drawn into."""

    TREATED = "treated"
    CONTROL = "control"


class UnsubscribeSource(StrEnum):
    """How a customer unsubscribed."""

    LINK = "link"
    SMS_REPLY = "sms_reply"
    WECHAT_MENU = "wechat_menu"
    STAFF = "staff"


@event("notification.NotificationSent", 1)
class NotificationSent(DomainEvent):
    """A message was handed to a channel provider for one customer."""

    notification_id: Id
    """The message's id in the message log."""
    channel: Channel
    """Channel it went out on."""
    template: Code
    """Template key, e.g. work_order_progress."""
    purpose: Purpose
    """Service or marketing; a marketing message implies marketing consent was held."""
    recipient_customer_id: Id
    """The customer it was sent to."""
    work_order_id: Id | None = None
    """The work order it is about, if any."""
    appointment_id: Id | None = None
    """The appointment it is about, if any."""
    reminder_id: Id | None = None
    """The reminder it delivers, if any; used for reminder effectiveness."""
    campaign_id: Id | None = None
    """The campaign it belongs to, if any."""
    survey_id: Id | None = None
    """The NPS survey it carries, if any."""


@event("notification.NotificationDelivered", 1)
class NotificationDelivered(DomainEvent):
    """A provider's delivery receipt said the message reached the customer's phone or mailbox."""

    notification_id: Id
    """The message's id in the message log."""
    channel: Channel
    """Channel it went out on."""
    recipient_customer_id: Id
    """The customer it was sent to."""
    survey_id: Id | None = None
    """The NPS survey it carries, if any (the survey funnel's "delivered")."""
    campaign_id: Id | None = None
    """The campaign it belongs to, if any."""


@event("notification.NotificationFailed", 1)
class NotificationFailed(DomainEvent):
    """A message could not be delivered (or was not sent for lack of consent)."""

    notification_id: Id
    """The message's id in the message log."""
    channel: Channel
    """Channel it was meant for."""
    template: Code
    """Template key."""
    purpose: Purpose
    """Service or marketing."""
    recipient_customer_id: Id
    """The customer it was meant for."""
    reason: NonBlank
    """Why it failed, e.g. no_consent, provider_rejected: invalid number."""
    will_retry: bool
    """Whether notification will try again."""


@event("notification.NpsSurveySent", 1)
class NpsSurveySent(DomainEvent):
    """An NPS survey was sent after a completed work order."""

    survey_id: Id
    """The survey's id."""
    work_order_id: Id
    """The visit it asks about."""
    customer_id: Id
    """Who was asked."""
    advisor_id: Id
    """The visit's service advisor."""
    technician_ids: tuple[Id, ...]
    """The visit's technicians."""
    branch_id: Id
    """The branch of the visit."""
    channel: Channel
    """Channel the survey link went out on."""
    expires_at: AwareDatetime
    """When the survey link stops accepting answers."""


class SurveyStep(StrEnum):
    """A step of the survey funnel after "sent": the link was opened, a score was picked."""

    OPENED = "opened"
    STARTED = "started"


@event("notification.NpsSurveyProgressed", 1)
class NpsSurveyProgressed(DomainEvent):
    """A customer reached a step of an NPS survey for the first time (the survey funnel)."""

    survey_id: Id
    """The survey."""
    work_order_id: Id
    """The visit it asks about."""
    branch_id: Id
    """The branch of the visit."""
    advisor_id: Id
    """The visit's service advisor."""
    channel: Channel
    """Channel the survey link went out on."""
    step: SurveyStep
    """The step reached."""


@event("notification.NpsSurveyReminded", 1)
class NpsSurveyReminded(DomainEvent):
    """The one reminder of an unanswered NPS survey went out."""

    survey_id: Id
    """The survey."""
    work_order_id: Id
    """The visit it asks about."""
    branch_id: Id
    """The branch of the visit."""
    channel: Channel
    """Channel the reminder went out on (the next one after the survey's, where the customer has one)."""


@event("notification.NpsAnswered", 1)
class NpsAnswered(DomainEvent):
    """A customer answered an NPS survey (0 = would not recommend, 10 = would certainly recommend)."""

    survey_id: Id
    """The survey answered."""
    work_order_id: Id
    """The visit it is about."""
    customer_id: Id
    """Who answered."""
    advisor_id: Id
    """The visit's service advisor."""
    technician_ids: tuple[Id, ...]
    """The visit's technicians."""
    branch_id: Id
    """The branch of the visit."""
    score: NpsScore
    """Score 0–10: 9–10 promoter, 7–8 passive, 0–6 detractor."""
    comment: Annotated[str, Field(max_length=2000)] | None = None
    """Free-text comment, if given."""


@event("notification.CampaignLaunched", 1)
class CampaignLaunched(DomainEvent):
    """A marketing campaign was launched; visits it brings are attributed to it for ROI."""

    campaign_id: Id
    """The campaign's id."""
    campaign_name: NonBlank
    """Name, e.g. 夏季空调清洗季."""
    cost_fen: Fen
    """What the campaign costs the chain, in fen (ROI denominator)."""
    attribution_window_days: Annotated[int, Field(ge=1, le=365)]
    """Days after a campaign booking within which its visit still counts for the campaign."""
    starts_on: date
    """First day of the campaign."""
    ends_on: date
    """Last day of the campaign."""
    coupon_codes: tuple[Code, ...] = ()
    """Coupon codes whose redemption attributes a visit to the campaign."""
    branch_ids: tuple[Id, ...] = ()
    """Branches taking part; empty means the whole chain."""

    @model_validator(mode="after")
    def _ends_after_start(self) -> CampaignLaunched:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")
        return self


@event("notification.CampaignSent", 1)
class CampaignSent(DomainEvent):
    """A campaign's messages went out on one channel."""

    campaign_id: Id
    """The campaign's id."""
    channel: Channel
    """Channel used."""
    recipients: Annotated[int, Field(ge=0)]
    """Customers the message was sent to."""
    skipped_without_consent: Annotated[int, Field(ge=0)] = 0
    """Customers left out because they had not consented to marketing on this channel."""


@event("notification.CampaignAudienceDrawn", 1)
class CampaignAudienceDrawn(DomainEvent):
    """One batch of a launched campaign's audience, as its control-group draw split it.

    Treated is every audience member not held out, whether or not a message could be sent to them (no
    marketing consent, the contact-frequency limit, no address): the control group was drawn from the same
    whole audience, so comparing it with everyone else measures what launching the campaign did
    (intention to treat). Control is held out and sent nothing. The launch publishes every batch at once,
    after CampaignLaunched and CampaignSent; a reader has the whole audience when it holds batches 1 to
    `batch_count`. Ids only.
    """

    campaign_id: Id
    """The campaign's id."""
    group: AudienceGroup
    """Treated (not held out: messaged, or skipped for consent, frequency or address) or control (held out)."""
    customer_ids: IdBatch
    """The customers of this batch, all of `group`; at most 1,000; empty only in an empty audience's batch."""
    batch_number: Annotated[int, Field(ge=1)]
    """This batch's number, from 1; the treated batches come first, then the control group's."""
    batch_count: Annotated[int, Field(ge=1)]
    """How many batches the audience was published in (both groups together)."""

    @model_validator(mode="after")
    def _numbered_within_the_count(self) -> CampaignAudienceDrawn:
        if self.batch_number > self.batch_count:
            raise ValueError("batch_number must not exceed batch_count")
        return self


@event("notification.CustomerUnsubscribed", 1)
class CustomerUnsubscribed(DomainEvent):
    """A customer asked to stop receiving messages of one purpose on one channel."""

    customer_id: Id
    """The customer's id."""
    channel: Channel
    """The channel."""
    purpose: Purpose
    """The purpose unsubscribed from (usually marketing)."""
    source: UnsubscribeSource
    """How the request came in."""
