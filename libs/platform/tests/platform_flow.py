"""A small real flow over the platform, shared by the messaging tests and their helper processes:
the customer-profile service records vehicle mileage (event-sourced, through the outbox), and a consumer
"analytics.mileage-probe" applies each event to a table that counts how often each event had an effect."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pitlane_events import Actor, DomainEvent
from pitlane_events.customer_profile import (
    CustomerRegistered,
    CustomerSource,
    CustomerUpdated,
    MileageSource,
    VehicleMileageRecorded,
)
from pitlane_platform.db import create_engine, execute_on_driver
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.consumer import Consumer, HandlerContext, advance_read_model
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.schema import metadata as platform_metadata

# The tests have always imported these two from here; they now live with the platform's test helpers.
from pitlane_platform.testing.jetstream import stream_messages, wait_until

__all__ = ["stream_messages", "wait_until"]

PRODUCER = "customer-profile"
POISON_KM = 1_999_999  # a reading the probe's handler refuses while `POISON.broken` is set

probe_metadata = MetaData()
effects = Table(
    "probe_effects",
    probe_metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("times_applied", Integer, nullable=False),
)
latest_mileage = Table(
    "probe_latest_mileage",
    probe_metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("mileage_km", Integer, nullable=False),
)


class Poison:
    broken = True
    attempts = 0
    # Readings the handler refuses once each (the first attempt fails, a retry applies them).
    fail_once_km: ClassVar[set[int]] = set()


async def create_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(platform_metadata.create_all)
        await connection.run_sync(probe_metadata.create_all)
    await engine.dispose()


def context() -> CommandContext:
    return CommandContext(
        actor=Actor(kind="user", id="advisor-1", role="advisor"),
        chain_id="test-chain",
        occurred_at=datetime.now(UTC),
    )


def reading(vehicle_id: str, km: int) -> VehicleMileageRecorded:
    return VehicleMileageRecorded(
        vehicle_id=vehicle_id, mileage_km=km, source=MileageSource.CHECK_IN, recorded_at=datetime.now(UTC)
    )


async def record(
    sessions: async_sessionmaker[AsyncSession], vehicle_id: str, expected_version: int, km: int
) -> Any:
    async with sessions() as session, session.begin():
        [stored] = await eventstore.append(
            session, vehicle_id, expected_version, [reading(vehicle_id, km)], context()
        )
    return stored


def probe_consumer(**options: Any) -> Consumer:
    consumer = Consumer(service="analytics", purpose="mileage-probe", source_service=PRODUCER, **options)

    @consumer.on(VehicleMileageRecorded)
    async def apply(ctx: HandlerContext, event: VehicleMileageRecorded) -> None:
        if event.mileage_km == POISON_KM:
            Poison.attempts += 1
            if Poison.broken:
                raise ValueError("odometer reading out of range for this probe")
        if event.mileage_km in Poison.fail_once_km:
            Poison.fail_once_km.discard(event.mileage_km)
            raise ValueError("this reading fails once")
        await ctx.session.execute(
            pg_insert(effects)
            .values(event_id=ctx.envelope.event_id, times_applied=1)
            .on_conflict_do_update(
                index_elements=[effects.c.event_id], set_={"times_applied": effects.c.times_applied + 1}
            )
        )
        if await advance_read_model(
            ctx.session, "probe_latest_mileage", event.vehicle_id, ctx.envelope.aggregate_version
        ):
            await ctx.session.execute(
                pg_insert(latest_mileage)
                .values(vehicle_id=event.vehicle_id, mileage_km=event.mileage_km)
                .on_conflict_do_update(
                    index_elements=[latest_mileage.c.vehicle_id], set_={"mileage_km": event.mileage_km}
                )
            )

    return consumer


def probe_durable() -> str:
    """The probe's durable on the producer's stream (named after its subjects)."""
    return probe_consumer().subscription_durable


async def applied_counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(text("SELECT event_id::text, times_applied FROM probe_effects"))
        return {event_id: times for event_id, times in rows}


@contextlib.contextmanager
def server_data_dir() -> Iterator[Path]:
    """A directory for an embedded PostgreSQL's data, outside pytest's tmp_path. As root, pgserver runs the
    server as another OS user and opens the path's parents to it; every pytest session that starts (another
    engineer's, mutation testing's forks) takes those permissions off /tmp/pytest-of-<user> again, and the
    server then fails on its next file open ("Permission denied"), whatever this test does."""
    with tempfile.TemporaryDirectory(prefix="pitlane-data-", ignore_cleanup_errors=True) as directory:
        yield Path(directory)


async def ack_waits_passed(js: Any, stream: str, *, ack_wait_s: float, times: int = 2) -> None:
    """Wait until JetStream itself shows that `times` ack waits of `ack_wait_s` have passed since this call:
    a short-lived consumer of the test's fetches the stream's first message, never acks it, and gets it
    redelivered `times` times. A positive signal in the server's own time, so that a test asserting that
    nothing was redelivered or retried meanwhile does not guess how long to sleep."""
    import uuid

    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    name = f"ack_wait_probe_{uuid.uuid4().hex[:8]}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            durable_name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_deliver=times + 1,
            mem_storage=True,
        ),
    )
    subscription = await js.pull_subscribe_bind(durable=name, stream=stream)
    try:
        delivered = 0
        while delivered <= times:
            [message] = await subscription.fetch(1, timeout=ack_wait_s * 2 + 10)
            delivered = message.metadata.num_delivered
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, name)


async def unpublished_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            ).scalar_one()
        )


# The ordering probe: customers registered and updated (padded to any size), and a consumer
# "analytics.order-probe" that logs every event it applies, so a test can read each aggregate's applied order.
applied_log = Table(
    "probe_applied_log",
    probe_metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("aggregate_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
)


class Faults:
    """Failures the ordering probe's handler injects, by event id or by `<aggregate id>@<version>` (known
    before the event is written, so the fault is in place before the relay can publish it): each entry of
    `handler_once` and `database_once` fails once, of `poison` always."""

    handler_once: ClassVar[set[str]] = set()
    database_once: ClassVar[set[str]] = set()
    poison: ClassVar[set[str]] = set()
    slow_s: ClassVar[dict[str, float]] = {}
    handler_runs: ClassVar[dict[str, int]] = {}

    @classmethod
    def reset(cls) -> None:
        cls.handler_once, cls.database_once, cls.poison, cls.slow_s, cls.handler_runs = (
            set(),
            set(),
            set(),
            {},
            {},
        )


async def register_customer(
    sessions: async_sessionmaker[AsyncSession], customer_id: str, *, padding_bytes: int = 100
) -> Any:
    event = CustomerRegistered(
        customer_id=customer_id,
        full_name="王建国",
        phone="+8613800138000",
        source=CustomerSource.WALK_IN,
        preferred_services=_padding(padding_bytes),
    )
    async with sessions() as session, session.begin():
        [stored] = await eventstore.append(session, customer_id, 0, [event], context())
    return stored


async def update_customer(
    sessions: async_sessionmaker[AsyncSession], customer_id: str, version: int, *, padding_bytes: int = 100
) -> Any:
    event = CustomerUpdated(
        customer_id=customer_id,
        changed_fields=("preferred_services",),
        preferred_services=_padding(padding_bytes),
    )
    async with sessions() as session, session.begin():
        [stored] = await eventstore.append(session, customer_id, version, [event], context())
    return stored


def _padding(size: int) -> tuple[str, ...]:
    """Preferred services adding up to about `size` bytes (each entry at most 1,000 characters)."""
    return tuple("p" * min(1000, size - offset) for offset in range(0, size, 1000))


def order_probe(*event_types: type[DomainEvent], **options: Any) -> Consumer:
    """With `on_driver=True` its handler writes through the driver (the DriverPool transaction)."""
    consumer = Consumer(service="analytics", purpose="order-probe", source_service=PRODUCER, **options)

    async def apply(ctx: HandlerContext, event: Any) -> None:
        event_id = str(ctx.envelope.event_id)
        keys = {event_id, f"{ctx.envelope.aggregate_id}@{ctx.envelope.aggregate_version}"}
        Faults.handler_runs[event_id] = Faults.handler_runs.get(event_id, 0) + 1
        if keys & Faults.poison:
            raise ValueError("a field this probe refuses")
        await asyncio.sleep(max(Faults.slow_s.get(key, 0) for key in keys))
        if keys & Faults.handler_once:
            Faults.handler_once.difference_update(keys)
            raise ValueError("failing once")
        if keys & Faults.database_once:
            Faults.database_once.difference_update(keys)
            # A real fault: the server ends this very connection, as a restart or failover would.
            await execute_on_driver(ctx.unit, "fault", "SELECT pg_terminate_backend(pg_backend_pid())", {})
        await execute_on_driver(
            ctx.unit,
            "log applied",
            "INSERT INTO probe_applied_log (aggregate_id, version, event_id) "
            "VALUES (%(aggregate_id)s, %(version)s, %(event_id)s)",
            {
                "aggregate_id": ctx.envelope.aggregate_id,
                "version": ctx.envelope.aggregate_version,
                "event_id": ctx.envelope.event_id,
            },
        )

    for event_type in event_types or (CustomerRegistered, CustomerUpdated):
        consumer.on(event_type)(apply)
    return consumer


async def applied_order(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[int]]:
    """Per aggregate, the versions the order probe applied, in the order it applied them."""
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT aggregate_id, version FROM probe_applied_log ORDER BY position")
        )
        order: dict[str, list[int]] = {}
        for aggregate_id, version in rows:
            order.setdefault(aggregate_id, []).append(version)
        return order


async def stored_order(js: Any, stream: str) -> dict[str, list[int]]:
    """Per aggregate, the versions in the order the stream stores them."""
    import json

    order: dict[str, list[int]] = {}
    for message in await stream_messages(js, stream):
        envelope = json.loads(message.data)
        order.setdefault(envelope["aggregate_id"], []).append(envelope["aggregate_version"])
    return order


async def pitlane_cli(*args: str) -> str:
    """Run the `pitlane` command line as an operator does; fails the test on a non-zero exit."""
    import subprocess
    import sys
    from pathlib import Path

    pitlane = Path(sys.executable).parent / "pitlane"
    done = await asyncio.to_thread(
        subprocess.run, [str(pitlane), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
