"""Consumers against real PostgreSQL and nats-server: exactly-once effects, back-off, dead letters, replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.api import DeliverPolicy
from sqlalchemy import select, text

from pitlane_events import Actor, encode
from pitlane_platform.clock import FixedClock, SystemClock
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.messaging import deadletter
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import ConsumerRunner, HandlerContext
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig
from pitlane_platform.messaging.streams import (
    ConsumerSpec,
    DeclarationError,
    StreamSpec,
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
    ack_waits_passed,
    applied_counts,
    context,
    create_tables,
    latest_mileage,
    pitlane_cli,
    probe_consumer,
    probe_durable,
    reading,
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
    Poison.broken, Poison.attempts, Poison.fail_once_km = True, 0, set()
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


async def test_a_message_delivered_past_max_deliver_without_an_outcome_is_tried_once_more_alone(
    flow, caplog: pytest.LogCaptureFixture
):
    """Deliveries that ended in no ack and no failure (a process that died, here a client that fetched and
    vanished): past `max_deliver` the message is held with one attempt left and tried alone, not dropped and
    not dead-lettered unseen."""
    sessions, js = flow
    runner = runner_for(sessions, js, max_deliver=2, ack_wait_s=1)
    await runner.declare()
    stored = await record(sessions, "vehicle-orphan", 0, 31_000)
    vanishing = await js.pull_subscribe_bind(durable=probe_durable(), stream=stream_name(PRODUCER))
    for _ in range(3):  # fetched, never settled: redelivered after each ack wait
        [message] = await vanishing.fetch(1, timeout=10)
        assert message.headers is not None and message.headers["Nats-Msg-Id"] == str(stored.event_id)
    await vanishing.unsubscribe()
    await ack_waits_passed(js, stream_name(PRODUCER), ack_wait_s=1, times=1)

    async with running(runner):

        async def applied_once():
            return await applied_counts(sessions) == {str(stored.event_id): 1}

        await wait_until(applied_once)
    [held] = [vars(r) for r in caplog.records if r.getMessage().endswith("its aggregate is held back")]
    assert (held["event_id"], held["error"]) == (
        str(stored.event_id),
        "no outcome after 3 deliveries; tried once more alone",
    )
    assert await deadletter.list_dead_letters(js) == [] and runner.dead_lettered == 0


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
        # No further attempts after dead-lettering: a reading failing once, written now, is held and applied
        # by a later round of the hold retries, which would have retried the dead-lettered head too.
        Poison.fail_once_km.add(4242)
        marker = await record(sessions, "vehicle-marker", 0, 4242)

        async def marker_applied_on_retry():
            return not Poison.fail_once_km and str(marker.event_id) in await applied_counts(sessions)

        await wait_until(marker_applied_on_retry)
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
    assert runner.dead_lettered == 1


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


def another_copy(stored, *, km: int):
    """The event at the same aggregate version under another event id (as a second source or a rebuilt
    history would publish it), with another reading, so a test can tell which one the read model holds."""
    copy = stored.model_copy(
        update={"event_id": uuid.uuid4(), "data": stored.data.model_copy(update={"mileage_km": km})}
    )
    return encode(copy)


async def test_read_model_ignores_an_event_older_than_what_it_applied(flow):
    sessions, js = flow
    first = await record(sessions, "vehicle-s", 0, 100)
    second = await record(sessions, "vehicle-s", 1, 200)
    async with running(runner_for(sessions, js)):

        async def both_applied():
            return len(await applied_counts(sessions)) == 2

        await wait_until(both_applied)
        # Events of vehicle-s arriving after version 2 was applied: an older version, and version 2 again,
        # each under an event id of its own (the inbox cannot tell them from new events).
        stale, same = another_copy(first, km=999), another_copy(second, km=888)
        for late in (stale, same):
            await js.publish(late.subject, late.payload, headers=late.headers)
        late_ids = {late.headers["Nats-Msg-Id"] for late in (stale, same)}

        async def late_ones_handled_and_acked():
            info = await js.consumer_info(stream_name(PRODUCER), probe_durable())
            handled = late_ids <= set(await applied_counts(sessions))
            return handled and info.num_pending == 0 and info.num_ack_pending == 0

        await wait_until(late_ones_handled_and_acked)
    # Not lost: each late event reached the handler once, and nothing was held or dead-lettered for it.
    counts = await applied_counts(sessions)
    assert {event_id: counts[event_id] for event_id in late_ids} == dict.fromkeys(late_ids, 1)
    assert await deadletter.list_dead_letters(js) == []
    # Not applied: the read model still holds version 2's reading.
    async with sessions() as session:
        km = (await session.execute(select(latest_mileage.c.mileage_km))).scalar_one()
        seen = await session.execute(text("SELECT version FROM read_model_versions"))
        held = await session.execute(text("SELECT count(*) FROM consumer_holds"))
        assert (km, seen.scalar_one(), held.scalar_one()) == (200, 2, 0)


async def test_changed_consumer_configuration_is_applied_or_refused_loudly(
    flow, caplog: pytest.LogCaptureFixture
):
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
    assert f"updated consumer {spec.stream}/{spec.durable}" in [r.getMessage() for r in caplog.records]

    immutable_change = ConsumerSpec(
        spec.stream, spec.durable, spec.filter_subjects, deliver_policy=DeliverPolicy.NEW
    )
    with pytest.raises(DeclarationError, match="analytics_config-probe"):
        await declare_consumer(js, immutable_change)


async def test_a_changed_stream_configuration_is_applied_and_logged_or_refused_loudly(
    nats_url, caplog: pytest.LogCaptureFixture
):
    nc = await connect_nats(nats_url, name="stream-config")
    js = nc.jetstream()
    spec = StreamSpec("CONFIG_PROBE", ("config-probe.>",))
    try:
        await declare_stream(js, spec)
        with caplog.at_level("WARNING", logger="pitlane_platform.messaging.streams"):
            await declare_stream(js, replace(spec, duplicate_window_s=600))
            await declare_stream(js, replace(spec, duplicate_window_s=600))  # as declared: nothing to do

        assert (await js.stream_info("CONFIG_PROBE")).config.duplicate_window == 600
        [updated] = [r for r in caplog.records if r.getMessage() == "updated stream CONFIG_PROBE"]
        assert vars(updated)["changes"] == {
            "duplicate_window": {"declared": 600_000_000_000, "server": 1_800_000_000_000}
        }
        with pytest.raises(DeclarationError) as refused:
            await declare_stream(js, replace(spec, duplicate_window_s=600, replicas=3))  # one server here
        assert str(refused.value).startswith(
            "stream CONFIG_PROBE: server refused {'num_replicas': {'declared': 3, 'server': 1}}: "
        )
    finally:
        await nc.close()


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


DOOMED_KM = (
    666_666  # the reading the consumer processes of these tests crash or fail on (processes/run_consumer.py)
)


def consumer_process(database_url: str, nats_url: str, runs_file: Path, on_doomed: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(PROCESSES / "run_consumer.py"),
            "--database-url",
            database_url,
            "--nats-url",
            nats_url,
            "--ack-wait",
            "1",
            "--max-deliver",
            "2",
            "--backoff",
            "0.2",
            "--doomed-km",
            str(DOOMED_KM),
            "--on-doomed",
            on_doomed,
            "--runs-file",
            str(runs_file),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def handler_runs(runs_file: Path) -> int:
    return len(runs_file.read_text().splitlines()) if runs_file.exists() else 0


async def killed_by_the_doomed_reading(process: subprocess.Popen) -> None:
    try:
        exit_code = await asyncio.to_thread(process.wait, 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise AssertionError(
            "the consumer never met the doomed reading: it did not run the handler"
        ) from None
    assert exit_code == -9  # it died on the reading, by its own SIGKILL


async def dead_lettered_while_running(sessions, js, process: subprocess.Popen, doomed, survivor_km: int):
    """The doomed event's dead letter, once it is there and a reading written afterwards was applied (the
    consumer goes on); the process must still be running then (it did not meet the doomed reading again)."""

    async def dead_lettered():
        return bool(await deadletter.list_dead_letters(js)) or process.poll() is not None

    await wait_until(dead_lettered)
    assert process.poll() is None, "the consumer ran the handler again and died on the reading"
    later = await record(sessions, "vehicle-later", 0, survivor_km)

    async def later_applied():
        return str(later.event_id) in await applied_counts(sessions)

    await wait_until(later_applied)
    [letter] = await deadletter.list_dead_letters(js)
    assert letter.event_id == str(doomed.event_id)
    return letter


async def held_back(sessions) -> list[tuple]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT h.aggregate_id, h.dead_lettered_at IS NOT NULL, p.event_id::text FROM consumer_holds h "
                "JOIN consumer_parked_messages p USING (consumer, aggregate_id)"
            )
        )
        return [tuple(row) for row in rows]


async def test_a_consumer_killed_on_every_delivery_dead_letters_that_message_and_applies_its_neighbour(
    flow, database_url, nats_url, tmp_path
):
    """An event that kills the process on every delivery: JetStream redelivers it past the consumer's
    max_deliver (the server's own limit is off, so it is not dropped silently), together with the neighbour
    that shared its batch and died with it. Then both are tried once more, alone: the doomed one kills the
    process one last time, and after the restart it is dead-lettered without running again (no crash loop),
    while the neighbour, innocent, is applied, not dead-lettered with it."""
    sessions, js = flow
    runs_file = tmp_path / "runs"
    doomed = await record(sessions, "vehicle-doomed", 0, DOOMED_KM)
    neighbour = await record(sessions, "vehicle-neighbour", 0, 6)  # fetched in the same batch
    for attempt in (1, 2, 3):  # two deliveries (max_deliver), then the try alone
        await killed_by_the_doomed_reading(consumer_process(database_url, nats_url, runs_file, "die"))
        assert handler_runs(runs_file) == attempt
    restarted = consumer_process(database_url, nats_url, runs_file, "die")
    try:
        letter = await dead_lettered_while_running(sessions, js, restarted, doomed, survivor_km=7)
    finally:
        restarted.terminate()
        await asyncio.to_thread(restarted.wait, 30)
    assert restarted.returncode == 0
    assert handler_runs(runs_file) == 3
    assert "no outcome after 2 attempts" in letter.error
    assert (await applied_counts(sessions)).get(str(neighbour.event_id)) == 1
    # Still held for a replay after the fix, with nothing applied for it.
    assert await held_back(sessions) == [("vehicle-doomed", True, str(doomed.event_id))]
    assert str(doomed.event_id) not in await applied_counts(sessions)


async def test_a_consumer_killed_on_the_last_attempt_at_a_held_message_dead_letters_it_after_restart(
    flow, database_url, nats_url, tmp_path
):
    """The first attempt fails (the message is parked and its aggregate held), the retry, the last attempt,
    kills the process: after a restart the held message is dead-lettered, not attempted a third time."""
    sessions, js = flow
    runs_file = tmp_path / "runs"
    doomed = await record(sessions, "vehicle-doomed", 0, DOOMED_KM)
    await killed_by_the_doomed_reading(consumer_process(database_url, nats_url, runs_file, "fail-then-die"))
    assert handler_runs(runs_file) == 2  # the failure, then the retry it died on
    restarted = consumer_process(database_url, nats_url, runs_file, "fail-then-die")
    try:
        letter = await dead_lettered_while_running(sessions, js, restarted, doomed, survivor_km=8)
    finally:
        restarted.terminate()
        await asyncio.to_thread(restarted.wait, 30)
    assert restarted.returncode == 0
    assert handler_runs(runs_file) == 2, "max_deliver is 2: a third attempt ran"
    assert "no outcome after 2 attempts" in letter.error
    assert await held_back(sessions) == [("vehicle-doomed", True, str(doomed.event_id))]
    assert str(doomed.event_id) not in await applied_counts(sessions)


def test_a_handler_emits_events_as_its_service_in_the_chain_branch_and_correlation_of_the_event_it_handles():
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    cause = replace(context(), branch_id="branch-7").envelope(
        reading("vehicle-h", 10), aggregate_id="vehicle-h", aggregate_version=3
    )
    handling = HandlerContext(unit=None, envelope=cause, clock=FixedClock(at), service="billing")  # type: ignore[arg-type]

    emitted = handling.command_context().envelope(
        reading("vehicle-h", 20), aggregate_id="invoice-1", aggregate_version=1
    )
    elsewhere = handling.command_context(branch_id="branch-9").envelope(
        reading("vehicle-h", 30), aggregate_id="invoice-2", aggregate_version=1
    )

    assert (emitted.actor, emitted.chain_id, emitted.branch_id, emitted.occurred_at) == (
        Actor(kind="service", id="billing"),
        "test-chain",
        "branch-7",
        at,
    )
    assert (emitted.causation_id, emitted.correlation_id) == (cause.event_id, cause.correlation_id)
    assert (elsewhere.branch_id, elsewhere.causation_id) == ("branch-9", cause.event_id)
