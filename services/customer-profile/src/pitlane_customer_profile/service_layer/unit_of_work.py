"""One command, one transaction: aggregates loaded through it are saved through it, their events appended
(personal data sealed), the outbox filled and the profile tables updated — all or nothing.

The aggregates are the platform's (`pitlane_platform.aggregate`); loading and saving are this service's own,
not `pitlane_platform.messaging.aggregate`'s, because the stream is read through `ProfileEventStore` (sealed
fields opened, a shredded key is "erased") and written several streams per append."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pitlane_customer_profile.adapters.event_store import PendingStream, ProfileEventStore
from pitlane_customer_profile.adapters.pii_vault import ShreddedError
from pitlane_customer_profile.adapters.profile_writer import save_customers, save_vehicles
from pitlane_customer_profile.domain.customer import Customer
from pitlane_customer_profile.domain.vehicle import Vehicle
from pitlane_events import Envelope
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.errors import NotFoundError
from pitlane_platform.messaging.eventstore import CommandContext

A = TypeVar("A", bound=Aggregate)


class UnitOfWork:
    def __init__(self, session: AsyncSession, store: ProfileEventStore) -> None:
        self.session = session
        self.store = store
        self._tracked: dict[str, Aggregate] = {}

    async def customer(self, customer_id: str) -> Customer:
        return await self._load(Customer, customer_id)

    async def vehicle(self, vehicle_id: str) -> Vehicle:
        return await self._load(Vehicle, vehicle_id)

    async def _load(self, kind: type[A], aggregate_id: str) -> A:
        tracked = self._tracked.get(aggregate_id)
        if isinstance(tracked, kind):
            return tracked
        try:
            history = await self.store.load(self.session, aggregate_id)
        except ShreddedError:
            raise NotFoundError(f"{kind.__name__.lower()} {aggregate_id} was erased") from None
        if not history or history[0].event_type.split(".")[1] not in _FIRST_EVENT[kind]:
            raise NotFoundError(f"{kind.__name__.lower()} {aggregate_id} does not exist")
        aggregate = kind.rehydrate(aggregate_id, history)
        self._tracked[aggregate_id] = aggregate
        return aggregate

    def add(self, aggregate: Aggregate) -> None:
        """Track a new aggregate, so `commit` saves it."""
        self._tracked[aggregate.id] = aggregate

    async def commit(self, context: CommandContext) -> list[Envelope[Any]]:
        changed = [a for a in self._tracked.values() if a.pending]
        envelopes = await self.store.append(
            self.session, [PendingStream(a.id, a.version, list(a.pending)) for a in changed], context
        )
        for aggregate in changed:
            aggregate.version += len(aggregate.pending)
            aggregate.pending = []
        customers = [a for a in changed if isinstance(a, Customer)]
        # A customer registered and merged in this very unit (an adopted duplicate, ADR 11) hands its phones
        # to the survivor at once: written for both, they would collide.
        absorbed = {merged for customer in customers for merged in customer.merged_customer_ids}
        await save_customers(self.session, customers, now=context.occurred_at, phoneless=absorbed)
        await save_vehicles(self.session, [a for a in changed if isinstance(a, Vehicle)], envelopes)
        return envelopes


_FIRST_EVENT: dict[type[Aggregate], tuple[str, ...]] = {
    Customer: ("CustomerRegistered",),
    Vehicle: ("VehicleRegistered",),
}


class UnitOfWorkFactory:
    """`async with uow_factory() as uow:` opens a session and its transaction; leaving commits it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ProfileEventStore) -> None:
        self.sessions = sessions
        self.store = store

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[UnitOfWork]:
        async with self.sessions() as session, session.begin():
            yield UnitOfWork(session, self.store)
