"""The event store of customers and vehicles, with personal data encrypted at rest (ADR 0006).

It writes the platform's `events` and `outbox` tables like `pitlane_platform.messaging.eventstore`, with
one difference: in the stored envelope, the personal fields of customer events are sealed with the
customer's data key, while the outbox row carries the plaintext event that other services need. After
erasure the outbox rows are deleted and the published copies scrubbed from the stream (ADR 0006), so the
only copy left is ciphertext whose key is gone.

Appends take several streams at once so an import writes thousands of new aggregates in a few statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.pii_vault import DataKey, PiiVault, ShreddedError, is_token
from pitlane_events import DomainEvent, Envelope, decode_json
from pitlane_platform.errors import ConcurrencyError
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.messaging.outbox import enqueue
from pitlane_platform.schema import events

# The fields of each event type that hold personal data; ids, tags and consent flags are not in it.
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "customer-profile.CustomerRegistered": ("full_name", "phone", "birthday", "custom_fields", "notes"),
    "customer-profile.CustomerUpdated": ("full_name", "birthday", "custom_fields", "notes"),
    "customer-profile.CustomerContactAdded": ("value",),
    "customer-profile.CustomerContactRemoved": ("value",),
}


@dataclass(frozen=True)
class PendingStream:
    stream_id: str
    expected_version: int
    events: Sequence[DomainEvent]


def _customer_of(envelope_data: dict[str, Any]) -> str:
    return str(envelope_data["customer_id"])


class ProfileEventStore:
    def __init__(self, vault: PiiVault) -> None:
        self.vault = vault

    async def append(
        self, session: AsyncSession, pending: Sequence[PendingStream], context: CommandContext
    ) -> list[Envelope[Any]]:
        pending = [stream for stream in pending if stream.events]
        if not pending:
            return []
        existing = {
            stream_id: version
            for stream_id, version in (
                await session.execute(
                    select(events.c.stream_id, func.max(events.c.version))
                    .where(events.c.stream_id.in_([stream.stream_id for stream in pending]))
                    .group_by(events.c.stream_id)
                )
            ).all()
        }
        envelopes: list[Envelope[Any]] = []
        for stream in pending:
            current = existing.get(stream.stream_id, 0)
            if current != stream.expected_version:
                raise ConcurrencyError(stream.stream_id, stream.expected_version, current)
            envelopes += [
                context.envelope(
                    event, aggregate_id=stream.stream_id, aggregate_version=stream.expected_version + i
                )
                for i, event in enumerate(stream.events, start=1)
            ]
        personal = [e for e in envelopes if e.event_type in PERSONAL_FIELDS]
        keys = await self.vault.keys_for(
            session, {_customer_of(e.data.model_dump()) for e in personal}, create_missing=True
        )
        try:
            await session.execute(
                insert(events),
                [
                    {
                        "stream_id": envelope.aggregate_id,
                        "version": envelope.aggregate_version,
                        "event_id": envelope.event_id,
                        "event_type": envelope.event_type,
                        "schema_version": envelope.schema_version,
                        "occurred_at": envelope.occurred_at,
                        "envelope": _sealed(envelope, keys),
                    }
                    for envelope in envelopes
                ],
            )
        except IntegrityError as exc:
            if isinstance(exc.orig, UniqueViolation):
                first = pending[0]
                raise ConcurrencyError(first.stream_id, first.expected_version) from None
            raise
        await enqueue(session, envelopes)
        return envelopes

    async def load(self, session: AsyncSession, stream_id: str) -> list[Envelope[Any]]:
        """The stream's events, decrypted. ShreddedError if personal data in it was erased."""
        rows = (
            (
                await session.execute(
                    select(events.c.envelope)
                    .where(events.c.stream_id == stream_id)
                    .order_by(events.c.version)
                )
            )
            .scalars()
            .all()
        )
        opened = await self.open(session, list(rows))
        return [decode_json(body) for body in opened]

    async def open(self, session: AsyncSession, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stored envelopes with their sealed fields opened; ShreddedError if a key is gone."""
        sealed = [body for body in stored if body["event_type"] in PERSONAL_FIELDS]
        keys = await self.vault.keys_for(session, {_customer_of(body["data"]) for body in sealed})
        return [_opened(body, keys, erased_value=_RAISE) for body in stored]

    async def replay(self, session: AsyncSession, *, batch: int = 1000) -> list[dict[str, Any]]:
        """Every stored envelope in store order, opened where the key still exists; a field whose key was
        shredded reads as None. What any rebuild of a read model from this store sees."""
        result: list[dict[str, Any]] = []
        position = 0
        while True:
            rows = (
                await session.execute(
                    select(events.c.position, events.c.envelope)
                    .where(events.c.position > position)
                    .order_by(events.c.position)
                    .limit(batch)
                )
            ).all()
            if not rows:
                return result
            position = rows[-1].position
            bodies = [row.envelope for row in rows]
            sealed = [body for body in bodies if body["event_type"] in PERSONAL_FIELDS]
            keys = await self.vault.keys_for(session, {_customer_of(body["data"]) for body in sealed})
            result += [_opened(body, keys, erased_value=None) for body in bodies]


_RAISE = object()


def _sealed(envelope: Envelope[Any], keys: dict[str, DataKey]) -> dict[str, Any]:
    body = envelope.model_dump(mode="json")
    fields = PERSONAL_FIELDS.get(envelope.event_type)
    if fields:
        key = keys[_customer_of(body["data"])]
        for name in fields:
            if body["data"].get(name) is not None:
                body["data"][name] = key.seal(body["data"][name])
    return body


def _opened(body: dict[str, Any], keys: dict[str, DataKey], *, erased_value: Any) -> dict[str, Any]:
    fields = PERSONAL_FIELDS.get(body["event_type"])
    if not fields:
        return body
    data = dict(body["data"])
    key = keys.get(_customer_of(data))
    for name in fields:
        if not is_token(data.get(name)):
            continue
        if key is None:
            if erased_value is _RAISE:
                raise ShreddedError(f"the personal data of customer {_customer_of(data)} was erased")
            data[name] = erased_value
        else:
            data[name] = key.open(data[name])
    return {**body, "data": data}
