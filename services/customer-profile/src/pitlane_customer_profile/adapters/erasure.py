"""Erasure (PIPL right to deletion, ADR 0006): what leaves the database, and what leaves the stream.

In the database, in the erasure's transaction: the customer's data keys are deleted (their stored events
become unreadable ciphertext), the personal columns of the read model are cleared, phones are freed,
vehicles lose their link to the customer, and the outbox rows that still hold plaintext copies are deleted.
Figures (visits, spend) stay under the now anonymous id.

In the streams, after the CustomerErased event is published: the published copies of the customer's
personal events are securely deleted from our stream, the dead letters and the replays
(`pitlane_platform.messaging.erasure.scrub_event_copies`, fed by `personal_event_ids` and
`personal_subjects`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.event_store import PERSONAL_FIELDS
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.adapters.tables import customer_phones, customers, vehicles
from pitlane_platform.messaging.erasure import event_subjects
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
    return event_subjects(PERSONAL_FIELDS)
