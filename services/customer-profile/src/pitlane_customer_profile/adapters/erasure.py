"""Erasure (PIPL right to deletion, ADR 0006): what leaves the database, and what leaves the stream.

In the database, in the erasure's transaction: the customer's data keys are deleted (their stored events
become unreadable ciphertext), the personal columns of the read model are cleared, phones are freed,
vehicles lose their link to the customer, and the outbox rows that still hold plaintext copies are deleted.
Figures (visits, spend) stay under the now anonymous id.

In the stream, after the CustomerErased event is published: the published copies of the customer's
personal events are securely deleted (JetStream overwrites the message), see `scrub_published_copies`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as JsNotFoundError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.event_store import PERSONAL_FIELDS
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.adapters.tables import customer_phones, customers, vehicles
from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.schema import events, outbox


async def forget_customers(
    session: AsyncSession, vault: PiiVault, customer_ids: Sequence[str], *, at: datetime
) -> None:
    ids = list(customer_ids)
    await session.execute(
        delete(outbox).where(
            outbox.c.event_id.in_(select(events.c.event_id).where(events.c.stream_id.in_(ids)))
        )
    )
    await vault.shred(session, ids)
    await session.execute(
        update(customers)
        .where(customers.c.customer_id.in_(ids))
        .values(
            full_name=None,
            primary_phone=None,
            wechat_id=None,
            gender=None,
            birthday=None,
            referrer_customer_id=None,
            tags=[],
            preferred_services=[],
            notes=None,
            custom_fields={},
            consents={},
            latest_nps_comment=None,
            erased_at=at,
        )
    )
    await session.execute(delete(customer_phones).where(customer_phones.c.customer_id.in_(ids)))
    await session.execute(
        update(vehicles).where(vehicles.c.owner_customer_id.in_(ids)).values(owner_customer_id=None)
    )


async def personal_event_ids(session: AsyncSession, customer_ids: Sequence[str]) -> set[str]:
    rows = await session.execute(
        select(events.c.event_id).where(
            events.c.stream_id.in_(list(customer_ids)), events.c.event_type.in_(list(PERSONAL_FIELDS))
        )
    )
    return {str(event_id) for event_id in rows.scalars()}


def personal_subjects() -> list[str]:
    """Stream subjects that can carry personal data, any branch token, any version."""
    return sorted(f"{service}.*.{name}.*" for service, name in (t.split(".", 1) for t in PERSONAL_FIELDS))


async def scrub_published_copies(js: JetStreamContext, stream: str, event_ids: set[str]) -> int:
    """Securely delete the stream messages whose `Nats-Msg-Id` is one of `event_ids`; the number deleted.

    The scan reads headers only, of the personal event subjects only, through a short-lived consumer. It
    costs one pass over those messages, which is acceptable for a rare, audited operation."""
    if not event_ids:
        return 0
    name = f"customer-profile_scrub_{uuid.uuid4().hex}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            filter_subjects=personal_subjects(),
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    subscription = await js.pull_subscribe_bind(durable=name, stream=stream)
    deleted = 0
    try:
        while True:
            info = await subscription.consumer_info()
            if info.num_pending == 0:
                break
            try:
                messages = await subscription.fetch(512, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            for message in messages:
                if (message.headers or {}).get(MSG_ID_HEADER) in event_ids:
                    try:
                        await js.delete_msg(
                            stream, message.metadata.sequence.stream
                        )  # no_erase=false: overwritten
                        deleted += 1
                    except JsNotFoundError:
                        pass  # already gone (a retried scrub)
            await asyncio.sleep(0)
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, name)
    return deleted
