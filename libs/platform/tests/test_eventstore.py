"""Event store against a real PostgreSQL: optimistic concurrency, outbox in the same transaction."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, select, text

from pitlane_events import Actor, DomainEvent, decode
from pitlane_events.customer_profile import VehicleMileageRecorded
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.errors import ConcurrencyError, MessageTooLargeError, NotFoundError
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging import outbox as outbox_module
from pitlane_platform.messaging.aggregate import load_aggregate, save_aggregate
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.messaging.outbox import max_payload
from pitlane_platform.schema import events, outbox
from platform_flow import context, create_tables, reading, record, register_customer, wait_until


@pytest.fixture
async def sessions(database_url):
    await create_tables(database_url)
    engine = create_engine(database_url, pool_size=25)
    yield session_factory(engine)
    await engine.dispose()


async def test_twenty_concurrent_appends_at_one_version_one_wins_without_gaps(sessions):
    await record(sessions, "vehicle-1", 0, 1000)

    outcomes = await asyncio.gather(
        *(record(sessions, "vehicle-1", 1, 2000 + i) for i in range(20)), return_exceptions=True
    )

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    conflicts = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1 and len(conflicts) == 19, outcomes
    async with sessions() as session:
        versions = (
            (
                await session.execute(
                    select(events.c.version)
                    .where(events.c.stream_id == "vehicle-1")
                    .order_by(events.c.version)
                )
            )
            .scalars()
            .all()
        )
        queued = (await session.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert versions == [1, 2]
    assert queued == 2  # only committed events are queued for publishing


async def waiting_for_a_lock(sessions) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        )


async def test_an_append_racing_an_uncommitted_one_at_the_same_version_loses_with_a_conflict(sessions):
    """Both transactions find the stream at version 1 (neither sees the other's uncommitted append); the
    second waits on the unique (stream_id, version) and, once the first commits, fails as a 409 conflict,
    not as a database error, and leaves nothing behind."""
    await record(sessions, "vehicle-r", 0, 1000)
    async with sessions() as first, first.begin():
        [won] = await eventstore.append(first, "vehicle-r", 1, [reading("vehicle-r", 2000)], context())
        racing = asyncio.create_task(record(sessions, "vehicle-r", 1, 3000))

        async def second_waits_on_the_first():
            return await waiting_for_a_lock(sessions) == 1

        await wait_until(second_waits_on_the_first)
        assert not racing.done()
    with pytest.raises(ConcurrencyError, match="vehicle-r") as conflict:
        await racing
    assert conflict.value.status == 409
    async with sessions() as session:
        loaded = await eventstore.load(session, "vehicle-r")
        queued = (await session.execute(select(outbox.c.event_id))).scalars().all()
    assert [(e.aggregate_version, e.data.mileage_km) for e in loaded] == [(1, 1000), (2, 2000)]
    assert sorted(queued) == sorted(e.event_id for e in loaded) and won.event_id in queued


async def test_an_appended_event_carries_its_commands_context_into_the_stored_and_queued_envelope(sessions):
    cause = context().envelope(reading("vehicle-c", 5), aggregate_id="vehicle-c", aggregate_version=1)
    command = CommandContext(
        actor=Actor(kind="user", id="advisor-7", role="advisor"),
        chain_id="test-chain",
        occurred_at=datetime(2026, 11, 16, 2, 30, tzinfo=UTC),
        branch_id="b-7",
        caused_by=cause,
    )
    async with sessions() as session, session.begin():
        [stored] = await eventstore.append(session, "vehicle-9", 0, [reading("vehicle-9", 40)], command)

    assert (stored.occurred_at, stored.branch_id, stored.actor, stored.chain_id) == (
        command.occurred_at,
        "b-7",
        command.actor,
        "test-chain",
    )
    assert (stored.causation_id, stored.correlation_id) == (cause.event_id, cause.correlation_id)
    async with sessions() as session:
        [loaded] = await eventstore.load(session, "vehicle-9")
        queued = (await session.execute(select(outbox.c.payload))).scalar_one()
    assert loaded == stored and decode(bytes(queued)) == stored


async def test_append_at_a_stale_or_future_version_is_a_conflict(sessions):
    await record(sessions, "vehicle-2", 0, 10)
    await record(sessions, "vehicle-2", 1, 20)
    with pytest.raises(ConcurrencyError, match="expected at version 1, found 2"):
        await record(sessions, "vehicle-2", 1, 30)
    with pytest.raises(ConcurrencyError, match="expected at version 5, found 2"):
        await record(sessions, "vehicle-2", 5, 30)


async def test_rolled_back_transaction_leaves_neither_events_nor_outbox_rows(sessions):
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await eventstore.append(session, "vehicle-3", 0, [reading("vehicle-3", 5)], context())
            raise RuntimeError("the state change failed after the append")
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(events))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(outbox))).scalar_one() == 0


class Odometer(Aggregate):
    """A minimal aggregate: refuses a reading lower than the last one."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.km = 0

    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        assert isinstance(event, VehicleMileageRecorded)
        self.km = event.mileage_km

    def read(self, km: int) -> None:
        if km < self.km:
            raise ValueError(f"odometer cannot go back from {self.km} to {km}")
        self.record(reading(self.id, km), datetime.now(UTC))


async def test_aggregate_is_rebuilt_from_its_stream_and_saved_at_its_version(sessions):
    odometer = Odometer("vehicle-4")
    odometer.read(100)
    odometer.read(250)
    async with sessions() as session, session.begin():
        stored = await save_aggregate(session, odometer, context())
    assert [e.aggregate_version for e in stored] == [1, 2]

    async with sessions() as session:
        loaded = await load_aggregate(session, Odometer, "vehicle-4")
    assert (loaded.km, loaded.version) == (250, 2)
    with pytest.raises(ValueError, match="cannot go back"):
        loaded.read(200)

    stale = Odometer.rehydrate("vehicle-4", stored[:1])
    stale.read(300)
    async with sessions() as session, session.begin():
        with pytest.raises(ConcurrencyError):
            await save_aggregate(session, stale, context())


async def test_loading_a_missing_aggregate_is_not_found(sessions):
    async with sessions() as session:
        with pytest.raises(NotFoundError, match="Odometer nobody does not exist"):
            await load_aggregate(session, Odometer, "nobody")


async def test_an_event_larger_than_the_broker_accepts_is_refused_and_nothing_is_stored(sessions):
    with pytest.raises(MessageTooLargeError, match="CustomerRegistered event") as refused:
        await register_customer(sessions, "customer-huge", padding_bytes=max_payload())
    assert refused.value.status == 413 and refused.value.size > refused.value.limit
    await register_customer(sessions, "customer-fits", padding_bytes=max_payload() - 16384)
    async with sessions() as session:
        stored = (await session.execute(select(events.c.stream_id))).scalars().all()
        queued = (await session.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert stored == ["customer-fits"] and queued == 1


async def test_an_aggregate_saved_again_is_at_the_version_of_its_last_event(sessions):
    odometer = Odometer("vehicle-6")
    odometer.read(100)
    odometer.read(200)
    async with sessions() as session, session.begin():
        await save_aggregate(session, odometer, context())
    async with sessions() as session:
        loaded = await load_aggregate(session, Odometer, "vehicle-6")
    loaded.read(300)
    async with sessions() as session, session.begin():
        await save_aggregate(session, loaded, context())
    assert (loaded.version, loaded.pending) == (3, [])
    loaded.read(400)  # the same instance goes on writing where it left off, without a conflict
    async with sessions() as session, session.begin():
        [fourth] = await save_aggregate(session, loaded, context())
    assert (fourth.aggregate_version, loaded.version) == (4, 4)


async def test_stream_version_is_zero_for_a_new_stream_and_the_last_version_of_an_existing_one(sessions):
    await record(sessions, "vehicle-7", 0, 10)
    await record(sessions, "vehicle-7", 1, 20)
    await record(sessions, "vehicle-8", 0, 30)
    async with sessions() as session:
        assert await eventstore.stream_version(session, "vehicle-new") == 0
        assert await eventstore.stream_version(session, "vehicle-7") == 2
        assert await eventstore.stream_version(session, "vehicle-8") == 1
        later = await eventstore.load(session, "vehicle-7", after_version=1)
    assert [(e.aggregate_version, e.data.mileage_km) for e in later] == [(2, 20)]


async def test_enqueued_envelopes_are_queued_for_the_relay_only_when_their_transaction_commits(sessions):
    """Events published without an event-sourced stream (`outbox.enqueue`) reach the outbox like appended
    ones: one row per envelope with its subject, nothing for an empty batch or a rolled-back transaction."""
    envelopes = [
        context().envelope(reading("vehicle-9", km), aggregate_id="vehicle-9", aggregate_version=version)
        for version, km in [(1, 10), (2, 20)]
    ]
    async with sessions() as session, session.begin():
        await outbox_module.enqueue(session, envelopes)
        await outbox_module.enqueue(session, [])
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await outbox_module.enqueue(
                session,
                [
                    context().envelope(
                        reading("vehicle-10", 5), aggregate_id="vehicle-10", aggregate_version=1
                    )
                ],
            )
            raise RuntimeError("the state change failed after the enqueue")
    async with sessions() as session:
        rows = (
            await session.execute(select(outbox.c.event_id, outbox.c.aggregate_id, outbox.c.subject))
        ).all()
    assert sorted(rows) == sorted(
        (e.event_id, "vehicle-9", "customer-profile.chain.VehicleMileageRecorded.v1") for e in envelopes
    )


class Visit(Odometer):
    """An aggregate whose whole life is one business flow."""

    keeps_correlation = True


async def test_an_aggregate_that_keeps_its_correlation_appends_every_later_command_in_its_first(sessions):
    opened_in = uuid4()
    visit = Visit("visit-1")
    visit.read(100)
    async with sessions() as session, session.begin():
        await save_aggregate(session, visit, replace(context(), correlation_id=opened_in))
    for km in (200, 300):  # later commands, each with a context of its own
        async with sessions() as session, session.begin():
            loaded = await load_aggregate(session, Visit, "visit-1")
            loaded.read(km)
            await save_aggregate(session, loaded, context())
    plain = Odometer("odometer-1")
    plain.read(100)
    async with sessions() as session, session.begin():
        await save_aggregate(session, plain, context())
    plain.read(200)  # saved again as it is: another command, another correlation
    async with sessions() as session, session.begin():
        await save_aggregate(session, plain, context())

    async with sessions() as session:
        kept = [e.correlation_id for e in await eventstore.load(session, "visit-1")]
        own = [e.correlation_id for e in await eventstore.load(session, "odometer-1")]
    assert kept == [opened_in] * 3
    assert len(set(own)) == 2
