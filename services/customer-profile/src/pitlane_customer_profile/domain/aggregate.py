"""The pure base of this service's event-sourced aggregates.

It mirrors `pitlane_platform.messaging.aggregate.Aggregate` but imports nothing with I/O, so the domain stays
free of the database and the broker; the repository in `adapters/` loads and saves it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Self

from pitlane_events import DomainEvent


class AggregateRoot(ABC):
    """`version` is the version of the last stored event; `pending` are recorded but not yet stored."""

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
    def rehydrate(cls, aggregate_id: str, history: Iterable[tuple[int, DomainEvent]]) -> Self:
        aggregate = cls(aggregate_id)
        for version, event in history:
            aggregate.apply(event)
            aggregate.version = version
        return aggregate
