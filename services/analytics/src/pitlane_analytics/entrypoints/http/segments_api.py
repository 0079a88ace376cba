"""Saved segments: a KPI drill-down's customers saved for a notification campaign to target.

`POST /v1/segments` takes the drill-down as the KPI API is asked for it (KPI, period, branch, filters);
analytics resolves the customers itself, stores the segment and publishes it (analytics.SegmentSaved), and
notification, once every batch has arrived, lets a campaign target it by `segment_id`. The same readers as
the KPIs (owner, analyst; a manager for the token's branches, with `branch_id`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints

from pitlane_analytics.domain.periods import EmptyPeriodError, Period
from pitlane_analytics.entrypoints.http.common import Context, Reader
from pitlane_analytics.service_layer.kpis import Scope
from pitlane_analytics.service_layer.segments import SavedSegment, SegmentRequest, Segments
from pitlane_events import Actor
from pitlane_events.inputs import BranchIdInput, DateInput
from pitlane_platform.auth import Principal, require_branch_access
from pitlane_platform.errors import ForbiddenError, InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["segments"])

FilterText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class NewSegment(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    kpi: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="the KPI whose drill-down it is, e.g. customer-activity, nps, declined-work-recovery"
    )
    from_: DateInput = Field(alias="from", description="first local day of the period, YYYY-MM-DD")
    to: DateInput = Field(description="first local day after the period, YYYY-MM-DD")
    branch_id: BranchIdInput | None = Field(default=None, description="one branch; left out: the chain")
    filters: Annotated[dict[FilterText, FilterText], Field(max_length=5)] = Field(
        default_factory=dict,
        description="what narrows the list, as the KPI's route takes it: customer-activity status "
        "(new, active, churned, lapsed) and days (30, 90, 365); return-rate returning (true, false); nps "
        "group (promoter, passive, detractor); appointment-conversion outcome (arrived, not_arrived, "
        "cancelled, no_show); campaign-roi campaign_id; declined-work-recovery recovered (true, false)",
    )


class DrillDownView(BaseModel):
    kpi: str
    from_: date = Field(serialization_alias="from")
    to: date
    branch_id: str | None
    filters: dict[str, str]


class SegmentView(BaseModel):
    segment_id: str = Field(description="what a notification campaign targets (`segment_id`)")
    name: str
    drill_down: DrillDownView
    customer_count: int
    customer_ids: list[str] = Field(description="the customers, ids only; merged as the survivor, no erased")
    batches: int = Field(description="SegmentSaved events it was published in (≤ 1,000 ids each)")
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, segment: SavedSegment) -> SegmentView:
        drill_down = segment.drill_down
        return cls(
            segment_id=segment.segment_id,
            name=segment.name,
            drill_down=DrillDownView(
                kpi=drill_down.kpi,
                from_=drill_down.period_from,
                to=drill_down.period_to,
                branch_id=drill_down.branch_id,
                filters=dict(drill_down.filters),
            ),
            customer_count=len(segment.customer_ids),
            customer_ids=segment.customer_ids,
            batches=segment.batches,
            created_by=segment.created_by,
            created_at=segment.created_at,
        )


def _segments(context: Context) -> Segments:
    return Segments(context.kpis, context.kpis.driver, chain_id=context.kpis.chain_id)


def _branch_allowed(principal: Principal, branch_id: str | None) -> None:
    if branch_id is None:
        if not principal.is_chain_wide:
            raise ForbiddenError(
                f"this token covers branches {', '.join(sorted(principal.branches))}: "
                "save one branch's list with branch_id"
            )
    else:
        require_branch_access(principal, branch_id)


@router.post("/segments", status_code=201, response_model_by_alias=True)
async def save_segment(body: NewSegment, context: Context, principal: Reader) -> SegmentView:
    """Save a drill-down's customers as a segment and publish it for notification's campaigns."""
    _branch_allowed(principal, body.branch_id)
    try:
        period = Period(body.from_, body.to, context.timezone)
    except EmptyPeriodError:
        raise InvalidInputError("body.to", f"must be after body.from ({body.from_.isoformat()})") from None
    request = SegmentRequest(
        name=body.name,
        kpi=body.kpi,
        scope=Scope(period=period, branch_id=body.branch_id),
        filters=body.filters,
    )
    actor = Actor(kind="user", id=principal.user_id, role=principal.role.value)
    segment = await _segments(context).save(request, actor=actor, now=context.clock.now())
    return SegmentView.of(segment)


@router.get("/segments/{segment_id}", response_model_by_alias=True)
async def get_segment(segment_id: str, context: Context, principal: Reader) -> SegmentView:
    segment = await _segments(context).segment(segment_id)
    if segment is None:
        raise NotFoundError(f"no segment {segment_id}")
    _branch_allowed(principal, segment.drill_down.branch_id)
    return SegmentView.of(segment)
