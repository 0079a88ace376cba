"""Consumers against real PostgreSQL and nats-server: exactly-once effects, back-off, dead letters, replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nats.js.api import DeliverPolicy
from sqlalchemy import select

from pitlane_events import encode
from pitlane_platform.clock import SystemClock
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.messaging import deadletter
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import ConsumerRunner
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig
from pitlane_platform.messaging.streams import (
    ConsumerSpec,
    DeclarationError,
    declare_consumer,
    declare_stream,
    platform_streams,
    service_stream,
    stream_name,
)
from platform_flow import (
    POISON_KM,
    PRODUCER,
    Poison,
    applied_counts,
    create_tables,
    latest_mileage,
    pitlane_cli,
    probe_consumer,
    probe_durable,
    record,
    wait_until,
)

PROCESSES = Path(__file__).parent / "processes"


@pytest.fixture
async def flow(database_url, nats_url):
    await create_tables(database_url)
    engine = create_engine(database_url)
    nc = await connect_nats(nats_url, name="test")
    js = nc.jetstream()
    for spec in [service_stream(PRODUCER), *platform_streams()]:
        await declare_stream(js, spec)
    stop = asyncio.Event()
    relay = OutboxRelay(RelayConfig(service=PRODUCER, database_url=database_url, poll_interval_s=0.2), nc)
    relay_task = asyncio.create_task(relay.run(stop))
    Poison.broken, Poison.attempts = True, 0
    yield session_factory(engine), js
    stop.set()
    await relay_task
    await nc.close()
    await engine.dispose()


@contextlib.asynccontextmanager
async def running(runner: ConsumerRunner):
    await runner.declare()  # so the test can ask the server about the consumer right away
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def runner_for(sessions, js, **options) -> ConsumerRunner:
    return ConsumerRunner([probe_consumer(**options)], js=js, sessions=sessions, clock=SystemClock())


async def test_an_event_delivered_twice_has_its_effect_once(flow):
    sessions, js = flow
    stored = await record(sessions, "vehicle-1", 0, 12_000)
    # The same event published again under another message id gets past JetStream's dedupe on purpose.
    copy = encode(stored)
    await js.publish(copy.subject, copy.payload, headers={**copy.headers, "Nats-Msg-Id": "a-second-copy"})
    runner = runner_for(sessions, js)
    async with running(runner):

        async def both_seen():
            info = await js.consumer_info(stream_name(PRODUCER), probe_durable())
            return info.num_ack_pending == 0 and info.delivered.stream_seq >= 2

        await wait_until(both_seen)
    assert await applied_counts(sessions) == {str(stored.event_id): 1}
    assert runner.applied == 1


async def test_poison_message_is_dead_lettered_after_max_deliver_and_replay_applies_it(flow, nats_url):
    sessions, js = flow
    # Fetched as one batch: the poison fails the batch's transaction, its neighbours must still apply once.
    earlier = [await record(sessions, f"vehicle-e{n}", 0, n) for n in range(2)]
    poison = await record(sessions, "vehicle-p", 0, POISON_KM)
    later = [*earlier, *[await record(sessions, f"vehicle-{n}", 0, n) for n in range(3)]]
    runner = runner_for(sessions, js, max_deliver=3, backoff_s=(0.1,))
    async with running(runner):

        async def later_ones_applied():
            return await applied_counts(sessions) == {str(e.event_id): 1 for e in later}

        await wait_until(later_ones_applied)

        async def dead_lettered():
            return runner.dead_lettered == 1

        await wait_until(dead_lettered)
        await asyncio.sleep(0.5)  # no further attempts after dead-lettering
        assert Poison.attempts == 3

        [letter] = await deadletter.list_dead_letters(js)
        assert letter.event_id == str(poison.event_id)
        assert letter.consumer == "analytics_mileage-probe"
        assert letter.attempts == 3
        assert "odometer reading out of range" in letter.error
        assert letter.headers["Pitlane-Event-Type"] == "customer-profile.VehicleMileageRecorded"
        assert letter.subject == poison.subject

        listed = await pitlane_cli("dlq", "list", "--json", "--nats-url", nats_url)
        assert [json.loads(line)["event_id"] for line in listed.splitlines()] == [str(poison.event_id)]

        Poison.broken = False  # the fix is deployed
        replayed = await pitlane_cli(
            "dlq", "replay", "--consumer", "analytics_mileage-probe", "--nats-url", nats_url
        )
        assert (
            f"replayed #{letter.sequence} customer-profile.VehicleMileageRecorded {poison.event_id}"
            in replayed
        )

        async def poison_applied():
            return (await applied_counts(sessions)).get(str(poison.event_id)) == 1

        await wait_until(poison_applied)
    assert await deadletter.list_dead_letters(js) == []
    assert Poison.attempts == 4


async def test_an_unreadable_message_goes_straight_to_the_dead_letters(flow):
    sessions, js = flow
    await js.publish(
        "customer-profile.chain.VehicleMileageRecorded.v1", b"{not json", headers={"Nats-Msg-Id": "junk"}
    )
    good = await record(sessions, "vehicle-g", 0, 5)
    runner = runner_for(sessions, js, max_deliver=5, backoff_s=(0.1,))
    async with running(runner):

        async def good_applied():
            return str(good.event_id) in await applied_counts(sessions)

        await wait_until(good_applied)
    [letter] = await deadletter.list_dead_letters(js)
    assert letter.attempts == 1 and "payload is not JSON" in letter.error


async def test_read_model_ignores_an_event_older_than_what_it_applied(flow):
    sessions, js = flow
    first = await record(sessions, "vehicle-s", 0, 100)
    await record(sessions, "vehicle-s", 1, 200)
    async with running(runner_for(sessions, js)):

        async def both_applied():
            return len(await applied_counts(sessions)) == 2

        await wait_until(both_applied)
        # A replay of version 1 (e.g. from another source) arrives late.
        late = encode(first)
        await js.publish(late.subject, late.payload, headers={**late.headers, "Nats-Msg-Id": "late-copy"})
        await asyncio.sleep(1.0)
    async with sessions() as session:
        km = (await session.execute(select(latest_mileage.c.mileage_km))).scalar_one()
    assert km == 200


async def test_changed_consumer_configuration_is_applied_or_refused_loudly(flow):
    _, js = flow
    spec = ConsumerSpec(
        stream_name(PRODUCER), "analytics_config-probe", ("customer-profile.*.VehicleMileageRecorded.*",)
    )
    await declare_consumer(js, spec)
    await declare_consumer(
        js, ConsumerSpec(spec.stream, spec.durable, spec.filter_subjects, ack_wait_s=7, max_ack_pending=10)
    )
    info = await js.consumer_info(spec.stream, spec.durable)
    assert (info.config.ack_wait, info.config.max_ack_pending) == (7, 10)

    immutable_change = ConsumerSpec(
        spec.stream, spec.durable, spec.filter_subjects, deliver_policy=DeliverPolicy.NEW
    )
    with pytest.raises(DeclarationError, match="analytics_config-probe"):
        await declare_consumer(js, immutable_change)


async def test_consumer_killed_between_commit_and_ack_applies_the_event_once(flow, database_url, nats_url):
    sessions, js = flow
    stored = await record(sessions, "vehicle-k", 0, 77)
    command = [
        sys.executable,
        str(PROCESSES / "run_consumer.py"),
        "--database-url",
        database_url,
        "--nats-url",
        nats_url,
        "--ack-wait",
        "1",
    ]
    dying = subprocess.Popen([*command, "--die-after-commit"], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert await asyncio.to_thread(dying.wait, 60) == -9
    assert await applied_counts(sessions) == {str(stored.event_id): 1}
    info = await js.consumer_info(stream_name(PRODUCER), probe_durable())
    assert info.num_ack_pending == 1  # committed, never acked

    survivor = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:

        async def acked_after_redelivery():
            info = await js.consumer_info(stream_name(PRODUCER), probe_durable())
            return info.num_ack_pending == 0 and info.num_redelivered == 0 and info.ack_floor.stream_seq == 1

        await wait_until(acked_after_redelivery)
    finally:
        survivor.terminate()
        survivor.wait(10)
    assert await applied_counts(sessions) == {str(stored.event_id): 1}
