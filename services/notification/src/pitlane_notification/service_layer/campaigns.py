"""Marketing campaigns: an audience (tags or a saved segment), one channel and template, a cost, coupons
unique per recipient, an attribution window, and a held-out control group.

Launching draws the control group — a fixed share of the audience chosen by a hash of the campaign and the
customer, so a relaunch or a replay draws the same people — and queues one marketing message per treated
customer through the pipeline, which sends only to customers who opted in to marketing on the channel and
are under the contact-frequency limit, and logs why the others got nothing. The control group gets
nothing at all: analytics compares what both groups spend (incremental revenue). So that it can, the launch
publishes the audience as the draw split it (CampaignAudienceDrawn, ids only, in batches of at most 1,000):
treated is everyone not held out, messaged or not (intention to treat, ADR 0021).

A segment is a saved list of customers: saved here (`POST /v1/segments`) or exported from one of analytics'
KPI drill-downs (analytics.SegmentSaved, assembled from its batches by `save_segment_batch`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pitlane_events import Envelope
from pitlane_events.analytics import SegmentSaved
from pitlane_events.notification import (
    AudienceGroup,
    CampaignAudienceDrawn,
    CampaignLaunched,
    CampaignSent,
)
from pitlane_events.types import Channel, Purpose, in_batches
from pitlane_notification.adapters import queries
from pitlane_notification.service_layer.customer_links import LinkMaker
from pitlane_notification.service_layer.delivery import ACTOR, Delivery
from pitlane_notification.service_layer.requests import MessageRequest, Related, Trigger
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_platform.errors import ConflictError, InvalidInputError, NotFoundError
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.security.links import AttributionKind

COUPON_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the counter


@dataclass(frozen=True)
class CampaignDraft:
    campaign_id: str
    name: str
    channel: Channel
    template: str
    audience_tags: tuple[str, ...]
    segment_id: str | None
    cost_fen: int
    attribution_window_days: int
    control_share_pct: int
    coupon_prefix: str | None
    starts_on: date
    ends_on: date
    branch_ids: tuple[str, ...]


@dataclass(frozen=True)
class Launched:
    campaign_id: str
    audience: int
    recipients: int
    control_group: int
    skipped_without_consent: int
    limited: int


def in_control_group(campaign_id: str, customer_id: str, share_pct: int) -> bool:
    """Deterministic: the same customer is in or out of a campaign's control group on every draw."""
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < share_pct


def coupon_code(prefix: str | None) -> str:
    code = "".join(secrets.choice(COUPON_ALPHABET) for _ in range(8))
    return f"{prefix}-{code}" if prefix else code


