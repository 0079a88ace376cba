"""What providers and the chain's WeChat front end tell us: delivery receipts and inbound SMS replies pushed
by Alibaba Cloud and Tencent Cloud (authenticated by the callback key in their URL: they cannot carry our
tokens), and the one-time subscriptions a customer accepted in WeChat (each allows exactly one send)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from pitlane_notification.adapters import message_log
from pitlane_notification.adapters.channels.receipts import parse_delivery_reports, parse_inbound_replies
from pitlane_notification.entrypoints.http.common import Context, FrontDesk, NotificationContext
from pitlane_platform.errors import ForbiddenError, InvalidInputError

router = APIRouter(prefix="/v1", tags=["providers"])

PushingProvider = Literal["aliyun", "tencent"]
CallbackKey = Annotated[
    str, Query(min_length=1, max_length=200, description="the callback key of this chain")
]
IdText = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$")]


class ProviderAck(BaseModel):
    """The answer each provider expects from a push: Alibaba Cloud reads `code`/`msg`, Tencent `result`/`errmsg`."""

    code: int | None = None
    msg: str | None = None
    result: int | None = None
    errmsg: str | None = None
    applied: int


class SubscriptionGrant(BaseModel):
    customer_id: IdText
    template_id: IdText
    count: Annotated[int, Field(ge=1, le=50)] = 1


class SubscriptionAllowance(BaseModel):
    customer_id: str
    template_id: str
    remaining: int


def _check_key(context: NotificationContext, key: str) -> None:
    if not hmac.compare_digest(key.encode(), context.callback_key.encode()):
        raise ForbiddenError("unknown callback key")


def _ack(provider: str, applied: int) -> ProviderAck:
    if provider == "aliyun":
        return ProviderAck(code=0, msg="成功", applied=applied)
    return ProviderAck(result=0, errmsg="OK", applied=applied)


@router.post("/providers/{provider}/receipts", response_model_exclude_none=True)
async def delivery_receipts(
    provider: PushingProvider, key: CallbackKey, context: Context, payload: Annotated[Any, Body()]
) -> ProviderAck:
    """Delivery receipts: each sent message becomes delivered, or failed with the provider's code."""
    _check_key(context, key)
    try:
        reports = parse_delivery_reports(provider, payload)
    except ValueError as error:
        raise InvalidInputError("body", str(error)) from None
    async with context.service.driver.transaction() as unit:
        applied = await context.service.delivery_reports(unit, reports)
    return _ack(provider, applied)


@router.post("/providers/{provider}/replies", response_model_exclude_none=True)
async def inbound_replies(
    provider: PushingProvider, key: CallbackKey, context: Context, payload: Annotated[Any, Body()]
) -> ProviderAck:
    """Texts customers sent to our SMS sign-name: "T" or "TD" unsubscribes them from marketing."""
    _check_key(context, key)
    try:
        replies = parse_inbound_replies(provider, payload)
    except ValueError as error:
        raise InvalidInputError("body", str(error)) from None
    async with context.service.driver.transaction() as unit:
        applied = await context.service.inbound_replies(unit, replies)
    return _ack(provider, applied)


@router.post("/wechat/subscriptions", status_code=201)
async def grant_subscription(
    body: SubscriptionGrant, context: Context, principal: FrontDesk
) -> SubscriptionAllowance:
    """The customer accepted a one-time subscription (一次性订阅) of a template `count` times in WeChat."""
    async with context.service.driver.transaction() as unit:
        remaining = await message_log.grant_wechat_allowance(
            unit, body.customer_id, body.template_id, body.count
        )
    return SubscriptionAllowance(
        customer_id=body.customer_id, template_id=body.template_id, remaining=remaining
    )
