"""The same flow through libs/platform: `eventstore.append` in a `DriverPool` transaction (the platform's unit
of work for fixed SQL), `OutboxRelay`, and a `ConsumerRunner` whose consumer (`on_driver`) upserts the
projection with `execute_on_driver` in a DriverPool transaction (the runner writes the inbox row in it).
Effect-commit times come from the runner's `after_commit` hook, which runs right after the commit, before the ack.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Column, Integer, MetaData, Table, Text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import BenchServers, fresh_database
from bench.pipeline.timeline import Timeline
from pitlane_events import Actor, Envelope
from pitlane_events.customer_profile import MileageSource, VehicleMileageRecorded
from pitlane_platform.clock import SystemClock
from pitlane_platform.db import DriverPool, create_engine, execute_on_driver, session_factory
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import Consumer, ConsumerRunner, HandlerContext
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig
from pitlane_platform.messaging.streams import StreamSpec, declare_stream, platform_streams, service_stream
from pitlane_platform.schema import metadata as platform_metadata

PRODUCER = "customer-profile"
ADVISOR = Actor(kind="user", id="advisor-1", role="advisor")

projection_metadata = MetaData()
vehicle_mileage = Table(
    "vehicle_mileage",
    projection_metadata,
    Column("vehicle_id", Text, primary_key=True),
    Column("mileage_km", Integer, nullable=False),
    Column("readings", Integer, nullable=False),
)


# A read model's fixed statement on the driver, as the platform's own hot-path statements run.
PROJECT_MILEAGE = (
    "INSERT INTO vehicle_mileage (vehicle_id, mileage_km, readings) VALUES (%(vehicle_id)s, %(mileage_km)s, 1) "
    "ON CONFLICT (vehicle_id) DO UPDATE SET mileage_km = excluded.mileage_km, "
    "readings = vehicle_mileage.readings + 1"
)


def mileage_projection() -> Consumer:
    consumer = Consumer(service="bench", purpose="vehicle-mileage", source_service=PRODUCER, on_driver=True)

    @consumer.on(VehicleMileageRecorded)
    async def project(ctx: HandlerContext, event: VehicleMileageRecorded) -> None:
        await execute_on_driver(
            ctx.unit,
            "project mileage",
            PROJECT_MILEAGE,
            {"vehicle_id": event.vehicle_id, "mileage_km": event.mileage_km},
        )

    return consumer


class PlatformPipeline:
    def __init__(self, timeline: Timeline, writers: DriverPool) -> None:
        self.timeline = timeline
        self._writers = writers

    async def record_mileage(self, vehicle_id: str, mileage_km: int) -> None:
        now = datetime.now(UTC)
        reading = VehicleMileageRecorded(
            vehicle_id=vehicle_id, mileage_km=mileage_km, source=MileageSource.CHECK_IN, recorded_at=now
        )
        context = CommandContext(actor=ADVISOR, chain_id="bench-chain", occurred_at=now)
        async with self._writers.transaction() as transaction:
            [stored] = await eventstore.append(transaction, vehicle_id, 0, [reading], context)
        self.timeline.command_committed(str(stored.event_id))


@contextlib.asynccontextmanager
async def running_platform(servers: BenchServers, *, writers: int) -> AsyncIterator[PlatformPipeline]:
    """A fresh database and streams with the relay and the consumer runner running."""
    timeline = Timeline()
    stop = asyncio.Event()

    def note_effect(consumer: Consumer, envelope: Envelope[Any]) -> None:
        timeline.effect_committed(str(envelope.event_id))

    async with contextlib.AsyncExitStack() as stack:
        url = stack.enter_context(fresh_database(servers.postgres_admin_url, "bench_platform"))
        consumer_engine = _engine(stack, url)
        async with consumer_engine.begin() as setup:
            await setup.run_sync(platform_metadata.create_all)
            await setup.run_sync(projection_metadata.create_all)
        writer_pool = DriverPool(url, max_size=writers)
        consumer_pool = DriverPool(url)
        for pool in (writer_pool, consumer_pool):
            await pool.open()
            stack.push_async_callback(pool.close)
        relay_nats = await connect_nats(servers.nats_url, name="bench-relay")
        stack.push_async_callback(relay_nats.close)
        consumer_nats = await connect_nats(servers.nats_url, name="bench-consumer")
        stack.push_async_callback(consumer_nats.close)
        streams = [service_stream(PRODUCER), *platform_streams()]
        await _recreate_streams(relay_nats.jetstream(), streams)
        stack.push_async_callback(_delete_streams, relay_nats.jetstream(), streams)

        relay = OutboxRelay(RelayConfig(service=PRODUCER, database_url=url), relay_nats)
        runner = ConsumerRunner(
            [mileage_projection()],
            js=consumer_nats.jetstream(),
            sessions=session_factory(consumer_engine),
            clock=SystemClock(),
            after_commit=[note_effect],
            driver=consumer_pool,
        )
        await runner.declare()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(relay.run(stop))
            tasks.create_task(runner.run(stop))
            try:
                yield PlatformPipeline(timeline, writer_pool)
            finally:
                stop.set()


def _engine(stack: contextlib.AsyncExitStack, url: str, **options: Any) -> AsyncEngine:
    engine = create_engine(url, **options)
    stack.push_async_callback(engine.dispose)
    return engine


async def _recreate_streams(js: JetStreamContext, streams: list[StreamSpec]) -> None:
    await _delete_streams(js, streams)
    for spec in streams:
        await declare_stream(js, spec)


async def _delete_streams(js: JetStreamContext, streams: list[StreamSpec]) -> None:
    for spec in streams:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(spec.name)
