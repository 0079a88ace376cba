"""Lists of customers travel in batches (CampaignAudienceDrawn, SegmentSaved): the fullest batch the models
allow stays far below NATS's 1 MiB max payload, a larger one is refused where it is made, and a batch's
number never exceeds its count — so a reader knows when it holds the whole list."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from pitlane_events import Actor, DomainEvent, Envelope, encode
from pitlane_events.analytics import DrillDown, SegmentSaved
from pitlane_events.notification import AudienceGroup, CampaignAudienceDrawn
from pitlane_events.types import MAX_IDS_PER_BATCH, in_batches

NATS_DEFAULT_MAX_PAYLOAD = 1024 * 1024
LONGEST_ID = "x" * 64


def audience(customer_ids: tuple[str, ...], number: int = 1, count: int = 1) -> CampaignAudienceDrawn:
    return CampaignAudienceDrawn(
        campaign_id=LONGEST_ID,
        group=AudienceGroup.TREATED,
        customer_ids=customer_ids,
        batch_number=number,
        batch_count=count,
    )


def segment(customer_ids: tuple[str, ...], number: int = 1, count: int = 1) -> SegmentSaved:
    return SegmentSaved(
        segment_id=LONGEST_ID,
        segment_name="流" * 100,
        drill_down=DrillDown(
            kpi="customer-activity",
            period_from=date(2026, 2, 1),
            period_to=date(2026, 3, 1),
            branch_id=LONGEST_ID,
            filters={"status": "lapsed", "days": "365"},
        ),
        customer_ids=customer_ids,
        batch_number=number,
        batch_count=count,
        customer_count=max(len(customer_ids), 1),
        created_by=LONGEST_ID,
    )


def wire_size(event: DomainEvent) -> int:
    envelope = Envelope.new(
        event,
        chain_id=LONGEST_ID,
        branch_id=LONGEST_ID,
        aggregate_id=LONGEST_ID,
        aggregate_version=1_000_000,
        actor=Actor(kind="user", id=LONGEST_ID, role="analyst"),
        occurred_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    message = encode(envelope)
    return len(message.payload) + sum(len(k) + len(v) + 4 for k, v in message.headers.items())


@pytest.mark.parametrize("make", [audience, segment], ids=["CampaignAudienceDrawn", "SegmentSaved"])
def test_the_fullest_batch_stays_far_below_the_brokers_max_payload(make) -> None:
    fullest = make(tuple(f"{n:064d}" for n in range(MAX_IDS_PER_BATCH)))

    assert wire_size(fullest) < NATS_DEFAULT_MAX_PAYLOAD // 10


@pytest.mark.parametrize("make", [audience, segment], ids=["CampaignAudienceDrawn", "SegmentSaved"])
def test_a_batch_over_the_limit_or_numbered_past_its_count_is_refused(make) -> None:
    with pytest.raises(ValidationError, match="customer_ids"):
        make(tuple(f"c{n}" for n in range(MAX_IDS_PER_BATCH + 1)))
    with pytest.raises(ValidationError, match="batch_number must not exceed batch_count"):
        make(("c1",), number=3, count=2)


def test_a_list_is_cut_in_order_into_full_batches_and_an_empty_one_is_one_empty_batch() -> None:
    ids = [f"c{n}" for n in range(2_001)]

    batches = in_batches(ids)

    assert [len(batch) for batch in batches] == [1_000, 1_000, 1]
    assert [customer for batch in batches for customer in batch] == ids
    assert in_batches([]) == [()]
