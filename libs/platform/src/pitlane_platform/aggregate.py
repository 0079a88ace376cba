"""The base of event-sourced aggregates, free of I/O so every service's domain can use it.

State is rebuilt from events; commands check rules and record new events. Loading and saving live in
`pitlane_platform.messaging.aggregate` (database-bound), never here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Self
from uuid import UUID

from pitlane_events import DomainEvent, Envelope


class Aggregate(ABC):
    """Subclasses implement `apply(event, occurred_at)` (pure state change, no checks) and commands that check
    rules and call `record(event, occurred_at)`. `occurred_at` is the event's time, so an aggregate can keep
    times (opened at, time in a state) that its events need not repeat. `version` is the version of the last
    stored event; pending events come after it.

    An aggregate whose life is one business flow (an appointment, a work order: one visit) sets
    `keeps_correlation`: every event appended to it carries the correlation id of its stream's first event,
    whichever command appends it. Others (a customer, a branch) start a correlation per command."""

    keeps_correlation: ClassVar[bool] = False

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self.pending: list[DomainEvent] = []
        self.correlation_id: UUID | None = None  # kept when `keeps_correlation`; None until first stored

    @abstractmethod
    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        """Change state for one event; never check rules here (history is already true)."""

    def record(self, event: DomainEvent, occurred_at: datetime) -> None:
        self.apply(event, occurred_at)
        self.pending.append(event)

    @classmethod
    def rehydrate(cls, aggregate_id: str, history: Iterable[Envelope[Any]]) -> Self:
        aggregate = cls(aggregate_id)
        for envelope in history:
            aggregate.apply(envelope.data, envelope.occurred_at)
            aggregate.version = envelope.aggregate_version
            if cls.keeps_correlation and aggregate.correlation_id is None:
                aggregate.correlation_id = envelope.correlation_id
        return aggregate
