"""KPI digests by e-mail: `/v1/digests` to subscribe, list and unsubscribe, and each subscription's
delivery log. Owners subscribe for the chain or any branch; a manager for the token's branches only (another
branch, or the chain, is a 403) and sees only those. A subscription the token may not see is a 404.

The address is staff data: it is stored and shown to those who may see the subscription, never logged.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pitlane_analytics.domain.digest_schedule import LAST_MONTH_DAY, Cadence
from pitlane_analytics.service_layer.digests import Delivery, Digests, NewSubscription, Subscription
from pitlane_events.inputs import BranchIdInput
from pitlane_platform.auth import Principal, Role, require_branch_access, require_roles
from pitlane_platform.errors import ForbiddenError, InvalidInputError, NotFoundError
from pitlane_platform.mail import MailAddress

router = APIRouter(prefix="/v1/digests", tags=["digests"])

Subscriber = Annotated[Principal, Depends(require_roles(Role.OWNER, Role.MANAGER))]
SubscriptionId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


async def digests(request: Request) -> Digests:
    service: Digests = request.app.state.digests
    return service


Service = Annotated[Digests, Depends(digests)]


class NewDigest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[MailAddress, Field(max_length=254, description="who receives it (one address)")]
    branch_id: BranchIdInput | None = Field(default=None, description="one branch; left out: the chain")
    cadence: Cadence = Field(description="daily (yesterday), weekly (last week), monthly (last month)")
    weekday: int | None = Field(default=None, ge=1, le=7, description="weekly: 1 = Monday … 7 = Sunday")
    month_day: int | None = Field(default=None, ge=1, le=LAST_MONTH_DAY, description="monthly: 1–28")
    send_time: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = Field(
        description="local time HH:MM in the scope's time zone"
    )
    language: Literal["zh-CN", "en"] = "zh-CN"


class DigestView(BaseModel):
    subscription_id: str
    email: str
    branch_id: str | None
    cadence: Cadence
    weekday: int | None
    month_day: int | None
    send_time: str = Field(description="HH:MM, local")
    timezone: str = Field(description="the time zone the send time is in")
    language: str
    created_by: str
    created_at: datetime
    next_send_at: datetime = Field(description="the next send on the schedule (UTC)")

    @classmethod
    def of(cls, subscription: Subscription) -> DigestView:
        return cls(
            **{**subscription.__dict__, "send_time": subscription.send_time.strftime("%H:%M")},
        )


class DeliveryView(BaseModel):
    period_from: date = Field(description="first local day of the period the digest covers")
    period_to: date = Field(description="first local day after it")
    attempt: int = Field(description="1 for the period's first attempt, counting up on retries")
    attempted_at: datetime
    sent_at: datetime | None = Field(description="when the server took it; null when it did not")
    outcome: Literal["sent", "retried", "failed"]
    reason: str | None = Field(description="why the server refused: the SMTP step and reply code")
    message_id: str | None = Field(description="the Message-ID the digest was sent with")

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryView:
        return cls(
            period_from=delivery.period_start,
            period_to=delivery.period_end,
            attempt=delivery.attempt,
            attempted_at=delivery.attempted_at,
            sent_at=delivery.attempted_at if delivery.outcome == "sent" else None,
            outcome=delivery.outcome,  # type: ignore[arg-type]  # the store writes these three only
            reason=delivery.reason,
            message_id=delivery.message_id,
        )


@router.post("", status_code=status.HTTP_201_CREATED)
async def subscribe(body: NewDigest, principal: Subscriber, service: Service) -> DigestView:
    """Subscribe an address to a digest of the chain's or one branch's headline KPIs."""
    if body.branch_id is None:
        if not principal.is_chain_wide:
            raise ForbiddenError("this token covers some branches only: subscribe to one with branch_id")
    else:
        require_branch_access(principal, body.branch_id)
    _check_schedule_fields(body)
    hour, minute = (int(part) for part in body.send_time.split(":"))
    subscription = await service.subscribe(
        NewSubscription(
            email=body.email,
            branch_id=body.branch_id,
            cadence=body.cadence,
            send_time=time(hour, minute),
            language=body.language,
            weekday=body.weekday,
            month_day=body.month_day,
        ),
        created_by=principal.user_id,
    )
    return DigestView.of(subscription)


@router.get("")
async def list_digests(principal: Subscriber, service: Service) -> list[DigestView]:
    """The subscriptions the token may see: all for the chain's, its branches' for a manager."""
    branches = None if principal.is_chain_wide else principal.branches
    return [DigestView.of(subscription) for subscription in await service.subscriptions(branches=branches)]


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unsubscribe(subscription_id: SubscriptionId, principal: Subscriber, service: Service) -> Response:
    await _require_visible(service, principal, subscription_id)
    await service.unsubscribe(subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{subscription_id}/deliveries")
async def deliveries(
    subscription_id: SubscriptionId, principal: Subscriber, service: Service
) -> list[DeliveryView]:
    """Every attempt to send the subscription's digests, oldest first."""
    await _require_visible(service, principal, subscription_id)
    return [DeliveryView.of(delivery) for delivery in await service.deliveries(subscription_id)]


def _check_schedule_fields(body: NewDigest) -> None:
    if body.cadence is Cadence.WEEKLY and body.weekday is None:
        raise InvalidInputError("body.weekday", "a weekly digest needs its weekday (1 = Monday … 7 = Sunday)")
    if body.cadence is not Cadence.WEEKLY and body.weekday is not None:
        raise InvalidInputError("body.weekday", "only a weekly digest has a weekday")
    if body.cadence is Cadence.MONTHLY and body.month_day is None:
        raise InvalidInputError(
            "body.month_day", f"a monthly digest needs its day of the month (1–{LAST_MONTH_DAY})"
        )
    if body.cadence is not Cadence.MONTHLY and body.month_day is not None:
        raise InvalidInputError("body.month_day", "only a monthly digest has a day of the month")


async def _require_visible(service: Digests, principal: Principal, subscription_id: str) -> None:
    subscription = await service.subscription(subscription_id)
    if subscription is None or not (
        principal.is_chain_wide
        or (subscription.branch_id is not None and subscription.branch_id in principal.branches)
    ):
        raise NotFoundError(f"no digest subscription {subscription_id}")
