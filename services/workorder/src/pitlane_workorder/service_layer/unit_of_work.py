"""One command, one transaction: aggregates are loaded from and appended to the event store, read models and
outbox rows are written in the same transaction, and all of it commits or none of it does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pitlane_events import Envelope
from pitlane_platform.errors import NotFoundError
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_workorder.domain.aggregate import EventSourcedAggregate

A = TypeVar("A", bound=EventSourcedAggregate)


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def load(self, kind: type[A], aggregate_id: str) -> A:
        history = await eventstore.load(self.session, aggregate_id)
        if not history:
            raise NotFoundError(f"{kind.__name__} {aggregate_id} does not exist")
        return kind.rehydrate(
            aggregate_id,
            ((envelope.data, envelope.occurred_at, envelope.aggregate_version) for envelope in history),
        )

    async def save(self, aggregate: EventSourcedAggregate, context: CommandContext) -> list[Envelope[Any]]:
        """Append the pending events at the version the aggregate was loaded at (ConcurrencyError → 409)."""
        stored = await eventstore.append(
            self.session, aggregate.id, aggregate.version, aggregate.pending, context
        )
        aggregate.version += len(aggregate.pending)
        aggregate.pending = []
        return stored


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[UnitOfWork]:
    async with sessions() as session, session.begin():
        yield UnitOfWork(session)
