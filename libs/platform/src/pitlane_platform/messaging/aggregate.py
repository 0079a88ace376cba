"""The base of event-sourced aggregates: state is rebuilt from events; commands record new ones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_events import DomainEvent, Envelope
from pitlane_platform.errors import NotFoundError
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext


class Aggregate(ABC):
    """Subclasses implement `apply(event)` (pure state change, no checks) and commands that check rules and
    call `record(event)`. `version` is the version of the last stored event; pending events come after it."""

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self.pending: list[DomainEvent] = []

    @abstractmethod
    def apply(self, event: DomainEvent) -> None:
        """Change state for one event; never check rules here (history is already true)."""

    def record(self, event: DomainEvent) -> None:
        self.apply(event)
        self.pending.append(event)

    @classmethod
    def rehydrate(cls, aggregate_id: str, history: Iterable[Envelope[Any]]) -> Self:
        aggregate = cls(aggregate_id)
        for envelope in history:
            aggregate.apply(envelope.data)
            aggregate.version = envelope.aggregate_version
        return aggregate


A = TypeVar("A", bound=Aggregate)


async def load_aggregate(session: AsyncSession, kind: type[A], aggregate_id: str) -> A:
    history = await eventstore.load(session, aggregate_id)
    if not history:
        raise NotFoundError(f"{kind.__name__} {aggregate_id} does not exist")
    return kind.rehydrate(aggregate_id, history)


async def save_aggregate(
    session: AsyncSession, aggregate: Aggregate, context: CommandContext
) -> list[Envelope[Any]]:
    """Append the aggregate's pending events at the version it was loaded at."""
    stored = await eventstore.append(session, aggregate.id, aggregate.version, aggregate.pending, context)
    aggregate.version += len(aggregate.pending)
    aggregate.pending = []
    return stored
