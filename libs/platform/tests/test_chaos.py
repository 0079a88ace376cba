"""nats-server killed (SIGKILL) and restarted while a relay and a consumer run under load.

A checker compares three sets: the events the writer committed (attempted), the messages JetStream stored
(acked to the relay), and the effects the consumer committed (applied). Nothing may be missing from either
later set, and nothing may appear twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import text

from pitlane_platform.clock import SystemClock
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import ConsumerRunner
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig
from pitlane_platform.messaging.streams import declare_stream, platform_streams, service_stream, stream_name
from platform_flow import (
    PRODUCER,
    applied_counts,
    create_tables,
    probe_consumer,
    record,
    stream_messages,
    unpublished_count,
    wait_until,
)

EVENTS = 600


async def held_messages(sessions) -> int:
    async with sessions() as session:
        return int(
            (await session.execute(text("SELECT count(*) FROM consumer_parked_messages"))).scalar_one()
        )


async def test_nats_crash_under_load_loses_nothing_and_applies_nothing_twice(
    database_url, embedded_nats_factory
):
    nats_server = embedded_nats_factory()
    await create_tables(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    nc = await connect_nats(nats_server.url, name="chaos")
    js = nc.jetstream()
    for spec in [service_stream(PRODUCER), *platform_streams()]:
        await declare_stream(js, spec)

    stop = asyncio.Event()
    relay = OutboxRelay(
        RelayConfig(service=PRODUCER, database_url=database_url, poll_interval_s=0.2, max_backoff_s=0.5), nc
    )
    runner = ConsumerRunner(
        [probe_consumer(ack_wait_s=2, backoff_s=(0.2,))], js=js, sessions=sessions, clock=SystemClock()
    )
    await runner.declare()
    background = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runner.run(stop))]

    attempted: list[str] = []

    async def steady_writer() -> None:
        for n in range(EVENTS):
            stored = await record(sessions, f"vehicle-{n}", 0, n)
            attempted.append(str(stored.event_id))
            await asyncio.sleep(0.004)

    writer = asyncio.create_task(steady_writer())

    async def a_quarter_applied():
        return len(await applied_counts(sessions)) >= EVENTS // 4

    await wait_until(a_quarter_applied, timeout=60)
    nats_server.kill()
    committed_before_the_crash = len(attempted)

    async def written_and_refused_while_the_broker_is_gone():
        # The writer keeps committing, and the relay has tried to publish to the dead broker.
        return len(attempted) >= committed_before_the_crash + 50 and (
            relay.status.last_error or ""
        ).startswith("publish:")

    await wait_until(written_and_refused_while_the_broker_is_gone)
    await asyncio.to_thread(nats_server.restart)
    await writer

    async def everything_applied():
        return len(await applied_counts(sessions)) >= EVENTS and await unpublished_count(sessions) == 0

    await wait_until(everything_applied, timeout=120)

    async def nothing_left_to_redeliver():
        # Every delivery acknowledged and none pending: JetStream has nothing it could deliver again.
        info = await js.consumer_info(stream_name(PRODUCER), runner.consumers[0].subscription_durable)
        return info.num_ack_pending == 0 and info.num_pending == 0 and await held_messages(sessions) == 0

    await wait_until(nothing_left_to_redeliver)
    stop.set()
    await asyncio.gather(*background)

    stored_ids = Counter(m.headers["Nats-Msg-Id"] for m in await stream_messages(js, stream_name(PRODUCER)))
    applied = await applied_counts(sessions)
    assert len(attempted) == EVENTS
    assert set(stored_ids) == set(attempted), "JetStream is missing events or holds events nobody committed"
    assert [i for i, n in stored_ids.items() if n > 1] == [], "an event was stored twice"
    assert set(applied) == set(attempted), "an event was never applied"
    assert [i for i, n in applied.items() if n > 1] == [], "an event was applied twice"
    await nc.close()
    await engine.dispose()
