"""What notification tells analytics about a campaign's audience, and the segments it takes from analytics:

- a launch publishes the audience as the control-group draw split it (CampaignAudienceDrawn): every
  customer not held out is treated, messaged or not (intention to treat); the control group as held out;
  ids only, in batches of at most 1,000, numbered across both groups;
- a segment analytics saved (SegmentSaved, in batches) can be targeted only once all its batches are here; a
  campaign on it reaches exactly its customers.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from notification_harness import Harness

from pitlane_events.analytics import DrillDown, SegmentSaved
from pitlane_events.customer_profile import CustomerErased, CustomerTagged
from pitlane_events.notification import AudienceGroup, CampaignAudienceDrawn
from pitlane_events.types import MAX_IDS_PER_BATCH, Channel
from pitlane_notification.service_layer.campaigns import audience_batches, in_control_group
from platform_flow import wait_until


async def campaign(harness: Harness, audience: dict[str, Any], **fields: Any) -> dict[str, Any]:
    created = await harness.post(
        "/v1/campaigns",
        {
            "name": "春季保养",
            "channel": "sms",
            "cost_fen": 80_000,
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-31",
            **audience,
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_a_launch_publishes_its_audience_as_the_draw_split_it_treated_whether_messaged_or_not(
    harness: Harness,
) -> None:
    customers = [f"c{n:02d}" for n in range(30)]
    no_consent = {"c03", "c04", "c11"}
    for n, customer_id in enumerate(customers):
        marketing = [] if customer_id in no_consent else [Channel.SMS]
        await harness.customer(customer_id, phone=f"+861380000{n:04d}", marketing=marketing)
        await harness.emit_and_wait(
            "customer-profile", CustomerTagged(customer_id=customer_id, tag="spring"), customer_id
        )
    while True:  # a draft whose 20% holds some customers and leaves a customer without consent treated
        draft = await campaign(harness, {"audience_tags": ["spring"]}, control_share_pct=20)
        control = {c for c in customers if in_control_group(draft["campaign_id"], c, 20)}
        if control and no_consent - control:
            break
    launched = await harness.post(f"/v1/campaigns/{draft['campaign_id']}/launch")
    assert launched.status_code == 200, launched.text

    drawn = await harness.published("notification.CampaignAudienceDrawn")
    by_group: dict[AudienceGroup, set[str]] = {group: set() for group in AudienceGroup}
    for envelope in drawn:
        assert envelope.aggregate_id == draft["campaign_id"]
        by_group[envelope.data.group] |= set(envelope.data.customer_ids)
    assert by_group[AudienceGroup.CONTROL] == control
    assert by_group[AudienceGroup.TREATED] == set(customers) - control  # no consent: treated all the same
    assert no_consent - control <= by_group[AudienceGroup.TREATED]
    assert [(e.data.batch_number, e.data.batch_count) for e in drawn] == [(1, 2), (2, 2)]
    # After CampaignLaunched (1) and CampaignSent (2), in the campaign's order.
    assert [e.aggregate_version for e in drawn] == [3, 4]
    recipients = (await harness.get(f"/v1/campaigns/{draft['campaign_id']}/recipients")).json()["recipients"]
    skipped = {r["customer_id"] for r in recipients if r["outcome"] == "no_consent"}
    assert skipped == no_consent - control and skipped <= by_group[AudienceGroup.TREATED]


def test_an_audience_goes_in_batches_of_at_most_a_thousand_numbered_across_both_groups() -> None:
    treated = [f"t{n}" for n in range(2_500)]
    control = [f"k{n}" for n in range(300)]

    batches = audience_batches("camp-1", treated=treated, control=control)

    assert [(b.group, len(b.customer_ids)) for b in batches] == [
        (AudienceGroup.TREATED, 1_000),
        (AudienceGroup.TREATED, 1_000),
        (AudienceGroup.TREATED, 500),
        (AudienceGroup.CONTROL, 300),
    ]
    assert [(b.batch_number, b.batch_count) for b in batches] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [c for b in batches[:3] for c in b.customer_ids] == treated
    assert all(len(b.customer_ids) <= MAX_IDS_PER_BATCH for b in batches)
    # An audience without a control group has no control batch; an empty one is one empty treated batch,
    # so that analytics learns it is whole.
    assert [b.group for b in audience_batches("camp-2", treated=treated[:5], control=[])] == [
        AudienceGroup.TREATED
    ]
    [empty] = audience_batches("camp-3", treated=[], control=[])
    assert (empty.group, empty.customer_ids, empty.batch_count) == (AudienceGroup.TREATED, (), 1)
    assert isinstance(empty, CampaignAudienceDrawn)


def segment_batch(number: int, count: int, customer_ids: tuple[str, ...]) -> SegmentSaved:
    return SegmentSaved(
        segment_id="seg-lapsed",
        segment_name="流失9–12个月",
        drill_down=DrillDown(
            kpi="customer-activity",
            period_from=date(2026, 11, 1),
            period_to=date(2026, 12, 1),
            filters={"status": "lapsed"},
        ),
        customer_ids=customer_ids,
        batch_number=number,
        batch_count=count,
        customer_count=5,
        created_by="ann",
    )


async def test_a_segment_from_analytics_is_targeted_once_all_its_batches_are_here_and_reaches_exactly_them(
    harness: Harness,
) -> None:
    members = ["s1", "s2", "s3", "s4", "s5"]
    for n, customer_id in enumerate([*members, "s6"]):
        await harness.customer(customer_id, phone=f"+861390000{n:04d}", marketing=[Channel.SMS])
    await harness.emit_and_wait(
        "customer-profile", CustomerErased(customer_id="s5", erasure_request_id="e1"), "s5"
    )

    first = harness.envelope("analytics", segment_batch(1, 3, ("s1", "s2")), "seg-lapsed")
    await harness.consumed("analytics", await harness.publish(first))
    early = await harness.post(
        "/v1/campaigns",
        {
            "name": "召回",
            "channel": "sms",
            "cost_fen": 1_000,
            "segment_id": "seg-lapsed",
            "starts_on": "2026-12-01",
            "ends_on": "2026-12-31",
        },
    )
    assert early.status_code == 422
    [problem] = early.json()["errors"]
    assert problem["field"] == "body.segment_id" and "1 of 3 batches" in problem["message"]

    rest = [
        harness.envelope("analytics", segment_batch(2, 3, ("s3", "s1")), "seg-lapsed"),  # s1 again: once
        harness.envelope("analytics", segment_batch(3, 3, ("s4", "s5")), "seg-lapsed"),
    ]
    sequence = await harness.publish(*rest)
    await harness.publish(rest[-1], msg_id="a-copy-after-the-dedupe-window")  # a redelivered batch
    await harness.consumed("analytics", sequence + 1)
    segment = (await harness.get("/v1/segments/seg-lapsed")).json()
    assert (segment["size"], segment["source"], segment["name"]) == (5, "analytics", "流失9–12个月")
    [row] = await harness.rows("SELECT customer_ids, drill_down, created_by FROM segments")
    assert row["customer_ids"] == ["s1", "s2", "s3", "s4", "s5"]  # in the batches' order, each once
    assert (row["drill_down"]["filters"], row["created_by"]) == ({"status": "lapsed"}, "ann")

    created = await campaign(harness, {"segment_id": "seg-lapsed"}, control_share_pct=0)
    launched = await harness.post(f"/v1/campaigns/{created['campaign_id']}/launch")
    assert launched.status_code == 200, launched.text
    recipients = (await harness.get(f"/v1/campaigns/{created['campaign_id']}/recipients")).json()[
        "recipients"
    ]
    assert {r["customer_id"] for r in recipients} == {"s1", "s2", "s3", "s4"}  # s5 erased, s6 not a member

    async def all_sent() -> bool:
        return len(await harness.messages(trigger="campaign", status="sent")) == 4

    await wait_until(all_sent)
    assert {m["customer_id"] for m in await harness.messages(trigger="campaign")} == {"s1", "s2", "s3", "s4"}
