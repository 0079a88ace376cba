"""The event-sourcing contract of the domain's aggregates, without any I/O.

It mirrors `pitlane_platform.messaging.aggregate.Aggregate` (id, version, pending, apply, record), but lives
here because that module also holds the database-bound load/save functions, and the domain must stay
importable without SQLAlchemy. Unlike the platform base, `apply` also receives when the event happened:
work orders keep time in each state and their opening time, which the events do not all carry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Self

from pitlane_events import DomainEvent


class EventSourcedAggregate(ABC):
    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0  # version of the last stored event; pending events come after it
        self.pending: list[DomainEvent] = []

    @abstractmethod
    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        """Change state for one event; never check rules here (history is already true)."""

    def record(self, event: DomainEvent, occurred_at: datetime) -> None:
        self.apply(event, occurred_at)
        self.pending.append(event)

    @classmethod
    def rehydrate(cls, aggregate_id: str, history: Iterable[tuple[DomainEvent, datetime, int]]) -> Self:
        """Rebuild from stored (event, occurred_at, aggregate_version) triples."""
        aggregate = cls(aggregate_id)
        for event, occurred_at, version in history:
            aggregate.apply(event, occurred_at)
            aggregate.version = version
        return aggregate
