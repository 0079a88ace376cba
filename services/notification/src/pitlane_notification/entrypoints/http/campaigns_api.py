"""Campaigns and saved segments: create a campaign (audience by tags or a segment, channel, template, cost,
coupons, attribution window, control group), launch it, see who got what and why."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from pitlane_events.inputs import NOT_A_BOOLEAN, DateInput
from pitlane_events.types import Channel
from pitlane_notification.entrypoints.http.common import ChainAdmin, Context, Reader
from pitlane_notification.service_layer.campaigns import CampaignDraft, segment_members
from pitlane_platform.db import execute_on_driver, fetch_on_driver
from pitlane_platform.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["campaigns"])

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
IdText = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$")]


class NewCampaign(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    channel: Literal["sms", "wechat", "email"]
    template: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] = "campaign"
    audience_tags: Annotated[list[Code], Field(max_length=20)] = Field(default_factory=list)
    segment_id: IdText | None = None
    cost_fen: Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=10**12)]
    attribution_window_days: Annotated[int, NOT_A_BOOLEAN, Field(ge=1, le=365)] = 30
    control_share_pct: Annotated[int, NOT_A_BOOLEAN, Field(ge=0, le=50)] = 10
    coupon_prefix: Annotated[str, Field(min_length=1, max_length=12, pattern=r"^[A-Z0-9]+$")] | None = None
    starts_on: DateInput
    ends_on: DateInput
    branch_ids: Annotated[list[IdText], Field(max_length=200)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_audience(self) -> NewCampaign:
        if bool(self.audience_tags) == bool(self.segment_id):
            raise ValueError("give the audience as audience_tags or as segment_id, one of them")
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on must not be before starts_on")
        return self


class Campaign(BaseModel):
    campaign_id: str
    name: str
    channel: str
    template: str
    audience: dict[str, str | list[str]]
    cost_fen: int
    attribution_window_days: int
    control_share_pct: int
    coupon_prefix: str | None
    starts_on: date
    ends_on: date
    branch_ids: list[str]
    status: Literal["draft", "launched"]
    created_at: datetime
    launched_at: datetime | None
    recipients: int | None
    control_group: int | None
    skipped_without_consent: int | None


class Recipient(BaseModel):
    customer_id: str
    in_control_group: bool
    coupon_code: str | None
    outcome: Literal["sent", "control", "no_consent", "limited", "no_contact", "not_sent"]
    message_id: str | None


class RecipientList(BaseModel):
    recipients: list[Recipient]


class NewSegment(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    customer_ids: Annotated[list[IdText], Field(min_length=1, max_length=100_000)]


class Segment(BaseModel):
    segment_id: str
    name: str
    size: int
    created_at: datetime
    source: Literal["notification", "analytics"] = Field(
        description="saved here, or exported from one of analytics' KPI drill-downs"
    )


@router.post("/campaigns", status_code=201)
async def create_campaign(body: NewCampaign, context: Context, principal: ChainAdmin) -> Campaign:
    campaign_id = str(uuid.uuid4())
    service = context.service
    draft = CampaignDraft(
        campaign_id=campaign_id,
        name=body.name,
        channel=Channel(body.channel),
        template=body.template,
        audience_tags=tuple(body.audience_tags),
        segment_id=body.segment_id,
        cost_fen=body.cost_fen,
        attribution_window_days=body.attribution_window_days,
        control_share_pct=body.control_share_pct,
        coupon_prefix=body.coupon_prefix,
        starts_on=body.starts_on,
        ends_on=body.ends_on,
        branch_ids=tuple(body.branch_ids),
    )
    async with service.driver.transaction() as unit:
        await service.campaigns.create(unit, draft, service.clock.now())
        row = await service.campaigns.campaign(unit, campaign_id)
    return Campaign.model_validate(row)


@router.get("/campaigns/{campaign_id}")
async def get_campaign(campaign_id: str, context: Context, principal: Reader) -> Campaign:
    async with context.service.driver.transaction() as unit:
        return Campaign.model_validate(await context.service.campaigns.campaign(unit, campaign_id))


@router.post("/campaigns/{campaign_id}/launch")
async def launch_campaign(campaign_id: str, context: Context, principal: ChainAdmin) -> Campaign:
    """Draw the control group and queue the message of every other audience member who opted in; a second
    launch is a 409."""
    service = context.service
    async with service.driver.transaction() as unit:
        await service.campaigns.launch(unit, campaign_id, service.clock.now())
        row = await service.campaigns.campaign(unit, campaign_id)
    return Campaign.model_validate(row)


@router.get("/campaigns/{campaign_id}/recipients")
async def campaign_recipients(campaign_id: str, context: Context, principal: ChainAdmin) -> RecipientList:
    async with context.service.driver.transaction() as unit:
        rows = await context.service.campaigns.recipients(unit, campaign_id)
    return RecipientList(recipients=[Recipient.model_validate(row) for row in rows])


@router.post("/segments", status_code=201)
async def save_segment(body: NewSegment, context: Context, principal: ChainAdmin) -> Segment:
    """A saved audience (analytics' drill-down lists are exported as these) that a campaign can target."""
    segment_id = str(uuid.uuid4())
    members = segment_members(body.customer_ids)
    now = context.service.clock.now()
    async with context.service.driver.transaction() as unit:
        await execute_on_driver(
            unit,
            "save segment",
            """
            INSERT INTO segments (segment_id, name, customer_ids, created_at, created_by)
            VALUES (%(id)s, %(name)s, %(members)s::jsonb, %(at)s, %(by)s)
            """,
            {
                "id": segment_id,
                "name": body.name,
                "members": json.dumps(members),
                "at": now,
                "by": principal.user_id,
            },
        )
    return Segment(
        segment_id=segment_id, name=body.name, size=len(members), created_at=now, source="notification"
    )


@router.get("/segments/{segment_id}")
async def get_segment(segment_id: str, context: Context, principal: Reader) -> Segment:
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "segment",
            """
            SELECT segment_id, name, jsonb_array_length(customer_ids) AS size, created_at, source
            FROM segments WHERE segment_id = %(id)s
            """,
            {"id": segment_id},
            as_dicts=True,
        )
    if not rows:
        raise NotFoundError(f"no segment {segment_id}")
    return Segment.model_validate(rows[0])
