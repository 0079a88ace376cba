"""A customer's "stop": an unsubscribe link opened without logging in, or a "T"/"TD" reply to our SMS. It is
honoured on every channel at once, recorded as the newest consent decision (a late, older grant from
customer-profile does not undo it), published as CustomerUnsubscribed, and marketing already queued for
the customer is withdrawn."""

from __future__ import annotations

import uuid
from datetime import datetime

from pitlane_events.notification import CustomerUnsubscribed, UnsubscribeSource
from pitlane_events.types import Channel, Purpose
from pitlane_notification.adapters import queries
from pitlane_notification.service_layer.delivery import ACTOR
from pitlane_platform.db import Unit, execute_on_driver
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext

MESSAGING_CHANNELS = (Channel.SMS, Channel.WECHAT, Channel.EMAIL)

_CONSENT_SOURCE = {UnsubscribeSource.LINK: "unsubscribe_link", UnsubscribeSource.SMS_REPLY: "sms_reply"}


async def unsubscribe(
    unit: Unit, customer_id: str, *, source: UnsubscribeSource, chain_id: str, now: datetime
) -> int:
    """Stop marketing to the customer on every channel; returns how many queued messages were withdrawn."""
    contact = await queries.contact(unit, customer_id)
    recipient = contact["customer_id"] if contact else customer_id
    context = CommandContext(actor=ACTOR, chain_id=chain_id, occurred_at=now)
    envelopes = []
    for channel in MESSAGING_CHANNELS:
        changed = await queries.record_consent(
            unit,
            recipient,
            channel.value,
            Purpose.MARKETING.value,
            granted=False,
            source=_CONSENT_SOURCE.get(source, source.value),
            at=now,
        )
        if changed:
            event = CustomerUnsubscribed(
                customer_id=recipient, channel=channel, purpose=Purpose.MARKETING, source=source
            )
            envelopes.append(context.envelope(event, aggregate_id=str(uuid.uuid4()), aggregate_version=1))
    await outbox.enqueue(unit, envelopes)
    row = await execute_on_driver(
        unit,
        "withdraw marketing",
        """
        WITH withdrawn AS (
            UPDATE messages SET status = 'suppressed', status_reason = 'unsubscribed'
            WHERE customer_id = %(c)s AND purpose = 'marketing' AND status = 'queued'
            RETURNING 1
        )
        SELECT count(*) FROM withdrawn
        """,
        {"c": recipient},
    )
    return int(row[0]) if row else 0
