"""Events published by analytics: saved segments, the customers of a KPI drill-down an analyst exported for a
campaign to target (ADR 0021: analytics publishes only what it derives from its own read models)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from pitlane_events.model import DomainEvent, event
from pitlane_events.types import Code, Id, IdBatch, ValueObject

SegmentName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class DrillDown(ValueObject):
    """The KPI drill-down a segment was exported from, as analytics' API was asked for it."""

    kpi: Code
    """The KPI whose list it is, e.g. customer-activity, nps, declined-work-recovery."""
    period_from: date
    """First local day of the period asked for (the chain's time zone)."""
    period_to: date
    """First local day after the period (half-open: [from, to))."""
    branch_id: Id | None = None
    """The branch the list was for; null: the whole chain."""
    filters: dict[Code, Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=dict
    )
    """What narrowed the list, e.g. {"status": "lapsed"} or {"group": "detractor"}."""


@event("analytics.SegmentSaved", 1)
class SegmentSaved(DomainEvent):
    """One batch of a saved segment: the customers of a KPI drill-down, resolved by analytics when it was
    saved (merged customers as the survivor, erased customers left out), for a notification campaign to
    target by `segment_id`. A segment is published in batches of at most 1,000 ids, all at once; a reader
    has it whole when it holds batches 1 to `batch_count`. Ids only."""

    segment_id: Id
    """The segment's id; a campaign targets it by this id."""
    segment_name: SegmentName
    """The name the analyst gave it, e.g. 流失9–12个月的客户."""
    drill_down: DrillDown
    """The drill-down the customers were taken from."""
    customer_ids: IdBatch
    """The customers of this batch; at most 1,000."""
    batch_number: Annotated[int, Field(ge=1)]
    """This batch's number, from 1."""
    batch_count: Annotated[int, Field(ge=1)]
    """How many batches the segment was published in."""
    customer_count: Annotated[int, Field(ge=1)]
    """Customers in the whole segment (every batch together)."""
    created_by: Id
    """The user who saved it."""

    @model_validator(mode="after")
    def _numbered_within_the_count(self) -> SegmentSaved:
        if self.batch_number > self.batch_count:
            raise ValueError("batch_number must not exceed batch_count")
        return self
