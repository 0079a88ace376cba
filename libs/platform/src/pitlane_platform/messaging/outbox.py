"""Writing to the transactional outbox: the rows commit with the state change, or not at all.

Nothing is accepted that cannot be published: a message larger than the broker takes (its `max_payload`,
which counts the headers too) is refused here with MessageTooLargeError (HTTP 413) before anything is
written, so the caller's transaction stores nothing. The runtime sets the limit from the server it connects
to (`set_max_payload`); NATS's default of 1 MiB holds until then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_events import Envelope, encode
from pitlane_events.codec import TRACEPARENT_HEADER, NatsMessage
from pitlane_platform.db import Unit, execute_on_driver
from pitlane_platform.errors import MessageTooLargeError
from pitlane_platform.schema import OUTBOX_CHANNEL
from pitlane_platform.telemetry import inject_trace_headers

DEFAULT_MAX_PAYLOAD = 1024 * 1024
# The relay adds its own trace headers when it publishes; the limit keeps room for them.
RELAY_HEADER_ALLOWANCE = 256


@dataclass
class _BrokerLimit:
    max_payload: int = DEFAULT_MAX_PAYLOAD


_limit = _BrokerLimit()


def set_max_payload(max_payload: int) -> None:
    """The largest message the broker accepts, as its INFO says (`nc.max_payload`)."""
    _limit.max_payload = max_payload


def max_payload() -> int:
    return _limit.max_payload


def message_size(payload: bytes, headers: Mapping[str, str]) -> int:
    """What NATS counts against max_payload: the payload and the header block (`NATS/1.0` + lines)."""
    header_block = 12 + sum(len(key) + len(value) + 4 for key, value in headers.items())
    return len(payload) + header_block


# One statement, one round trip: the rows and the NOTIFY (transactional: the relay hears it only if and when
# this transaction commits). Arrays go in binary (`%(name)b`): psycopg's text format escapes every quote of
# every JSON document in Python, a third of an append's CPU; `traceparents` stays text, as a list of only
# None has no binary element type. Hand-written SQL on the hot path: SQLAlchemy recompiles INSERT constructs of the
# PostgreSQL dialect for every call (see db.execute_on_driver).
ENQUEUE_SQL = f"""
    WITH queued AS (
        INSERT INTO outbox (event_id, aggregate_id, subject, headers, payload, traceparent)
        SELECT * FROM unnest(
            %(event_ids)b::uuid[], %(aggregate_ids)b::text[], %(subjects)b::text[], %(headers)b::jsonb[],
            %(payloads)b::bytea[], %(traceparents)s::text[]
        )
        RETURNING 1
    )
    SELECT count(*), pg_notify('{OUTBOX_CHANNEL}', '') FROM queued
"""


def encode_for_outbox(envelopes: Sequence[Envelope[Any]]) -> list[NatsMessage]:
    """The messages the relay will publish, carrying the current trace context; refused if too large.

    The trace context is stored on each row, so the relay's publish and every consumer continue the trace of
    the request that caused the events.
    """
    trace_headers = inject_trace_headers()
    messages = [encode(envelope, trace_headers=trace_headers) for envelope in envelopes]
    limit = _limit.max_payload - RELAY_HEADER_ALLOWANCE
    for envelope, message in zip(envelopes, messages, strict=True):
        size = message_size(message.payload, message.headers)
        if size > limit:
            raise MessageTooLargeError(envelope.event_type, size, limit)
    return messages


def outbox_rows(envelopes: Sequence[Envelope[Any]], messages: Sequence[NatsMessage]) -> dict[str, list[Any]]:
    """The parameters of ENQUEUE_SQL (also embedded in the event store's append statement)."""
    return {
        "event_ids": [envelope.event_id for envelope in envelopes],
        "aggregate_ids": [envelope.aggregate_id for envelope in envelopes],
        "subjects": [message.subject for message in messages],
        "headers": [Jsonb(message.headers) for message in messages],
        "payloads": [message.payload for message in messages],
        "traceparents": [message.headers.get(TRACEPARENT_HEADER) for message in messages],
    }


async def enqueue(unit: Unit, envelopes: Sequence[Envelope[Any]]) -> None:
    """Queue envelopes for publishing in the unit's transaction, and wake the relay when it commits."""
    if envelopes:
        rows = outbox_rows(envelopes, encode_for_outbox(envelopes))
        await execute_on_driver(unit, "enqueue", ENQUEUE_SQL, rows)
