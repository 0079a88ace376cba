"""Writing to the transactional outbox: the rows commit with the state change, or not at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_events import Envelope, encode
from pitlane_events.codec import TRACEPARENT_HEADER
from pitlane_platform.db import execute_on_driver
from pitlane_platform.schema import OUTBOX_CHANNEL
from pitlane_platform.telemetry import inject_trace_headers

# One statement, one round trip: the rows and the NOTIFY (transactional: the relay hears it only if and when
# this transaction commits). Hand-written SQL on the hot path: SQLAlchemy recompiles INSERT constructs of the
# PostgreSQL dialect for every call (see db.execute_on_driver).
ENQUEUE_SQL = f"""
    WITH queued AS (
        INSERT INTO outbox (event_id, subject, headers, payload, traceparent)
        SELECT * FROM unnest(
            %(event_ids)s::uuid[], %(subjects)s::text[], %(headers)s::jsonb[],
            %(payloads)s::bytea[], %(traceparents)s::text[]
        )
        RETURNING 1
    )
    SELECT count(*), pg_notify('{OUTBOX_CHANNEL}', '') FROM queued
"""


def outbox_rows(envelopes: Sequence[Envelope[Any]]) -> dict[str, list[Any]]:
    """The parameters of ENQUEUE_SQL (also embedded in the event store's append statement).

    The current trace context is stored on each row, so the relay's publish and every consumer continue the
    trace of the request that caused the events.
    """
    trace_headers = inject_trace_headers()
    messages = [encode(envelope, trace_headers=trace_headers) for envelope in envelopes]
    return {
        "event_ids": [envelope.event_id for envelope in envelopes],
        "subjects": [message.subject for message in messages],
        "headers": [Jsonb(message.headers) for message in messages],
        "payloads": [message.payload for message in messages],
        "traceparents": [trace_headers.get(TRACEPARENT_HEADER) for _ in messages],
    }


async def enqueue(session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None:
    """Queue envelopes for publishing in the session's transaction, and wake the relay when it commits."""
    if envelopes:
        await execute_on_driver(session, "enqueue", ENQUEUE_SQL, outbox_rows(envelopes))
