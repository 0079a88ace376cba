"""NPS surveys for staff: each survey with its status and answer, detractors to call back (service
recovery), and the survey funnel per branch, advisor and channel — sent, delivered, opened, started,
completed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from pitlane_events.inputs import DatetimeInput
from pitlane_notification.entrypoints.http.common import Context, Reader, branch_filter
from pitlane_platform.auth import Role
from pitlane_platform.db import fetch_on_driver

router = APIRouter(prefix="/v1/surveys", tags=["surveys"])

Id = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class Survey(BaseModel):
    survey_id: str
    work_order_id: str
    customer_id: str
    branch_id: str
    advisor_id: str
    technician_ids: list[str]
    status: Literal["scheduled", "sent", "answered", "cancelled"]
    status_reason: str | None
    channel: str | None
    reminder_channel: str | None
    scheduled_for: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    started_at: datetime | None
    answered_at: datetime | None
    reminded_at: datetime | None
    expires_at: datetime | None
    score: int | None
    comment: str | None  # left out for analysts
    detractor: bool


class SurveyPage(BaseModel):
    surveys: list[Survey]


class FunnelRow(BaseModel):
    branch_id: str
    advisor_id: str
    channel: str
    sent: int
    delivered: int
    opened: int
    started: int
    completed: int
    reminded: int


class Funnel(BaseModel):
    since: datetime | None
    until: datetime | None
    rows: list[FunnelRow]


@router.get("")
async def list_surveys(
    context: Context,
    principal: Reader,
    branch_id: Id | None = None,
    status: Literal["scheduled", "sent", "answered", "cancelled"] | None = None,
    detractor: bool | None = None,
    work_order_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SurveyPage:
    """Newest first. `detractor=true`: answers of 0–6, the customers to call back."""
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "list surveys",
            """
            SELECT s.*, a.score, a.comment FROM surveys s LEFT JOIN survey_answers a USING (survey_id)
            WHERE (%(branch)s::text IS NULL OR s.branch_id = %(branch)s)
              AND (%(branches)s::text[] IS NULL OR s.branch_id = ANY(%(branches)s))
              AND (%(status)s::text IS NULL OR s.status = %(status)s)
              AND (%(detractor)s::boolean IS NULL OR s.detractor = %(detractor)s)
              AND (%(work_order)s::text IS NULL OR s.work_order_id = %(work_order)s)
            ORDER BY s.scheduled_for DESC, s.survey_id LIMIT %(limit)s
            """,
            {
                "branch": branch_id,
                "branches": branch_filter(principal),
                "status": status,
                "detractor": detractor,
                "work_order": work_order_id,
                "limit": limit,
            },
            as_dicts=True,
        )
    if principal.role is Role.ANALYST:
        rows = [{**row, "comment": None} for row in rows]
    return SurveyPage(surveys=[Survey.model_validate(row) for row in rows])


@router.get("/funnel")
async def funnel(
    context: Context,
    principal: Reader,
    since: DatetimeInput | None = None,
    until: DatetimeInput | None = None,
) -> Funnel:
    """Surveys sent in [since, until), and how far each got, per branch, advisor and channel."""
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "survey funnel",
            """
            SELECT branch_id, advisor_id, channel, count(*) AS sent, count(delivered_at) AS delivered,
                   count(opened_at) AS opened, count(started_at) AS started, count(answered_at) AS completed,
                   count(reminded_at) AS reminded
            FROM surveys
            WHERE sent_at IS NOT NULL
              AND (%(since)s::timestamptz IS NULL OR sent_at >= %(since)s)
              AND (%(until)s::timestamptz IS NULL OR sent_at < %(until)s)
              AND (%(branches)s::text[] IS NULL OR branch_id = ANY(%(branches)s))
            GROUP BY branch_id, advisor_id, channel ORDER BY branch_id, advisor_id, channel
            """,
            {"since": since, "until": until, "branches": branch_filter(principal)},
            as_dicts=True,
        )
    return Funnel(since=since, until=until, rows=[FunnelRow.model_validate(row) for row in rows])
