"""A campaign measured against its control group, and a drill-down saved as a segment a campaign targets —
notification and analytics running side by side against real PostgreSQL (a database each) and one real
NATS, talking only through the streams, as in production.

1. A campaign with a 10% control group: notification sends nothing to a control customer and one message to
   each treated customer who consented; analytics' campaign-roi gives the treated and control counts, the
   revenue per customer of each group and the incremental revenue — (revenue per treated − revenue per
   control customer) × treated customers — all computed here independently from the scripted visits.
2. Lapsed customers (last visit 9–12 months before `to`) saved as a segment on analytics reach notification,
   and a campaign launched on the segment messages exactly them.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from analytics_harness import Harness as AnalyticsHarness
from analytics_harness import running as running_analytics
from analytics_harness import shanghai

from pitlane_events import Envelope
from pitlane_events.customer_profile import CustomerErased, CustomersMerged, CustomerTagged
from pitlane_events.types import Channel
from pitlane_events.workorder import WorkOrderOpened, WorkOrderVoided
from pitlane_notification.service_layer.campaigns import in_control_group
from pitlane_platform.clock import FixedClock
from pitlane_platform.testing.jetstream import wait_until
from pitlane_platform.testing.shop import work_order_completed, work_order_opened

# notification's own test harness (its customers, with contacts and consent, as customer-profile publishes them)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "notification" / "tests"))
from notification_harness import Harness as NotificationHarness
from notification_harness import running as running_notification

BRANCH = "b1"
LAUNCH = shanghai(2026, 3, 2, 10)  # Monday 2 March 2026, 10:00 in Shanghai
WINDOW_DAYS = 30
# The measurement window: from the launch to the local midnight after its 30th day, 1 April 00:00 Shanghai.
WINDOW_END = shanghai(2026, 4, 1, 0)
PERIOD = {"from": "2026-03-01", "to": "2026-05-01"}


@dataclass
class Services:
    notification: NotificationHarness
    analytics: AnalyticsHarness

    async def to_both(self, source: str, *envelopes: Envelope[Any]) -> None:
        """Publish on `source`'s stream and wait until both services' consumers have acked (the last envelope
        must be of a type both consume: a consumer's ack floor stays at the last message it was given)."""
        sequence = await self.notification.publish(*envelopes)
        await self.notification.consumed(source, sequence)
        await self.analytics.consumed(source, sequence)


@asynccontextmanager
async def both_services(
    make_database: Callable[[str], str], nats_url: str, **notification_settings: Any
) -> AsyncIterator[Services]:
    async with (
        running_notification(
            make_database("notification"), nats_url, clock=FixedClock(LAUNCH), **notification_settings
        ) as notification,
        running_analytics(make_database("analytics"), nats_url) as analytics,
    ):
        await notification.open_branch(BRANCH)
        yield Services(notification, analytics)


async def customers_registered(
    services: Services, customer_ids: Sequence[str], *, consenting: set[str]
) -> None:
    """Registered in customer-profile with a phone each; SMS marketing consent for `consenting`; tagged."""
    for n, customer_id in enumerate(customer_ids):
        marketing = [Channel.SMS] if customer_id in consenting else []
        await services.notification.customer(customer_id, phone=f"+861380000{n:04d}", marketing=marketing)
    tagged = [
        services.notification.envelope("customer-profile", CustomerTagged(customer_id=c, tag="winback"), c)
        for c in customer_ids
    ]
    await services.notification.consumed("customer-profile", await services.notification.publish(*tagged))


def visit(
    analytics: AnalyticsHarness, work_order_id: str, customer_id: str, at: datetime, paid_fen: int
) -> list[Envelope[Any]]:
    """A work order opened and completed at `at`, paid `paid_fen`, as workorder publishes it."""
    opened: WorkOrderOpened = work_order_opened(work_order_id, customer_id, f"v-{customer_id}")
    completed = work_order_completed(
        work_order_id, customer_id, f"v-{customer_id}", branch_id=BRANCH, completed_at=at, total_fen=paid_fen
    )
    return [
        analytics.event_at(at, opened, work_order_id, branch_id=BRANCH),
        analytics.event_at(at, completed, work_order_id, branch_id=BRANCH),
    ]


async def campaign_messages(notification: NotificationHarness) -> list[str]:
    """The customer of every message the recording provider was handed for a campaign (its "handset")."""
    rows = await notification.rows(
        """
        SELECT m.customer_id FROM recorded_messages r JOIN messages m ON m.message_id = r.message_id
        WHERE m.trigger = 'campaign' ORDER BY m.customer_id
        """
    )
    return [row["customer_id"] for row in rows]


async def new_campaign(
    notification: NotificationHarness, audience: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    created = await notification.post(
        "/v1/campaigns",
        {
            "name": "老客召回",
            "channel": "sms",
            "cost_fen": 150_000,
            "attribution_window_days": WINDOW_DAYS,
            "starts_on": "2026-03-02",
            "ends_on": "2026-03-31",
            **audience,
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def test_a_control_group_gets_nothing_and_incremental_revenue_is_measured_against_it(
    make_database: Callable[[str], str], nats_url: str
) -> None:
    customers = [f"c{n:02d}" for n in range(40)]
    no_consent = {"c05", "c06", "c07", "c21"}  # treated all the same when not held out: intention to treat
    async with both_services(make_database, nats_url) as services:
        notification, analytics = services.notification, services.analytics
        await customers_registered(services, customers, consenting=set(customers) - no_consent)

        # The draw is a hash of campaign and customer: take a draft whose 10% holds a few customers, and
        # leaves some customers without consent among the treated (drafts cost nothing).
        while True:
            campaign = await new_campaign(notification, {"audience_tags": ["winback"]}, control_share_pct=10)
            control = {c for c in customers if in_control_group(campaign["campaign_id"], c, 10)}
            if len(control) >= 2 and no_consent - control:
                break
        treated = set(customers) - control
        campaign_id = campaign["campaign_id"]
        launched = await notification.post(f"/v1/campaigns/{campaign_id}/launch")
        assert launched.status_code == 200, launched.text

        # notification: nothing at all to the control group, one message to each consenting treated customer.
        messaged = treated - no_consent

        async def all_sent() -> bool:
            return len(await campaign_messages(notification)) >= len(messaged)

        await wait_until(all_sent)
        recorded = await campaign_messages(notification)
        assert sorted(recorded) == sorted(messaged)  # each once
        assert not control & set(recorded)
        logged = await notification.rows(
            "SELECT customer_id FROM messages WHERE campaign_id = %(c)s", c=campaign_id
        )
        assert not control & {row["customer_id"] for row in logged}  # not even suppressed: never queued

        # The visits: per treated and control customer, in and out of the window.
        merged_away = "c-old-" + sorted(control)[0]  # a control customer's older record, merged into them
        await services.to_both(
            "customer-profile",
            notification.envelope(
                "customer-profile",
                CustomersMerged(surviving_customer_id=sorted(control)[0], merged_customer_ids=(merged_away,)),
                sorted(control)[0],
            ),
        )
        scripted: list[tuple[str, str, datetime, int]] = []  # (work order, customer as recorded, at, paid)
        for n, customer_id in enumerate(customers):
            if n % 3 != 2:  # a third of the customers do not come back
                scripted.append(
                    (f"w-{customer_id}-1", customer_id, shanghai(2026, 3, 3 + n % 25, 11), 9_000 + 731 * n)
                )
            if n % 4 == 0:
                scripted.append(
                    (f"w-{customer_id}-2", customer_id, shanghai(2026, 3, 20, 15), 23_456 + 17 * n)
                )
        first_treated, first_control = sorted(treated)[0], sorted(control)[0]
        scripted += [
            ("w-before", first_treated, shanghai(2026, 3, 1, 15), 50_000),  # before the launch: out
            ("w-launch-day", first_treated, shanghai(2026, 3, 2, 9, 59), 40_000),  # 1 minute before: out
            ("w-last-evening", first_treated, shanghai(2026, 3, 31, 23, 30), 33_333),  # 31 March 23:30: in
            ("w-after", first_treated, shanghai(2026, 4, 1, 0, 30), 70_000),  # 1 April 00:30: out
            ("w-control-late", first_control, shanghai(2026, 4, 2, 10), 80_000),  # after the window: out
            ("w-merged", merged_away, shanghai(2026, 3, 10, 10), 12_345),  # the control survivor's: in
            ("w-voided", first_treated, shanghai(2026, 3, 11, 10), 99_999),  # voided afterwards: out
        ]
        envelopes = [
            e
            for order, customer_id, at, paid in scripted
            for e in visit(analytics, order, customer_id, at, paid)
        ]
        voided = WorkOrderVoided(
            work_order_id="w-voided", customer_id=first_treated, reason="重复开单", manager_id="mgr-1"
        )
        envelopes.append(analytics.event_at(shanghai(2026, 3, 12, 9), voided, "w-voided", branch_id=BRANCH))
        await analytics.deliver(envelopes)

        # Worked out here, from the script alone.
        survivor = {merged_away: first_control}
        revenue = dict.fromkeys(customers, 0)
        for order, customer_id, at, paid in scripted:
            if order != "w-voided" and LAUNCH <= at < WINDOW_END:
                revenue[survivor.get(customer_id, customer_id)] += paid
        treated_revenue = sum(revenue[c] for c in treated)
        control_revenue = sum(revenue[c] for c in control)
        per_treated = Fraction(treated_revenue, len(treated))
        per_control = Fraction(control_revenue, len(control))
        incremental = round((per_treated - per_control) * len(treated))  # half to even, once

        async def measured() -> bool:
            answer = await analytics.kpi("/v1/kpis/campaign-roi", **PERIOD)
            return any(row["audience_complete"] for row in answer["campaigns"])

        await wait_until(measured)
        [row] = (await analytics.kpi("/v1/kpis/campaign-roi", **PERIOD))["campaigns"]
        assert (row["campaign_id"], row["treated_customers"], row["control_customers"]) == (
            campaign_id,
            len(treated),
            len(control),
        )
        assert (row["treated_revenue_fen"], row["control_revenue_fen"]) == (treated_revenue, control_revenue)
        assert row["revenue_per_treated_fen"] == round(per_treated)
        assert row["revenue_per_control_fen"] == round(per_control)
        assert row["incremental_revenue_fen"] == incremental
        assert row["incremental_roi"]["numerator"] == incremental - 150_000
        assert row["incremental_roi"]["denominator"] == 150_000
        assert row["window_closed"] is True
        assert row["measured_until"] == "2026-03-31T16:00:00Z"  # 1 April 00:00 in Shanghai
        assert row["recipients"] == len(messaged)  # beside it, what CampaignSent said was sent

        # Before the window has closed, the figures are the campaign's so far: March only.
        march = await analytics.kpi("/v1/kpis/campaign-roi", **{"from": "2026-03-01", "to": "2026-03-21"})
        [so_far] = march["campaigns"]
        assert so_far["window_closed"] is False and so_far["measured_until"] == "2026-03-20T16:00:00Z"
        treated_so_far = sum(
            paid
            for order, customer_id, at, paid in scripted
            if survivor.get(customer_id, customer_id) in treated
            and order != "w-voided"
            and LAUNCH <= at < shanghai(2026, 3, 21, 0)
        )
        assert so_far["treated_revenue_fen"] == treated_so_far


async def test_lapsed_customers_saved_as_a_segment_reach_notification_and_a_campaign_targets_exactly_them(
    make_database: Callable[[str], str], nats_url: str
) -> None:
    # To 1 March 2026, lapsed is a last visit in [1 March 2025, 1 June 2025) in Shanghai.
    last_visits = {
        "s1": [shanghai(2025, 4, 10)],  # lapsed
        "s2": [shanghai(2025, 3, 1, 0, 30)],  # lapsed: the window's first half hour
        "s3": [shanghai(2024, 11, 2), shanghai(2025, 5, 31, 23, 30)],  # lapsed: its last half hour
        "s4": [shanghai(2025, 6, 1, 0, 30)],  # 9 months less half an hour: not yet lapsed
        "s5": [shanghai(2025, 2, 28, 23, 30)],  # over 12 months: gone, not lapsed
        "s6": [shanghai(2025, 4, 1), shanghai(2026, 1, 10)],  # came back since
        "s7": [shanghai(2025, 4, 20)],  # lapsed, but erased: never contacted again
        "s8-old": [shanghai(2025, 5, 5)],  # lapsed under a record since merged into s8
    }
    customers = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"]
    # A high contact limit: the old visits' surveys must not stand in the campaign's way here.
    async with both_services(make_database, nats_url, contact_limit_max=100) as services:
        notification, analytics = services.notification, services.analytics
        await customers_registered(services, customers, consenting=set(customers))
        await services.to_both(
            "customer-profile",
            notification.envelope(
                "customer-profile",
                CustomersMerged(surviving_customer_id="s8", merged_customer_ids=("s8-old",)),
                "s8",
            ),
            notification.envelope(
                "customer-profile", CustomerErased(customer_id="s7", erasure_request_id="er-1"), "s7"
            ),
        )
        await analytics.deliver(
            [
                envelope
                for customer_id, moments in last_visits.items()
                for n, at in enumerate(moments)
                for envelope in visit(analytics, f"w-{customer_id}-{n}", customer_id, at, 30_000)
            ]
        )
        lapsed = {"s1", "s2", "s3", "s8"}
        drill_down = await analytics.kpi(
            "/v1/kpis/customer-activity", **{"from": "2026-02-01", "to": "2026-03-01", "status": "lapsed"}
        )
        assert {row["customer_id"] for row in drill_down["customers"]} == lapsed | {"s7"}
        assert drill_down["lapsed_9_12_months"] == 5
        assert [row["erased"] for row in drill_down["customers"] if row["customer_id"] == "s7"] == [True]

        saved = await analytics.post(
            "/v1/segments",
            {
                "name": "流失9–12个月",
                "kpi": "customer-activity",
                "from": "2026-02-01",
                "to": "2026-03-01",
                "filters": {"status": "lapsed"},
            },
            role="analyst",
            sub="ann",
        )
        assert saved.status_code == 201, saved.text
        segment = saved.json()
        assert set(segment["customer_ids"]) == lapsed and segment["customer_count"] == 4
        assert segment["drill_down"] == {
            "kpi": "customer-activity",
            "from": "2026-02-01",
            "to": "2026-03-01",
            "branch_id": None,
            "filters": {"status": "lapsed"},
        }
        [published] = await analytics.published("analytics.SegmentSaved")
        assert (published.data.batch_number, published.data.batch_count, published.actor.id) == (1, 1, "ann")

        async def arrived() -> bool:
            return (await notification.get(f"/v1/segments/{segment['segment_id']}")).status_code == 200

        await wait_until(arrived)
        at_notification = (await notification.get(f"/v1/segments/{segment['segment_id']}")).json()
        assert (at_notification["size"], at_notification["source"]) == (4, "analytics")

        campaign = await new_campaign(
            notification, {"segment_id": segment["segment_id"]}, control_share_pct=0
        )
        launched = await notification.post(f"/v1/campaigns/{campaign['campaign_id']}/launch")
        assert launched.status_code == 200, launched.text
        recipients = (await notification.get(f"/v1/campaigns/{campaign['campaign_id']}/recipients")).json()
        assert {(r["customer_id"], r["outcome"]) for r in recipients["recipients"]} == {
            (c, "sent") for c in lapsed
        }

        async def all_sent() -> bool:
            return len(await campaign_messages(notification)) >= len(lapsed)

        await wait_until(all_sent)
        assert sorted(await campaign_messages(notification)) == sorted(lapsed)
