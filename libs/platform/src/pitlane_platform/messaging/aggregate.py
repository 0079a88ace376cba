"""Loading and saving event-sourced aggregates (the pure base is `pitlane_platform.aggregate`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

from pitlane_events import Envelope
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.db import Unit
from pitlane_platform.errors import NotFoundError
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext

A = TypeVar("A", bound=Aggregate)


async def load_aggregate(unit: Unit, kind: type[A], aggregate_id: str) -> A:
    history = await eventstore.load(unit, aggregate_id)
    if not history:
        raise NotFoundError(f"{kind.__name__} {aggregate_id} does not exist")
    return kind.rehydrate(aggregate_id, history)


async def save_aggregate(unit: Unit, aggregate: Aggregate, context: CommandContext) -> list[Envelope[Any]]:
    """Append the aggregate's pending events at the version it was loaded at. An aggregate that keeps its
    correlation appends in it unless the command names one (a work order opened in its appointment's)."""
    if aggregate.keeps_correlation and context.correlation_id is None:
        context = replace(context, correlation_id=aggregate.correlation_id)
    stored = await eventstore.append(unit, aggregate.id, aggregate.version, aggregate.pending, context)
    if aggregate.keeps_correlation and stored:
        aggregate.correlation_id = stored[0].correlation_id
    aggregate.version += len(aggregate.pending)
    aggregate.pending = []
    return stored
