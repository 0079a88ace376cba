"""The outbox relay against real PostgreSQL and nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from sqlalchemy import text

from pitlane_platform.db import create_engine, libpq_url, session_factory
from pitlane_platform.http import create_app
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.outbox import message_size
from pitlane_platform.messaging.relay import OutboxHealth, OutboxRelay, RelayConfig, outbox_health
from pitlane_platform.messaging.streams import declare_stream, service_stream, stream_name
from pitlane_platform.runtime import OutboxNotDraining, ServiceRuntime
from pitlane_platform.settings import ServiceSettings
from platform_flow import (
    PRODUCER,
    create_tables,
    record,
    register_customer,
    stream_messages,
    unpublished_count,
    update_customer,
    wait_until,
)

STREAM = stream_name(PRODUCER)
PROCESSES = Path(__file__).parent / "processes"


@pytest.fixture
async def flow(database_url, nats_url):
    await create_tables(database_url)
    engine = create_engine(database_url)
    nc = await connect_nats(nats_url, name="test")
    await declare_stream(nc.jetstream(), service_stream(PRODUCER))
    yield session_factory(engine), nc
    await nc.close()
    await engine.dispose()


@contextlib.asynccontextmanager
async def running_relay(database_url, nc, **options):
    stop = asyncio.Event()
    relay = OutboxRelay(
        RelayConfig(service=PRODUCER, database_url=database_url, poll_interval_s=0.2, **options), nc
    )
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_relay_publishes_in_commit_order_with_the_event_id_as_msg_id(database_url, flow):
    sessions, nc = flow
    js = nc.jetstream()
    stored = [await record(sessions, "vehicle-1", version, 1000 * version) for version in range(5)]
    async with running_relay(database_url, nc) as relay:

        async def all_marked():
            return await unpublished_count(sessions) == 0

        await wait_until(all_marked)
    messages = await stream_messages(js, STREAM)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(e.event_id) for e in stored]
    assert {m.subject for m in messages} == {"customer-profile.chain.VehicleMileageRecorded.v1"}
    assert relay.status.published == 5
    # A published row keeps no payload: no copy of the event waits in the outbox for an erasure to find.
    async with sessions() as session:
        kept = (await session.execute(text("SELECT length(payload) FROM outbox"))).scalars().all()
    assert kept == [0] * 5


async def test_rolled_back_transaction_is_never_published(database_url, flow):
    sessions, nc = flow
    js = nc.jetstream()
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            from pitlane_platform.messaging import eventstore
            from platform_flow import context, reading

            await eventstore.append(session, "vehicle-9", 0, [reading("vehicle-9", 1)], context())
            raise RuntimeError("rolled back")
    committed = await record(sessions, "vehicle-9", 0, 2)
    async with running_relay(database_url, nc) as relay:

        async def published():
            return await unpublished_count(sessions) == 0

        # The relay publishes outbox rows only: once the committed one is marked, nothing is left to publish.
        await wait_until(published)
    messages = await stream_messages(js, STREAM)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(committed.event_id)]
    assert relay.status.published == 1


async def test_one_relay_is_active_and_a_standby_takes_over(database_url, flow):
    sessions, nc = flow
    js = nc.jetstream()
    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    config = RelayConfig(
        service=PRODUCER, database_url=database_url, poll_interval_s=0.2, standby_retry_s=0.2
    )
    first, second = OutboxRelay(config, nc), OutboxRelay(config, nc)
    first_task = asyncio.create_task(first.run(first_stop))

    async def first_active():
        return first.status.active

    await wait_until(first_active)
    second_task = asyncio.create_task(second.run(second_stop))

    async def second_asked_for_the_lock_and_was_refused():
        return await standing_by(sessions) == 1

    await wait_until(second_asked_for_the_lock_and_was_refused)
    while_both_run = [await record(sessions, f"vehicle-b{n}", 0, n) for n in range(3)]

    async def published_by_the_first():
        return await unpublished_count(sessions) == 0

    await wait_until(published_by_the_first)
    assert (first.status.active, second.status.active) == (True, False)
    assert (first.status.published, second.status.published) == (3, 0)

    first_stop.set()
    await first_task
    assert first.status.active is False

    async def second_active():
        return second.status.active

    await wait_until(second_active)
    stored = await record(sessions, "vehicle-2", 0, 42)

    async def published():
        return await unpublished_count(sessions) == 0

    await wait_until(published)
    second_stop.set()
    await second_task
    assert [m.headers["Nats-Msg-Id"] for m in await stream_messages(js, STREAM)] == [
        str(e.event_id) for e in [*while_both_run, stored]
    ]
    assert second.status.published == 1


async def standing_by(sessions) -> int:
    """Connections whose last statement asked for an advisory lock that they do not hold: standbys."""
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'SELECT pg_try_advisory_lock(%' AND pid NOT IN "
                "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
            )
        )
        return int(rows.scalar_one())


async def relay_waiting_to_mark(connection) -> int:
    cursor = await connection.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox%%'"
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


def start_relay_process(database_url: str, nats_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(PROCESSES / "run_relay.py"),
            "--database-url",
            database_url,
            "--nats-url",
            nats_url,
            "--service",
            PRODUCER,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_relay_killed_between_publish_and_mark_leaves_each_event_once_in_the_stream(
    database_url, nats_url, flow
):
    sessions, nc = flow
    js = nc.jetstream()
    stored = [await record(sessions, f"vehicle-{n}", 0, n) for n in range(10)]

    # Hold the outbox rows locked: the relay can read and publish them, but its UPDATE marking them waits.
    blocker = await psycopg.AsyncConnection.connect(libpq_url(database_url))
    await blocker.execute("SELECT id FROM outbox FOR UPDATE")
    relay = start_relay_process(database_url, nats_url)
    try:

        async def all_in_stream():
            return (await js.stream_info(STREAM)).state.messages == 10

        await wait_until(all_in_stream)

        async def relay_waits_to_mark():
            return await relay_waiting_to_mark(blocker) == 1

        await wait_until(relay_waits_to_mark)
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        # The killed process's blocked UPDATE must not complete on its behalf once the lock is released.
        await blocker.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox%%'"
        )
        await blocker.rollback()
    finally:
        await blocker.close()
        relay.kill()
    assert await unpublished_count(sessions) == 10

    restarted = start_relay_process(database_url, nats_url)
    try:

        async def all_marked():
            return await unpublished_count(sessions) == 0

        await wait_until(all_marked)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(10)

    messages = await stream_messages(js, STREAM)
    assert sorted(m.headers["Nats-Msg-Id"] for m in messages) == sorted(str(e.event_id) for e in stored)


async def test_after_a_nats_restart_the_relay_republishes_unmarked_rows_and_the_stream_keeps_each_once(
    database_url, embedded_nats_factory
):
    """Published and acknowledged, never marked (the relay's database connection died marking them), and
    nats-server killed and restarted meanwhile: the relay publishes the rows again to the restarted server,
    and JetStream drops the copies by Nats-Msg-Id (its duplicate window outlives the restart)."""
    nats_server = embedded_nats_factory()
    await create_tables(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    nc = await connect_nats(nats_server.url, name="test")
    js = nc.jetstream()
    await declare_stream(js, service_stream(PRODUCER))
    stored = [await record(sessions, f"vehicle-{n}", 0, n) for n in range(10)]
    # The rows stay locked: the relay can read and publish them, but its UPDATE marking them waits.
    blocker = await psycopg.AsyncConnection.connect(libpq_url(database_url))
    await blocker.execute("SELECT id FROM outbox FOR UPDATE")
    try:
        async with running_relay(database_url, nc, standby_retry_s=0.2, max_backoff_s=0.5) as relay:

            async def all_in_stream():
                return (await js.stream_info(STREAM)).state.messages == 10

            await wait_until(all_in_stream)

            async def waiting_to_mark():
                return await relay_waiting_to_mark(blocker) == 1

            await wait_until(waiting_to_mark)
            nats_server.kill()
            await asyncio.to_thread(nats_server.restart)
            # The relay's connection ends while it waits: its marks roll back, the rows are unpublished.
            await blocker.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox%%'"
            )
            await blocker.rollback()

            async def all_marked_and_the_outage_cleared():
                # The error of the outage stays in the status until a drain succeeds again.
                return await unpublished_count(sessions) == 0 and relay.status.last_error is None

            await wait_until(all_marked_and_the_outage_cleared)
            assert relay.status.published == 10  # counted once marked: every row was published again
    finally:
        await blocker.close()
        await nc.close()
        await engine.dispose()
    nc = await connect_nats(nats_server.url, name="check")
    try:
        messages = await stream_messages(nc.jetstream(), STREAM)
    finally:
        await nc.close()
    assert len(messages) == 10
    assert sorted(m.headers["Nats-Msg-Id"] for m in messages) == sorted(str(e.event_id) for e in stored)


async def test_an_event_over_the_servers_max_payload_is_parked_while_others_flow_and_readiness_reports_it(
    database_url, embedded_nats_factory, caplog: pytest.LogCaptureFixture
):
    # The writer allows 1 MiB (NATS's default); this server was configured for 64 KiB: the row gets in.
    nats_server = embedded_nats_factory(max_payload=64 * 1024)
    await create_tables(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    nc = await connect_nats(nats_server.url, name="test")
    js = nc.jetstream()
    await declare_stream(js, service_stream(PRODUCER))
    big = await register_customer(sessions, "customer-big", padding_bytes=100 * 1024)
    behind_it = await update_customer(sessions, "customer-big", 1)
    others = [await record(sessions, f"vehicle-{n}", 0, n) for n in range(150)]
    settings = ServiceSettings(service_name=PRODUCER, database_url=database_url, nats_url=nats_server.url)
    runtime = ServiceRuntime(settings)
    app = create_app(
        settings, title="probe", version="test", routers=[], readiness_checks=runtime.readiness_checks()
    )
    caplog.set_level("INFO", logger="pitlane_platform.messaging.relay")
    async with running_relay(database_url, nc, report_every_s=0.2) as relay:

        async def others_published():
            return (await js.stream_info(STREAM)).state.messages == 150

        await wait_until(others_published)

        async def parked_and_reported():
            return relay.status.parked == 1 and any(
                r.getMessage() == "ALERT 1 outbox row(s) parked; see `pitlane status`" for r in caplog.records
            )

        await wait_until(parked_and_reported)
        alert = next(vars(r) for r in caplog.records if r.getMessage().startswith("ALERT 1 outbox row(s)"))
        lag = next(
            vars(r) for r in caplog.records if r.getMessage() == "relay lag" and vars(r)["parked"] == 1
        )
        assert (alert["service"], alert["parked"]) == (PRODUCER, 1)
        # The row behind the parked one waits: one pending, for as long as since it was written.
        assert (lag["service"], lag["pending"], lag["parked"]) == (PRODUCER, 1, 1)
        assert lag["oldest_pending_age_s"] > 0
        await runtime.driver.open()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://probe") as client:
            ready = await client.get("/ready")
        [outbox_check] = [check for check in runtime.readiness_checks() if check.__name__ == "outbox"]
        with pytest.raises(OutboxNotDraining, match="1 event\\(s\\) parked"):
            await outbox_check()
    await runtime.driver.close()
    await runtime.engine.dispose()
    async with sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT event_id::text, parked_at IS NOT NULL, park_reason, published_at IS NOT NULL FROM outbox"
                )
            )
        ).all()
    state = {event_id: (is_parked, reason, published) for event_id, is_parked, reason, published in rows}
    assert state[str(big.event_id)][0] and "max_payload of 65536" in state[str(big.event_id)][1]
    assert state[str(behind_it.event_id)] == (False, None, False)  # waits behind its aggregate's parked row
    assert all(state[str(event.event_id)][2] for event in others)
    assert {m.headers["Nats-Msg-Id"] for m in await stream_messages(js, STREAM)} == {
        str(event.event_id) for event in others
    }
    assert ready.status_code == 503 and "outbox" in ready.json()["failing_checks"]
    await nc.close()
    await engine.dispose()


async def test_outbox_health_reports_the_backlog_its_age_and_the_parked_rows_readiness_fails_on(database_url):
    await create_tables(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    waiting = await register_customer(sessions, "customer-waiting")
    refused = await register_customer(sessions, "customer-refused")
    await engine.dispose()
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as db:
        assert (await outbox_health(db)).problems(max_lag_s=60) == []  # just written: not lagging yet
        await db.execute(
            "UPDATE outbox SET created_at = now() - interval '120 seconds' WHERE event_id = %s",
            (waiting.event_id,),
        )
        await db.execute(
            "UPDATE outbox SET parked_at = now(), park_reason = 'maximum payload exceeded' WHERE event_id = %s",
            (refused.event_id,),
        )
        health = await outbox_health(db)
    assert (health.pending, health.parked) == (1, 1)
    assert 120 <= health.oldest_pending_age_s < 180
    [parked] = health.parked_rows
    assert {key: parked[key] for key in ("event_id", "aggregate_id", "subject", "reason")} == {
        "event_id": str(refused.event_id),
        "aggregate_id": "customer-refused",
        "subject": "customer-profile.chain.CustomerRegistered.v1",
        "reason": "maximum payload exceeded",
    }
    assert parked["bytes"] > 0 and parked["parked_at"] is not None and isinstance(parked["id"], int)
    assert health.problems(max_lag_s=60) == [
        f"oldest unpublished event is {health.oldest_pending_age_s:.0f}s old",
        "1 event(s) parked: the broker will not accept them",
    ]
    # Lagging means older than the limit: an event exactly at it is still on time.
    assert OutboxHealth(pending=1, oldest_pending_age_s=30.0).problems(max_lag_s=30) == []


async def test_message_size_never_counts_less_than_the_server_does(embedded_nats_factory):
    """The relay parks what `message_size` says exceeds max_payload; it must never call fitting what the
    server refuses (that publish would close the connection). A message at the computed limit is accepted;
    a payload that alone fits but does not with its headers is refused, and counted as too large."""
    server = embedded_nats_factory(max_payload=1024)
    headers = {"Nats-Msg-Id": "probe-1", "Pitlane-Event": "customer-profile.CustomerRegistered"}
    nc = await nats.connect(server.url, allow_reconnect=False)
    try:
        await nc.jetstream().add_stream(name="SIZE_PROBE", subjects=["size-probe.>"])
        at_the_limit = b"x" * (1024 - message_size(b"", headers))
        ack = await nc.jetstream().publish("size-probe.a", at_the_limit, headers=headers, timeout=5)
        assert ack.seq == 1 and message_size(at_the_limit, headers) == 1024
    finally:
        await nc.close()
    payload_alone_fits = b"x" * 1023
    nc = await nats.connect(server.url, allow_reconnect=False)
    try:
        with pytest.raises((ConnectionClosedError, NatsTimeoutError)):
            await nc.jetstream().publish(
                "size-probe.b", payload_alone_fits, headers={**headers, "Nats-Msg-Id": "probe-2"}, timeout=5
            )
    finally:
        await nc.close()
    assert message_size(payload_alone_fits, headers) > 1024