@dataclass
class Campaigns:
    delivery: Delivery
    links: LinkMaker

    async def create(self, unit: Unit, draft: CampaignDraft, now: datetime) -> None:
        if draft.segment_id is not None and not await self._segment(unit, draft.segment_id):
            arrived = await self._segment_batches_arrived(unit, draft.segment_id)
            if arrived is not None:
                raise InvalidInputError(
                    "body.segment_id",
                    f"segment {draft.segment_id} is still arriving from analytics "
                    f"({arrived[0]} of {arrived[1]} batches); try again in a moment",
                )
            raise InvalidInputError("body.segment_id", f"no segment {draft.segment_id}")
        row = await execute_on_driver(
            unit,
            "create campaign",
            """
            INSERT INTO campaigns (campaign_id, name, channel, template, audience, cost_fen, attribution_window_days,
                                   control_share_pct, coupon_prefix, starts_on, ends_on, branch_ids, status,
                                   created_at)
            VALUES (%(id)s, %(name)s, %(channel)s, %(template)s, %(audience)s::jsonb, %(cost)s, %(window)s,
                    %(control)s, %(prefix)s, %(starts)s, %(ends)s, %(branches)s::jsonb, 'draft', %(now)s)
            ON CONFLICT (campaign_id) DO NOTHING
            RETURNING 1
            """,
            {
                "id": draft.campaign_id,
                "name": draft.name,
                "channel": draft.channel.value,
                "template": draft.template,
                "audience": json.dumps(
                    {"segment_id": draft.segment_id}
                    if draft.segment_id
                    else {"tags": list(draft.audience_tags)}
                ),
                "cost": draft.cost_fen,
                "window": draft.attribution_window_days,
                "control": draft.control_share_pct,
                "prefix": draft.coupon_prefix,
                "starts": draft.starts_on.isoformat(),
                "ends": draft.ends_on.isoformat(),
                "branches": json.dumps(list(draft.branch_ids)),
                "now": now,
            },
        )
        if row is None:
            raise ConflictError(f"campaign {draft.campaign_id} exists already")

    async def launch(self, unit: Unit, campaign_id: str, now: datetime) -> Launched:
        campaign = await self.campaign(unit, campaign_id, lock=True)
        if campaign["status"] != "draft":
            raise ConflictError(f"campaign {campaign_id} was launched already")
        audience = await self._audience(unit, campaign["audience"])
        channel = Channel(campaign["channel"])
        branch_ids = list(campaign["branch_ids"])
        sent = no_consent = limited = 0
        treated: list[str] = []
        held_out: list[str] = []
        for customer_id in audience:
            if in_control_group(campaign_id, customer_id, campaign["control_share_pct"]):
                await self._recipient(
                    unit, campaign_id, customer_id, control=True, coupon=None, outcome="control"
                )
                held_out.append(customer_id)
                continue
            treated.append(customer_id)
            coupon = coupon_code(campaign["coupon_prefix"])
            queued = await self.delivery.queue(
                unit,
                MessageRequest(
                    trigger=Trigger.CAMPAIGN,
                    purpose=Purpose.MARKETING,
                    customer_id=customer_id,
                    cause=f"campaign:{campaign_id}",
                    due_at=now,
                    branch_id=branch_ids[0] if len(branch_ids) == 1 else None,
                    context={
                        "campaign_name": campaign["name"],
                        "coupon_code": coupon,
                        "link": self.links.booking(
                            AttributionKind.CAMPAIGN,
                            campaign_id,
                            branch_ids[0] if len(branch_ids) == 1 else None,
                            now,
                        ),
                        "unsubscribe_url": self.links.unsubscribe(customer_id, channel.value, now),
                    },
                    related=Related(campaign_id=campaign_id),
                    channels=(channel,),
                    template=campaign["template"],
                ),
            )
            refusal = queued.refusal if queued else "duplicate"
            outcome = "sent" if refusal is None else _outcome(refusal)
            await self._recipient(
                unit,
                campaign_id,
                customer_id,
                control=False,
                coupon=coupon if refusal is None else None,
                outcome=outcome,
                message_id=queued.message_id if queued else None,
            )
            sent += outcome == "sent"
            no_consent += outcome == "no_consent"
            limited += outcome == "limited"
        await execute_on_driver(
            unit,
            "launch campaign",
            """
            UPDATE campaigns SET status = 'launched', launched_at = %(now)s, recipients = %(sent)s,
                control_group = %(control)s, skipped_without_consent = %(skipped)s
            WHERE campaign_id = %(id)s
            """,
            {"id": campaign_id, "now": now, "sent": sent, "control": len(held_out), "skipped": no_consent},
        )
        coupons = await fetch_on_driver(
            unit,
            "campaign coupons",
            """
            SELECT coupon_code FROM campaign_recipients
            WHERE campaign_id = %(id)s AND coupon_code IS NOT NULL ORDER BY coupon_code
            """,
            {"id": campaign_id},
        )
        context = CommandContext(actor=ACTOR, chain_id=self.delivery.chain_id, occurred_at=now)
        launched = CampaignLaunched(
            campaign_id=campaign_id,
            campaign_name=campaign["name"],
            cost_fen=campaign["cost_fen"],
            attribution_window_days=campaign["attribution_window_days"],
            starts_on=date.fromisoformat(campaign["starts_on"]),
            ends_on=date.fromisoformat(campaign["ends_on"]),
            coupon_codes=tuple(row[0] for row in coupons),
            branch_ids=tuple(branch_ids),
        )
        sent_event = CampaignSent(
            campaign_id=campaign_id, channel=channel, recipients=sent, skipped_without_consent=no_consent
        )
        audience_drawn = audience_batches(campaign_id, treated=treated, control=held_out)
        await outbox.enqueue(
            unit,
            [
                context.envelope(launched, aggregate_id=campaign_id, aggregate_version=1),
                context.envelope(sent_event, aggregate_id=campaign_id, aggregate_version=2),
                *(
                    context.envelope(batch, aggregate_id=campaign_id, aggregate_version=3 + n)
                    for n, batch in enumerate(audience_drawn)
                ),
            ],
        )
        return Launched(campaign_id, len(audience), sent, len(held_out), no_consent, limited)

    async def campaign(self, unit: Unit, campaign_id: str, *, lock: bool = False) -> dict[str, Any]:
        rows = await fetch_on_driver(
            unit,
            "campaign",
            "SELECT * FROM campaigns WHERE campaign_id = %(id)s" + (" FOR UPDATE" if lock else ""),
            {"id": campaign_id},
            as_dicts=True,
        )
        if not rows:
            raise NotFoundError(f"no campaign {campaign_id}")
        return rows[0]

    async def recipients(self, unit: Unit, campaign_id: str) -> list[dict[str, Any]]:
        await self.campaign(unit, campaign_id)
        return await fetch_on_driver(
            unit,
            "campaign recipients",
            """
            SELECT customer_id, in_control_group, coupon_code, outcome, message_id FROM campaign_recipients
            WHERE campaign_id = %(id)s ORDER BY customer_id
            """,
            {"id": campaign_id},
            as_dicts=True,
        )

    async def _audience(self, unit: Unit, audience: dict[str, Any]) -> list[str]:
        if audience.get("segment_id"):
            members = await self._segment(unit, audience["segment_id"]) or []
            alive = []
            for customer_id in members:
                contact = await queries.contact(unit, customer_id)
                if (
                    contact is not None
                    and contact["erased_at"] is None
                    and contact["customer_id"] not in alive
                ):
                    alive.append(contact["customer_id"])
            return alive
        return await queries.customers_tagged(unit, audience.get("tags", []))

    async def save_segment_batch(self, unit: Unit, envelope: Envelope[Any], batch: SegmentSaved) -> None:
        """Keep one batch of a segment analytics saved; with the last one in, the segment is written whole
        (its batches joined in order), and a campaign can target it. A redelivered batch changes nothing.
        Batches of one segment are one aggregate's events: the consumer applies them one at a time."""
        await execute_on_driver(
            unit,
            "segment batch",
            """
            INSERT INTO segment_batches (segment_id, batch_number, batch_count, customer_ids, event_id)
            VALUES (%(id)s, %(number)s, %(count)s, %(members)s::jsonb, %(event)s)
            ON CONFLICT DO NOTHING
            """,
            {
                "id": batch.segment_id,
                "number": batch.batch_number,
                "count": batch.batch_count,
                "members": json.dumps(list(batch.customer_ids)),
                "event": str(envelope.event_id),
            },
        )
        batches = await fetch_on_driver(
            unit,
            "segment batches",
            "SELECT customer_ids FROM segment_batches WHERE segment_id = %(id)s ORDER BY batch_number",
            {"id": batch.segment_id},
        )
        if len(batches) < batch.batch_count:
            return
        members = segment_members([customer_id for (ids,) in batches for customer_id in ids])
        await execute_on_driver(
            unit,
            "segment from analytics",
            """
            INSERT INTO segments (segment_id, name, customer_ids, created_at, created_by, source, drill_down)
            VALUES (%(id)s, %(name)s, %(members)s::jsonb, %(at)s, %(by)s, 'analytics', %(drill_down)s::jsonb)
            ON CONFLICT (segment_id) DO NOTHING
            """,
            {
                "id": batch.segment_id,
                "name": batch.segment_name,
                "members": json.dumps(members),
                "at": envelope.occurred_at,
                "by": batch.created_by,
                "drill_down": batch.drill_down.model_dump_json(),
            },
        )

    async def _segment_batches_arrived(self, unit: Unit, segment_id: str) -> tuple[int, int] | None:
        """(batches arrived, batches in all) of an analytics segment not yet whole; None if none arrived."""
        row = await execute_on_driver(
            unit,
            "segment arriving",
            "SELECT count(*), max(batch_count) FROM segment_batches WHERE segment_id = %(id)s",
            {"id": segment_id},
        )
        return (row[0], row[1]) if row and row[0] else None

    async def _segment(self, unit: Unit, segment_id: str) -> list[str] | None:
        row = await execute_on_driver(
            unit, "segment", "SELECT customer_ids FROM segments WHERE segment_id = %(id)s", {"id": segment_id}
        )
        return list(row[0]) if row else None

    async def _recipient(
        self,
        unit: Unit,
        campaign_id: str,
        customer_id: str,
        *,
        control: bool,
        coupon: str | None,
        outcome: str,
        message_id: str | None = None,
    ) -> None:
        await execute_on_driver(
            unit,
            "campaign recipient",
            """
            INSERT INTO campaign_recipients (campaign_id, customer_id, in_control_group, coupon_code, outcome,
                                             message_id)
            VALUES (%(c)s, %(cu)s, %(ctl)s, %(coupon)s, %(outcome)s, %(m)s)
            """,
            {
                "c": campaign_id,
                "cu": customer_id,
                "ctl": control,
                "coupon": coupon,
                "outcome": outcome,
                "m": message_id,
            },
        )


def _outcome(refusal: str) -> str:
    if refusal == "frequency_limit":
        return "limited"
    if refusal.startswith(("no_consent", "consent_withdrawn")):
        return "no_consent"
    if refusal.startswith("no_address"):
        return "no_contact"
    return "not_sent"


def segment_members(customer_ids: Sequence[str]) -> list[str]:
    """A segment's members, each once, in the order given."""
    return list(dict.fromkeys(customer_ids))


def audience_batches(
    campaign_id: str, *, treated: Sequence[str], control: Sequence[str]
) -> list[CampaignAudienceDrawn]:
    """A launched campaign's audience as analytics reads it: the treated batches, then the control group's,
    numbered across both. An empty group has no batch; an empty audience is one empty treated batch."""
    groups = [
        (group, batch)
        for group, members in ((AudienceGroup.TREATED, treated), (AudienceGroup.CONTROL, control))
        for batch in in_batches(members)
        if batch
    ] or [(AudienceGroup.TREATED, ())]
    return [
        CampaignAudienceDrawn(
            campaign_id=campaign_id,
            group=group,
            customer_ids=batch,
            batch_number=number,
            batch_count=len(groups),
        )
        for number, (group, batch) in enumerate(groups, start=1)
    ]
