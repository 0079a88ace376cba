"""The message log: every message to a customer, its channel and status and why (GET /v1/messages), and what
the recording provider "sent" in development (GET /v1/recorded-messages, `pitlane messages`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from pitlane_events.inputs import DatetimeInput
from pitlane_notification.entrypoints.http.common import Context, Reader, branch_filter
from pitlane_platform.auth import Principal, Role
from pitlane_platform.db import fetch_on_driver
from pitlane_platform.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["messages"])

Status = Literal["queued", "sent", "delivered", "failed", "suppressed"]
Id = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class Message(BaseModel):
    message_id: str
    customer_id: str
    branch_id: str | None
    channel: str
    purpose: str
    trigger: str
    locale: str
    status: Status
    status_reason: str | None
    due_at: datetime
    attempts: int
    provider: str | None
    provider_message_id: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    work_order_id: str | None
    appointment_id: str | None
    reminder_id: str | None
    campaign_id: str | None
    survey_id: str | None
    # Personal data: left out for analysts (and empty once the customer is erased).
    address: str | None
    subject: str | None
    body: str | None
    link: str | None


class MessagePage(BaseModel):
    messages: list[Message]
    next_before: datetime | None


class RecordedMessage(BaseModel):
    message_id: str
    channel: str
    address: str | None
    subject: str | None
    body: str | None
    provider_template: str | None
    parameters: dict[str, str]
    link: str | None
    recorded_at: datetime


class RecordedPage(BaseModel):
    messages: list[RecordedMessage]


_COLUMNS = """
    message_id, customer_id, branch_id, channel, purpose, trigger, locale, status, status_reason, due_at,
    attempts, provider, provider_message_id, created_at, sent_at, delivered_at, failed_at, work_order_id,
    appointment_id, reminder_id, campaign_id, survey_id, address, subject, body, link
"""


def _visible(row: dict[str, Any], principal: Principal) -> Message:
    if principal.role is Role.ANALYST:
        row = {**row, "address": None, "subject": None, "body": None, "link": None}
    return Message.model_validate(row)


@router.get("/messages")
async def list_messages(
    context: Context,
    principal: Reader,
    customer_id: Id | None = None,
    status: Status | None = None,
    channel: Literal["sms", "wechat", "email"] | None = None,
    trigger: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")] = None,
    campaign_id: Id | None = None,
    survey_id: Id | None = None,
    before: DatetimeInput | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MessagePage:
    """Newest first. Staff of some branches see the messages of those branches (and none without one)."""
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "list messages",
            f"""
            SELECT {_COLUMNS} FROM messages
            WHERE (%(customer_id)s::text IS NULL OR customer_id = %(customer_id)s)
              AND (%(status)s::text IS NULL OR status = %(status)s)
              AND (%(channel)s::text IS NULL OR channel = %(channel)s)
              AND (%(trigger)s::text IS NULL OR trigger = %(trigger)s)
              AND (%(campaign_id)s::text IS NULL OR campaign_id = %(campaign_id)s)
              AND (%(survey_id)s::text IS NULL OR survey_id = %(survey_id)s)
              AND (%(before)s::timestamptz IS NULL OR created_at < %(before)s)
              AND (%(branches)s::text[] IS NULL OR branch_id = ANY(%(branches)s))
            ORDER BY created_at DESC, message_id
            LIMIT %(limit)s
            """,
            {
                "customer_id": customer_id,
                "status": status,
                "channel": channel,
                "trigger": trigger,
                "campaign_id": campaign_id,
                "survey_id": survey_id,
                "before": before,
                "branches": branch_filter(principal),
                "limit": limit,
            },
            as_dicts=True,
        )
    messages = [_visible(row, principal) for row in rows]
    return MessagePage(
        messages=messages, next_before=messages[-1].created_at if len(messages) == limit else None
    )


@router.get("/messages/{message_id}")
async def get_message(message_id: str, context: Context, principal: Reader) -> Message:
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "get message",
            f"""
            SELECT {_COLUMNS} FROM messages
            WHERE message_id = %(id)s AND (%(branches)s::text[] IS NULL OR branch_id = ANY(%(branches)s))
            """,
            {"id": message_id, "branches": branch_filter(principal)},
            as_dicts=True,
        )
    if not rows:
        raise NotFoundError(f"no message {message_id}")
    return _visible(rows[0], principal)


@router.get("/recorded-messages")
async def recorded_messages(
    context: Context,
    principal: Reader,
    address: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecordedPage:
    """What the recording provider was given, newest first (development: nothing is really sent)."""
    if not context.recording or principal.role is Role.ANALYST:
        raise NotFoundError("no channel is served by the recording provider here")
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "recorded messages",
            """
            SELECT * FROM recorded_messages WHERE (%(address)s::text IS NULL OR address = %(address)s)
            ORDER BY recorded_at DESC, message_id LIMIT %(limit)s
            """,
            {"address": address, "limit": limit},
            as_dicts=True,
        )
    return RecordedPage(messages=[RecordedMessage.model_validate(row) for row in rows])
