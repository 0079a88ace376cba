"""The event store: append to a stream at an expected version, load a stream back.

Appending writes the events and their outbox rows in the caller's transaction, so an event is published
if and only if it is stored. The unique `(stream_id, version)` makes a concurrent append lose cleanly with
a ConcurrencyError (HTTP 409) instead of overwriting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.errors import UniqueViolation

from pitlane_events import Actor, DomainEvent, Envelope, decode_json, new_event_id
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_platform.errors import ConcurrencyError
from pitlane_platform.messaging.outbox import encode_for_outbox, outbox_rows
from pitlane_platform.schema import OUTBOX_CHANNEL


@dataclass(frozen=True)
class CommandContext:
    """Who issued a command, when, for which chain and branch, and what caused it (for correlation)."""

    actor: Actor
    chain_id: str
    occurred_at: datetime
    branch_id: str | None = None
    correlation_id: UUID | None = None
    caused_by: Envelope[Any] | None = None

    def in_new_correlation(self) -> CommandContext:
        """The context of a command that starts a business flow (a visit's booking): its events, and every
        later command and reaction that carries the id on, share one new correlation id."""
        return replace(self, correlation_id=new_event_id())

    def envelope(self, event: DomainEvent, *, aggregate_id: str, aggregate_version: int) -> Envelope[Any]:
        return Envelope.new(
            event,
            chain_id=self.chain_id,
            branch_id=self.branch_id,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            actor=self.actor,
            occurred_at=self.occurred_at,
            caused_by=self.caused_by,
            correlation_id=self.correlation_id,
        )


# Append = one statement and one round trip: insert the events only if the stream is at the expected
# version, queue their outbox rows and NOTIFY the relay; report the version found. The stored envelope is
# the published payload (one JSON encoding per event, parsed once by PostgreSQL). Two concurrent appends at
# the same version both pass the check; the unique (stream_id, version) lets one commit and fails the other.
APPEND_SQL = f"""
    WITH current_version AS (
        SELECT coalesce(max(version), 0) AS version FROM events WHERE stream_id = %(stream_id)s
    ), appended AS (
        INSERT INTO events (stream_id, version, event_id, event_type, schema_version, occurred_at, envelope)
        SELECT %(stream_id)s, e.version, e.event_id, e.event_type, e.schema_version, e.occurred_at,
               convert_from(e.payload, 'UTF8')::jsonb
        FROM unnest(
            %(versions)b::integer[], %(event_ids)b::uuid[], %(event_types)b::text[],
            %(schema_versions)b::integer[], %(occurred_ats)b::timestamptz[], %(payloads)b::bytea[]
        ) AS e(version, event_id, event_type, schema_version, occurred_at, payload)
        WHERE (SELECT version FROM current_version) = %(expected_version)s
        RETURNING event_id
    ), queued AS (
        INSERT INTO outbox (event_id, aggregate_id, subject, headers, payload, traceparent)
        SELECT o.* FROM unnest(
            %(event_ids)b::uuid[], %(aggregate_ids)b::text[], %(subjects)b::text[], %(headers)b::jsonb[],
            %(payloads)b::bytea[], %(traceparents)s::text[]
        ) AS o(event_id, aggregate_id, subject, headers, payload, traceparent)
        WHERE o.event_id IN (SELECT event_id FROM appended)
        RETURNING 1
    )
    SELECT (SELECT version FROM current_version), (SELECT count(*) FROM queued), pg_notify('{OUTBOX_CHANNEL}', '')
"""


async def append(
    unit: Unit,
    stream_id: str,
    expected_version: int,
    new_events: Sequence[DomainEvent],
    context: CommandContext,
) -> list[Envelope[Any]]:
    """Append `new_events` after `expected_version` (0 for a new stream) and queue them for publishing, in
    the unit's transaction (a session's, or a DriverPool transaction's).

    Raises ConcurrencyError when the stream is not at `expected_version`, including when another transaction
    appends the same version concurrently (the unique constraint decides; the loser's transaction is dead),
    and MessageTooLargeError, before anything is written, when an event is larger than the broker accepts.
    """
    envelopes = [
        context.envelope(event, aggregate_id=stream_id, aggregate_version=expected_version + offset)
        for offset, event in enumerate(new_events, start=1)
    ]
    if not envelopes:
        return []
    messages = encode_for_outbox(envelopes)
    parameters = {
        "stream_id": stream_id,
        "expected_version": expected_version,
        "versions": [envelope.aggregate_version for envelope in envelopes],
        "event_types": [envelope.event_type for envelope in envelopes],
        "schema_versions": [envelope.schema_version for envelope in envelopes],
        "occurred_ats": [envelope.occurred_at for envelope in envelopes],
        **outbox_rows(envelopes, messages),
    }
    try:
        row = await execute_on_driver(unit, "append", APPEND_SQL, parameters)
    except UniqueViolation:
        raise ConcurrencyError(stream_id, expected_version) from None
    assert row is not None
    current, _queued, _ = row
    if current != expected_version:
        raise ConcurrencyError(stream_id, expected_version, current)
    return envelopes


_STREAM_VERSION_SQL = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = %(stream_id)s"
_LOAD_SQL = (
    "SELECT envelope FROM events WHERE stream_id = %(stream_id)s AND version > %(after_version)s"
    " ORDER BY version"
)


async def stream_version(unit: Unit, stream_id: str) -> int:
    row = await execute_on_driver(unit, "stream version", _STREAM_VERSION_SQL, {"stream_id": stream_id})
    assert row is not None
    return int(row[0])


async def load(unit: Unit, stream_id: str, *, after_version: int = 0) -> list[Envelope[Any]]:
    """The stream's events in order, upcast to the newest version of each type."""
    rows = await fetch_on_driver(
        unit, "load stream", _LOAD_SQL, {"stream_id": stream_id, "after_version": after_version}
    )
    return [decode_json(envelope) for (envelope,) in rows]
