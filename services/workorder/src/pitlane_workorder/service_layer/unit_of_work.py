"""One command, one transaction on the driver (a DriverPool transaction, fixed SQL): aggregates are loaded
from and appended to the event store, read models and outbox rows are written in the same transaction, and
all of it commits or none of it does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pitlane_events import Envelope
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.db import DriverPool, DriverTransaction
from pitlane_platform.messaging.aggregate import load_aggregate, save_aggregate
from pitlane_platform.messaging.eventstore import CommandContext

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    def __init__(self, unit: DriverTransaction) -> None:
        self.unit = unit

    async def load(self, kind: type[A], aggregate_id: str) -> A:
        return await load_aggregate(self.unit, kind, aggregate_id)

    async def save(self, aggregate: Aggregate, context: CommandContext) -> list[Envelope[Any]]:
        """Append the pending events at the version the aggregate was loaded at (ConcurrencyError → 409)."""
        return await save_aggregate(self.unit, aggregate, context)


@asynccontextmanager
async def unit_of_work(driver: DriverPool) -> AsyncIterator[UnitOfWork]:
    async with driver.transaction() as unit:
        yield UnitOfWork(unit)
