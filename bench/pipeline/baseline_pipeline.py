"""The raw baseline: the same flow written by hand with plain psycopg (async) and nats-py, nothing else.

Writer: one transaction per command inserts the event row and its outbox row and NOTIFYs. Relay: LISTENs,
selects unpublished outbox rows in id order, publishes a batch concurrently and waits for JetStream's acks,
marks them published. Projector: a durable pull consumer that, per message, inserts the inbox row and upserts
the projection in one transaction, commits, then acks. Same tables, indexes, payload size, batch sizes and
fetch pattern as the platform path, so the difference measured is the platform's code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import psycopg
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from psycopg.types.json import Jsonb
from uuid_utils.compat import uuid7

from bench.common import BenchServers, fresh_database
from bench.pipeline.timeline import Timeline

STREAM = "BENCH_BASELINE"
SUBJECT = "bench-baseline.chain.VehicleMileageRecorded.v1"
DURABLE = "bench_baseline_projector"
CONSUMER_NAME = "bench-baseline.projector"
NOTIFY_CHANNEL = "bench_outbox"
RELAY_BATCH_SIZE = 256  # as the platform relay's default
RELAY_POLL_INTERVAL_S = 1.0
FETCH_BATCH_SIZE = 64  # as the platform consumer's default
FETCH_TIMEOUT_S = 1.0
DUPLICATE_WINDOW_S = 30 * 60

SCHEMA = """
CREATE TABLE events (
    position bigserial PRIMARY KEY,
    stream_id text NOT NULL,
    version integer NOT NULL,
    event_id uuid NOT NULL UNIQUE,
    event_type text NOT NULL,
    schema_version integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    envelope jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    subject text NOT NULL,
    headers jsonb NOT NULL,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE TABLE inbox (
    consumer text,
    event_id uuid,
    event_type text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE vehicle_mileage (
    vehicle_id text PRIMARY KEY,
    mileage_km integer NOT NULL,
    readings integer NOT NULL
);
"""
INSERT_EVENT = """
    INSERT INTO events (stream_id, version, event_id, event_type, schema_version, occurred_at, envelope)
    VALUES (%s, %s, %s, 'customer-profile.VehicleMileageRecorded', 1, %s, %s)
"""
INSERT_OUTBOX = "INSERT INTO outbox (event_id, subject, headers, payload) VALUES (%s, %s, %s, %s)"
NOTIFY = f"NOTIFY {NOTIFY_CHANNEL}"
SELECT_UNPUBLISHED = (
    "SELECT id, subject, headers, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT %s"
)
MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)"
CLAIM_INBOX = """
    INSERT INTO inbox (consumer, event_id, event_type) VALUES (%s, %s, %s)
    ON CONFLICT DO NOTHING RETURNING event_id
"""
UPSERT_PROJECTION = """
    INSERT INTO vehicle_mileage (vehicle_id, mileage_km, readings) VALUES (%s, %s, 1)
    ON CONFLICT (vehicle_id) DO UPDATE
    SET mileage_km = excluded.mileage_km, readings = vehicle_mileage.readings + 1
"""


class BaselinePipeline:
    def __init__(
        self, timeline: Timeline, writer_connections: asyncio.Queue[psycopg.AsyncConnection]
    ) -> None:
        self.timeline = timeline
        self._writer_connections = writer_connections

    async def record_mileage(self, vehicle_id: str, mileage_km: int) -> None:
        event_id = str(uuid7())
        now = datetime.now(UTC).isoformat()
        envelope = {
            "event_id": event_id,
            "event_type": "customer-profile.VehicleMileageRecorded",
            "schema_version": 1,
            "occurred_at": now,
            "chain_id": "bench-chain",
            "branch_id": None,
            "aggregate_id": vehicle_id,
            "aggregate_version": 1,
            "correlation_id": event_id,
            "causation_id": None,
            "actor": {"kind": "user", "id": "advisor-1", "role": "advisor"},
            "data": {
                "vehicle_id": vehicle_id,
                "mileage_km": mileage_km,
                "source": "check_in",
                "recorded_at": now,
                "work_order_id": None,
            },
        }
        headers = {
            "Nats-Msg-Id": event_id,
            "Pitlane-Event-Type": envelope["event_type"],
            "Pitlane-Schema-Version": "1",
        }
        connection = await self._writer_connections.get()
        try:
            async with connection.transaction():
                await connection.execute(INSERT_EVENT, (vehicle_id, 1, event_id, now, Jsonb(envelope)))
                await connection.execute(
                    INSERT_OUTBOX, (event_id, SUBJECT, Jsonb(headers), json.dumps(envelope).encode())
                )
                await connection.execute(NOTIFY)
            self.timeline.command_committed(event_id)
        finally:
            self._writer_connections.put_nowait(connection)


@contextlib.asynccontextmanager
async def running_baseline(servers: BenchServers, *, writers: int) -> AsyncIterator[BaselinePipeline]:
    """A fresh database and stream with the writer connections, the relay and the projector running."""
    timeline = Timeline()
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        url = stack.enter_context(fresh_database(servers.postgres_admin_url, "bench_baseline"))
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as setup:
            await setup.execute(SCHEMA)
        relay_nats = await _connect(stack, servers.nats_url)
        projector_nats = await _connect(stack, servers.nats_url)
        await _recreate_stream(relay_nats.jetstream())
        stack.push_async_callback(relay_nats.jetstream().delete_stream, STREAM)
        writer_connections: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
        for _ in range(writers):
            writer_connections.put_nowait(await _connect_postgres(stack, url))
        relay_listener = await _connect_postgres(stack, url)
        relay_worker = await _connect_postgres(stack, url)
        projector_connection = await _connect_postgres(stack, url)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_relay(relay_listener, relay_worker, relay_nats.jetstream(), stop))
            tasks.create_task(_project(projector_connection, projector_nats.jetstream(), timeline, stop))
            try:
                yield BaselinePipeline(timeline, writer_connections)
            finally:
                stop.set()


async def _connect(stack: contextlib.AsyncExitStack, url: str) -> Client:
    client = await nats.connect(url)
    stack.push_async_callback(client.close)
    return client


async def _connect_postgres(stack: contextlib.AsyncExitStack, url: str) -> psycopg.AsyncConnection:
    return await stack.enter_async_context(await psycopg.AsyncConnection.connect(url, autocommit=True))


async def _recreate_stream(js: JetStreamContext) -> None:
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(STREAM)
    await js.add_stream(
        StreamConfig(
            name=STREAM,
            subjects=["bench-baseline.>"],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
    )
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            durable_name=DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            max_ack_pending=1000,
            filter_subject=SUBJECT,
        ),
    )


async def _relay(
    listener: psycopg.AsyncConnection,
    worker: psycopg.AsyncConnection,
    js: JetStreamContext,
    stop: asyncio.Event,
) -> None:
    await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
    while not stop.is_set():
        rows = await (await worker.execute(SELECT_UNPUBLISHED, (RELAY_BATCH_SIZE,))).fetchall()
        if rows:
            await asyncio.gather(
                *(
                    js.publish(subject, bytes(payload), headers=headers)
                    for _, subject, headers, payload in rows
                )
            )
            await worker.execute(MARK_PUBLISHED, ([row_id for row_id, *_ in rows],))
        if len(rows) < RELAY_BATCH_SIZE:
            async for _ in listener.notifies(timeout=RELAY_POLL_INTERVAL_S, stop_after=1):
                pass


async def _project(
    connection: psycopg.AsyncConnection, js: JetStreamContext, timeline: Timeline, stop: asyncio.Event
) -> None:
    subscription = await js.pull_subscribe_bind(durable=DURABLE, stream=STREAM)
    while not stop.is_set():
        try:
            messages = await subscription.fetch(FETCH_BATCH_SIZE, timeout=FETCH_TIMEOUT_S)
        except (TimeoutError, NatsTimeoutError):
            continue
        for message in messages:
            envelope = json.loads(message.data)
            data = envelope["data"]
            async with connection.transaction():
                claimed = await connection.execute(
                    CLAIM_INBOX, (CONSUMER_NAME, envelope["event_id"], envelope["event_type"])
                )
                applied = await claimed.fetchone() is not None
                if applied:
                    await connection.execute(UPSERT_PROJECTION, (data["vehicle_id"], data["mileage_km"]))
            if applied:
                timeline.effect_committed(envelope["event_id"])
            await message.ack()
    await subscription.unsubscribe()
