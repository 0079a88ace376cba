"""The event store: append to a stream at an expected version, load a stream back.

Appending writes the events and their outbox rows in the caller's transaction, so an event is published
if and only if it is stored. The unique `(stream_id, version)` makes a concurrent append lose cleanly with
a ConcurrencyError (HTTP 409) instead of overwriting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pitlane_events import Actor, DomainEvent, Envelope, decode_json
from psycopg.errors import UniqueViolation
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_platform.errors import ConcurrencyError
from pitlane_platform.messaging.outbox import enqueue
from pitlane_platform.schema import events


@dataclass(frozen=True)
class CommandContext:
    """Who issued a command, when, for which chain and branch, and what caused it (for correlation)."""

    actor: Actor
    chain_id: str
    occurred_at: datetime
    branch_id: str | None = None
    correlation_id: UUID | None = None
    caused_by: Envelope[Any] | None = None

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


async def stream_version(session: AsyncSession, stream_id: str) -> int:
    result = await session.execute(
        select(func.coalesce(func.max(events.c.version), 0)).where(events.c.stream_id == stream_id)
    )
    return int(result.scalar_one())


async def append(
    session: AsyncSession,
    stream_id: str,
    expected_version: int,
    new_events: Sequence[DomainEvent],
    context: CommandContext,
) -> list[Envelope[Any]]:
    """Append `new_events` after `expected_version` (0 for a new stream) and queue them for publishing.

    Raises ConcurrencyError when the stream is not at `expected_version`, including when another transaction
    appends the same version concurrently (the unique constraint decides; the loser's transaction is dead).
    """
    current = await stream_version(session, stream_id)
    if current != expected_version:
        raise ConcurrencyError(stream_id, expected_version, current)
    envelopes = [
        context.envelope(event, aggregate_id=stream_id, aggregate_version=expected_version + offset)
        for offset, event in enumerate(new_events, start=1)
    ]
    if not envelopes:
        return []
    try:
        await session.execute(
            insert(events),
            [
                {
                    "stream_id": stream_id,
                    "version": envelope.aggregate_version,
                    "event_id": envelope.event_id,
                    "event_type": envelope.event_type,
                    "schema_version": envelope.schema_version,
                    "occurred_at": envelope.occurred_at,
                    "envelope": envelope.model_dump(mode="json"),
                }
                for envelope in envelopes
            ],
        )
    except IntegrityError as exc:
        if isinstance(exc.orig, UniqueViolation):
            raise ConcurrencyError(stream_id, expected_version) from None
        raise
    await enqueue(session, envelopes)
    return envelopes


async def load(session: AsyncSession, stream_id: str, *, after_version: int = 0) -> list[Envelope[Any]]:
    """The stream's events in order, upcast to the newest version of each type."""
    result = await session.execute(
        select(events.c.envelope)
        .where(events.c.stream_id == stream_id, events.c.version > after_version)
        .order_by(events.c.version)
    )
    return [decode_json(row) for row in result.scalars()]
