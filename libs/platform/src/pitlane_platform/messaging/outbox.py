"""Writing to the transactional outbox: the rows commit with the state change, or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pitlane_events import Envelope, encode
from pitlane_events.codec import TRACEPARENT_HEADER
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_platform.schema import OUTBOX_CHANNEL, outbox
from pitlane_platform.telemetry import inject_trace_headers


async def enqueue(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
    """Queue envelopes for publishing in the session's transaction, and wake the relay when it commits.

    The current trace context is stored on each row, so the relay's publish and every consumer continue the
    trace of the request that caused the events.
    """
    if not envelopes:
        return
    trace_headers = inject_trace_headers()
    rows = []
    for envelope in envelopes:
        message = encode(envelope, trace_headers=trace_headers)
        rows.append(
            {
                "event_id": envelope.event_id,
                "subject": message.subject,
                "headers": message.headers,
                "payload": message.payload,
                "traceparent": trace_headers.get(TRACEPARENT_HEADER),
            }
        )
    await session.execute(insert(outbox), rows)
    # NOTIFY is transactional: the relay hears it only when (and if) this transaction commits.
    await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))
