"""Per-aggregate order and nothing lost, under the faults that happen in production, against real servers:
the broker killed while large and small events of one aggregate are committed, a handler or the database
failing once while the next event of the aggregate arrives, PostgreSQL gone for longer than the back-off
schedule, a poison event with its aggregate's later events behind it, a handler added to a consumer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from sqlalchemy import text

from pitlane_events.customer_profile import CustomerRegistered, CustomerUpdated
from pitlane_platform.clock import SystemClock
from pitlane_platform.db import DriverPool, create_engine, libpq_url, session_factory
from pitlane_platform.messaging import deadletter
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import AfterCommit, Consumer, ConsumerRunner
from pitlane_platform.messaging.health import ConsumerHealth, consumer_health
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig
from pitlane_platform.messaging.streams import declare_stream, platform_streams, service_stream, stream_name
from platform_flow import (
    PRODUCER,
    Faults,
    ack_waits_passed,
    applied_order,
    create_tables,
    order_probe,
    pitlane_cli,
    register_customer,
    stored_order,
    unpublished_count,
    update_customer,
    wait_until,
)

STREAM = stream_name(PRODUCER)
PROBE = "analytics.order-probe"


@contextlib.asynccontextmanager
async def pipeline(
    database_url: str,
    nats_url: str,
    consumer: Consumer,
    *,
    consumer_database_url: str | None = None,
    after_commit: list[AfterCommit] | None = None,
) -> AsyncIterator[tuple[Any, Client, ConsumerRunner, OutboxRelay]]:
    """Writer sessions, the NATS client, a runner of `consumer` (on `consumer_database_url` if given: a
    proxy, with the `after_commit` hooks if given) and the relay publishing the writers' events."""
    await create_tables(database_url)
    engine = create_engine(database_url)
    consumer_engine = create_engine(consumer_database_url or database_url)
    nc = await connect_nats(nats_url, name="ordering")
    js = nc.jetstream()
    for spec in [service_stream(PRODUCER), *platform_streams()]:
        await declare_stream(js, spec)
    stop = asyncio.Event()
    relay = OutboxRelay(
        RelayConfig(service=PRODUCER, database_url=database_url, poll_interval_s=0.2, max_backoff_s=0.5), nc
    )
    driver = DriverPool(consumer_database_url or database_url)
    await driver.open()
    runner = ConsumerRunner(
        [consumer],
        js=js,
        sessions=session_factory(consumer_engine),
        clock=SystemClock(),
        driver=driver,
        after_commit=after_commit or [],
    )
    await runner.declare()
    Faults.reset()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runner.run(stop))]
    try:
        yield session_factory(engine), nc, runner, relay
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await nc.close()
        await driver.close()
        await engine.dispose()
        await consumer_engine.dispose()


async def holds(sessions: Any) -> list[tuple[str, int, bool]]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT aggregate_id, attempts, dead_lettered_at IS NOT NULL FROM consumer_holds")
        )
        return [tuple(row) for row in rows]


async def parked_versions(sessions: Any, aggregate_id: str) -> list[int]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT aggregate_version FROM consumer_parked_messages WHERE aggregate_id = :a "
                "ORDER BY aggregate_version"
            ),
            {"a": aggregate_id},
        )
        return list(rows.scalars())


async def inbox_count(sessions: Any) -> int:
    async with sessions() as session:
        return int((await session.execute(text("SELECT count(*) FROM inbox"))).scalar_one())


async def hold_retries_went_round(sessions: Any) -> None:
    """The positive signal that the runner retried its holds after everything before this call: a new
    aggregate's event fails once, is held, and is applied by a later round of the hold retries, the round
    that would also have retried any other hold that was due (a dead-lettered one must not be)."""
    Faults.handler_once.add("customer-marker@1")
    await register_customer(sessions, "customer-marker")

    async def marker_applied_on_retry():
        return "customer-marker@1" not in Faults.handler_once and (
            "customer-marker" in await applied_order(sessions)
        )

    await wait_until(marker_applied_on_retry)


async def test_nats_killed_while_large_and_small_events_are_committed_keeps_every_aggregate_in_order(
    database_url, embedded_nats_factory
):
    nats_server = embedded_nats_factory()
    async with pipeline(database_url, nats_server.url, order_probe(ack_wait_s=2)) as (sessions, nc, _, relay):
        await register_customer(sessions, "warm-up")

        async def warmed_up():
            return "warm-up" in await applied_order(sessions)

        await wait_until(warmed_up)
        nats_server.kill()
        # 240 events of 8 KB (60 customers, 4 versions each: more than the client's 2 MiB reconnect buffer)
        # and the pair that once overtook itself: v1 of 8 KB, then v2 of 0.5 KB.
        expected: dict[str, list[int]] = {"warm-up": [1]}
        for customer in range(60):
            customer_id = f"customer-{customer}"
            await register_customer(sessions, customer_id, padding_bytes=8 * 1024)
            for version in range(1, 4):
                await update_customer(sessions, customer_id, version, padding_bytes=8 * 1024)
            expected[customer_id] = [1, 2, 3, 4]
        await register_customer(sessions, "customer-pair", padding_bytes=8 * 1024)
        await update_customer(sessions, "customer-pair", 1, padding_bytes=512)
        expected["customer-pair"] = [1, 2]

        async def relay_failed_to_publish():  # it tried while the broker was gone
            return (relay.status.last_error or "").startswith("publish:")

        await wait_until(relay_failed_to_publish)
        await asyncio.to_thread(nats_server.restart)

        async def everything_applied():
            return await applied_order(sessions) == expected and await unpublished_count(sessions) == 0

        await wait_until(everything_applied, timeout=90)
        assert await stored_order(nc.jetstream(), STREAM) == expected
        assert await inbox_count(sessions) == sum(len(versions) for versions in expected.values())


ON_DRIVER = pytest.mark.parametrize("on_driver", [False, True], ids=["session", "driver"])


@ON_DRIVER
async def test_a_handler_failing_once_holds_back_the_next_event_of_its_aggregate(
    database_url, nats_url, on_driver, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="pitlane_platform.messaging.consumer")
    consumer = order_probe(backoff_s=(0.2,), max_deliver=3, on_driver=on_driver)
    committed: list[tuple[str, str, int]] = []

    def note_commit(of: Consumer, envelope: Any) -> None:
        committed.append((of.durable, envelope.aggregate_id, envelope.aggregate_version))

    async with pipeline(database_url, nats_url, consumer, after_commit=[note_commit]) as (sessions, nc, _, _):
        Faults.handler_once.add("customer-a@1")  # before the write: the relay may publish it at once
        first = await register_customer(sessions, "customer-a")
        await update_customer(sessions, "customer-a", 1)
        await register_customer(sessions, "customer-b")

        async def both_applied_and_a_released():
            # The hold is released in a transaction of its own, after the last parked event is applied.
            order = await applied_order(sessions)
            applied = order.get("customer-a") == [1, 2] and order.get("customer-b") == [1]
            return applied and not await holds(sessions)

        await wait_until(both_applied_and_a_released)
        assert Faults.handler_runs[str(first.event_id)] == 2  # the failure, then the retry
        # The after-commit hooks ran once per applied event, on the held head, the parked and the plain path.
        assert sorted(committed) == [
            (consumer.durable, "customer-a", 1),
            (consumer.durable, "customer-a", 2),
            (consumer.durable, "customer-b", 1),
        ]
        assert [c for c in committed if c[1] == "customer-a"] == sorted(
            c for c in committed if c[1] == "customer-a"
        )
        assert await deadletter.list_dead_letters(nc.jetstream()) == []
    # The warning names the event (by id: no personal data) and the handler's error.
    [held_back] = [vars(r) for r in caplog.records if r.getMessage().endswith("its aggregate is held back")]
    assert (held_back["event_id"], held_back["error"]) == (str(first.event_id), "ValueError: failing once")
    released = f"consumer {consumer.name} released a held aggregate"
    assert [r.getMessage() for r in caplog.records].count(released) == 1


async def terminate_the_first_hold_write(sessions: Any) -> None:
    """A real fault where no handler runs: the server ends the connection of the first transaction that
    writes a hold (a sequence counts the writes: it is not rolled back with them)."""
    async with sessions() as session, session.begin():
        for statement in [
            "CREATE SEQUENCE hold_writes",
            "CREATE FUNCTION terminate_first_hold_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('hold_writes') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER terminate_first_hold_write BEFORE INSERT ON consumer_holds "
            "FOR EACH ROW EXECUTE FUNCTION terminate_first_hold_write()",
        ]:
            await session.execute(text(statement))


async def test_the_database_lost_while_a_failed_event_is_held_pauses_the_batch_and_applies_it_once(
    database_url, nats_url
):
    consumer = order_probe(backoff_s=(0.2,), max_deliver=3)
    async with pipeline(database_url, nats_url, consumer) as (sessions, nc, runner, _):
        await terminate_the_first_hold_write(sessions)
        Faults.handler_once.add("customer-a@1")
        first = await register_customer(sessions, "customer-a")
        await register_customer(sessions, "customer-b")

        async def both_applied():
            return await applied_order(sessions) == {"customer-a": [1], "customer-b": [1]}

        await wait_until(both_applied)
        async with sessions() as session:
            hold_writes = (await session.execute(text("SELECT last_value FROM hold_writes"))).scalar_one()
        # The hold was being written when the connection ended: an outage, not the handler's failure, so the
        # batch waited for the database and ran again (the handler's second run applied it), nothing held.
        assert hold_writes == 1 and runner.infrastructure_failures == 1
        assert Faults.handler_runs[str(first.event_id)] == 2
        assert await holds(sessions) == []
        assert await deadletter.list_dead_letters(nc.jetstream()) == []


@ON_DRIVER
async def test_a_transient_database_error_on_v1_is_retried_before_v2_without_counting_an_attempt(
    database_url, nats_url, on_driver
):
    consumer = order_probe(
        backoff_s=(0.2,), max_deliver=1, on_driver=on_driver
    )  # one counted failure would dead-letter it
    async with pipeline(database_url, nats_url, consumer) as (sessions, nc, runner, _):
        Faults.database_once.add("customer-a@1")
        await register_customer(sessions, "customer-a")
        await update_customer(sessions, "customer-a", 1)

        async def both_applied():
            return (await applied_order(sessions)).get("customer-a") == [1, 2]

        await wait_until(both_applied)
        assert runner.infrastructure_failures >= 1
        assert await holds(sessions) == []
        assert await deadletter.list_dead_letters(nc.jetstream()) == []


@ON_DRIVER
async def test_postgres_unreachable_longer_than_the_back_off_schedule_dead_letters_nothing(
    database_url, nats_url, database_proxy, on_driver
):
    consumer = order_probe(backoff_s=(0.1, 0.2), max_deliver=2, ack_wait_s=1, on_driver=on_driver)
    async with pipeline(database_url, nats_url, consumer, consumer_database_url=database_proxy.url) as (
        sessions,
        nc,
        runner,
        _,
    ):
        await register_customer(sessions, "before")

        async def first_applied():
            return "before" in await applied_order(sessions)

        await wait_until(first_applied)
        await database_proxy.cut()
        expected = {"before": [1]}
        for customer in range(20):
            customer_id = f"during-{customer}"
            await register_customer(sessions, customer_id)
            await update_customer(sessions, customer_id, 1)
            expected[customer_id] = [1, 2]

        async def consumer_hit_the_outage():
            return runner.infrastructure_failures > 0

        await wait_until(consumer_hit_the_outage)
        # Past ack_wait twice, as JetStream counts it (and so past the whole back-off schedule, 0.1 + 0.2 s,
        # several times): redeliveries or retries counted as attempts would have dead-lettered by now.
        await ack_waits_passed(nc.jetstream(), STREAM, ack_wait_s=1, times=2)
        assert "during-0" not in await applied_order(sessions)
        await database_proxy.restore()

        async def everything_applied():
            return await applied_order(sessions) == expected

        await wait_until(everything_applied, timeout=60)
        assert await deadletter.list_dead_letters(nc.jetstream()) == []
        assert await holds(sessions) == []
        assert await inbox_count(sessions) == 41


@ON_DRIVER
async def test_a_poison_event_holds_its_aggregate_until_replayed_while_others_flow(
    database_url, nats_url, on_driver, caplog: pytest.LogCaptureFixture
):
    consumer = order_probe(backoff_s=(0.1,), max_deliver=2, on_driver=on_driver)
    async with pipeline(database_url, nats_url, consumer) as (sessions, nc, runner, _):
        js = nc.jetstream()
        Faults.poison.add("customer-a@1")
        poison = await register_customer(sessions, "customer-a")
        for version in range(1, 4):
            await update_customer(sessions, "customer-a", version)
        for customer in range(10):
            await register_customer(sessions, f"other-{customer}")

        async def others_applied_and_a_dead_lettered():
            order = await applied_order(sessions)
            return (
                all(order.get(f"other-{n}") == [1] for n in range(10))
                and runner.dead_lettered == 1
                and await parked_versions(sessions, "customer-a") == [1, 2, 3, 4]
            )

        await wait_until(others_applied_and_a_dead_lettered)
        await hold_retries_went_round(sessions)
        assert "customer-a" not in await applied_order(sessions)
        assert await holds(sessions) == [("customer-a", 2, True)]
        [letter] = await deadletter.list_dead_letters(js)
        assert letter.event_id == str(poison.event_id)
        assert Faults.handler_runs[str(poison.event_id)] == 2  # max_deliver attempts, no more
        # The retry of the held head says which attempt of how many failed.
        retried = f"handler {consumer.name} failed on held customer-profile.CustomerRegistered (attempt 2/2)"
        assert [r.getMessage() for r in caplog.records].count(retried) == 1
        listed = await pitlane_cli(
            "dlq", "list", "--json", "--nats-url", nats_url, "--database-url", database_url
        )
        [summary] = [json.loads(line) for line in listed.splitlines()]
        assert (summary["event_id"], summary["held_back"]) == (str(poison.event_id), 4)
        # What `pitlane status` reports for the consumer: nothing pending, one aggregate dead-lettered with
        # its four messages held back, one dead letter.
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as db:
            assert await consumer_health(js, "analytics", db) == [
                ConsumerHealth(
                    consumer.durable,
                    pending=0,
                    held_aggregates=0,
                    dead_lettered_aggregates=1,
                    held_messages=4,
                    dead_letters=1,
                )
            ]

        Faults.poison.clear()  # the fix is deployed
        await deadletter.replay(js, consumer=consumer.durable)
        others = {f"other-{n}": [1] for n in range(10)} | {"customer-marker": [1]}

        async def a_applied_and_released():
            # The hold is released in a transaction of its own, after the last parked event is applied.
            return (await applied_order(sessions)).get("customer-a") == [1, 2, 3, 4] and not await holds(
                sessions
            )

        await wait_until(a_applied_and_released)
        assert await applied_order(sessions) == others | {"customer-a": [1, 2, 3, 4]}
        assert await parked_versions(sessions, "customer-a") == []
        assert await deadletter.list_dead_letters(js) == []
        assert await inbox_count(sessions) == 15


async def test_a_held_head_failing_again_waits_its_back_off_with_the_attempt_and_error_recorded(
    database_url, nats_url
):
    consumer = order_probe(backoff_s=(0.1, 30), max_deliver=3)
    async with pipeline(database_url, nats_url, consumer) as (sessions, _, runner, _):
        Faults.poison.add("customer-a@1")
        poison = await register_customer(sessions, "customer-a")

        async def second_attempt_recorded():
            return await holds(sessions) == [("customer-a", 2, False)]

        await wait_until(second_attempt_recorded)
        async with sessions() as session:
            error, wait_s = (
                await session.execute(
                    text(
                        "SELECT last_error, extract(epoch FROM next_attempt_at - now()) FROM consumer_holds "
                        "WHERE aggregate_id = 'customer-a'"
                    )
                )
            ).one()
        # The second failure's own back-off (30 s) lies ahead; the head is not retried meanwhile.
        assert error == "ValueError: a field this probe refuses" and 20 < wait_s <= 30
        assert Faults.handler_runs[str(poison.event_id)] == 2 and runner.dead_lettered == 0


async def test_a_handler_failing_on_its_last_attempt_dead_letters_the_event_with_its_error_and_goes_on(
    database_url, nats_url
):
    """max_deliver=1: the first delivery is also the last attempt. Its failure is a dead letter at once,
    with the handler's error and the attempt count; the event and its aggregate's later one wait parked, and
    the consumer applies everything else, before and after, without running the handler on it again."""
    consumer = order_probe(backoff_s=(0.1,), max_deliver=1)
    async with pipeline(database_url, nats_url, consumer) as (sessions, nc, runner, _):
        js = nc.jetstream()
        Faults.poison.add("customer-a@1")
        poison = await register_customer(sessions, "customer-a")
        await update_customer(sessions, "customer-a", 1)
        for customer in range(3):
            await register_customer(sessions, f"other-{customer}")

        async def dead_lettered_and_parked():
            return runner.dead_lettered == 1 and await parked_versions(sessions, "customer-a") == [1, 2]

        await wait_until(dead_lettered_and_parked)
        # A later round of the hold retries, which would retry the dead-lettered head too if it were due: at
        # max_deliver=1 only a replay brings one about. Another event fails its only attempt, is replayed
        # and applied.
        Faults.handler_once.add("customer-marker@1")
        await register_customer(sessions, "customer-marker")

        async def marker_dead_lettered():
            return runner.dead_lettered == 2

        await wait_until(marker_dead_lettered)
        [marker] = [
            letter
            for letter in await deadletter.list_dead_letters(js)
            if letter.event_id != str(poison.event_id)
        ]
        await deadletter.replay(js, consumer=consumer.durable, sequences={marker.sequence})
        await register_customer(sessions, "after-the-dead-letter")

        async def the_others_applied():
            order = await applied_order(sessions)
            return order == {f"other-{n}": [1] for n in range(3)} | {
                "customer-marker": [1],
                "after-the-dead-letter": [1],
            }

        await wait_until(the_others_applied)
        assert Faults.handler_runs[str(poison.event_id)] == 1
        assert await holds(sessions) == [("customer-a", 1, True)]
        [letter] = await deadletter.list_dead_letters(js)
        assert (letter.event_id, letter.attempts, letter.subject) == (str(poison.event_id), 1, poison.subject)
        assert letter.error == "ValueError: a field this probe refuses"
        assert letter.consumer == consumer.durable


async def test_a_handler_added_on_restart_applies_the_events_published_before_it_existed(
    database_url, nats_url, caplog: pytest.LogCaptureFixture
):
    async with pipeline(database_url, nats_url, order_probe(CustomerRegistered)) as (sessions, _, _, _):
        for customer in range(3):
            await register_customer(sessions, f"customer-{customer}")
            await update_customer(sessions, f"customer-{customer}", 1)

        async def registrations_applied():
            return await applied_order(sessions) == {f"customer-{n}": [1] for n in range(3)}

        await wait_until(registrations_applied)
        assert await unpublished_count(sessions) == 0
        old_durable = order_probe(CustomerRegistered).subscription_durable

    widened = order_probe(CustomerRegistered, CustomerUpdated)
    assert widened.subscription_durable != old_durable
    async with pipeline(database_url, nats_url, widened) as (sessions, nc, _, _):

        async def updates_applied():
            return await applied_order(sessions) == {f"customer-{n}": [1, 2] for n in range(3)}

        await wait_until(updates_applied)
        names = [info.name for info in await nc.jetstream().consumers_info(STREAM)]
        assert names == [widened.subscription_durable]
    [replaced] = [
        r.getMessage() for r in caplog.records if "subscribes to other subjects now" in r.getMessage()
    ]
    assert replaced == (
        f"consumer {widened.name} subscribes to other subjects now: durable {widened.subscription_durable} "
        f"replaces {old_durable} and reads {STREAM} from its start (the inbox skips what was already applied)"
    )
    async with sessions() as session:
        applied = await session.execute(text("SELECT count(*) FROM probe_applied_log"))
        assert applied.scalar_one() == 6  # the registrations were not applied a second time


async def test_one_runner_per_service_consumes_and_a_standby_takes_over(database_url, nats_url):
    engine = create_engine(database_url)
    own_nats = await connect_nats(nats_url, name="standby")
    second = ConsumerRunner(
        [order_probe()], js=own_nats.jetstream(), sessions=session_factory(engine), clock=SystemClock()
    )
    stop_second = asyncio.Event()
    background: list[asyncio.Task[None]] = []
    try:
        async with pipeline(database_url, nats_url, order_probe()) as (sessions, _, first, _):

            async def first_leads():
                return first.leading

            await wait_until(first_leads)
            background.append(asyncio.create_task(second.run(stop_second)))

            async def second_stands_by():  # it asked for the lock, and was refused
                return await standing_by(sessions) == 1

            await wait_until(second_stands_by)
            await register_customer(sessions, "customer-a")

            async def applied():
                return "customer-a" in await applied_order(sessions)

            await wait_until(applied)
            assert not second.leading and second.applied == 0
        # The pipeline stopped the first runner: the standby takes the lock and the events that follow.
        writer = session_factory(engine)

        async def second_leads():
            return second.leading

        await wait_until(second_leads, timeout=15)
        relay = OutboxRelay(
            RelayConfig(service=PRODUCER, database_url=database_url, poll_interval_s=0.2), own_nats
        )
        background.append(asyncio.create_task(relay.run(stop_second)))
        await update_customer(writer, "customer-a", 1)

        async def applied_by_the_standby():
            return (await applied_order(writer)).get("customer-a") == [1, 2]

        await wait_until(applied_by_the_standby)
        assert second.applied == 1
    finally:
        stop_second.set()
        await asyncio.wait_for(asyncio.gather(*background), 10)
        await own_nats.close()
        await engine.dispose()


async def test_a_leader_cut_off_while_its_standby_takes_the_lock_stands_by_and_nothing_is_applied_twice(
    database_url, nats_url, database_proxy, caplog: pytest.LogCaptureFixture
):
    """The leader's database connections are cut; the standby (which still reaches the database) takes the
    lock; when the old leader reaches the database again it finds the lock taken and stands by."""
    engine = create_engine(database_url)
    own_nats = await connect_nats(nats_url, name="standby")
    second = ConsumerRunner(
        [order_probe()], js=own_nats.jetstream(), sessions=session_factory(engine), clock=SystemClock()
    )
    stop_second = asyncio.Event()
    standby = None
    try:
        async with pipeline(
            database_url, nats_url, order_probe(), consumer_database_url=database_proxy.url
        ) as (sessions, _, first, _):

            async def first_leads():
                return first.leading

            await wait_until(first_leads)
            standby = asyncio.create_task(second.run(stop_second))

            async def second_stands_by():
                return await standing_by(sessions) == 1

            await wait_until(second_stands_by)
            await database_proxy.cut()

            async def second_leads():
                return second.leading

            await wait_until(second_leads, timeout=15)
            await database_proxy.restore()

            async def first_gave_way():
                lost = "consumers of analytics lost their leadership; standing by"
                return not first.leading and any(r.getMessage() == lost for r in caplog.records)

            await wait_until(first_gave_way, timeout=15)
            await register_customer(sessions, "customer-after")

            async def applied_by_the_new_leader():
                return (await applied_order(sessions)).get("customer-after") == [1]

            await wait_until(applied_by_the_new_leader)
            assert (first.applied, second.applied) == (0, 1)
            assert first.leading is False and second.leading is True
    finally:
        stop_second.set()
        if standby is not None:
            await asyncio.wait_for(standby, 10)
        await own_nats.close()
        await engine.dispose()


async def test_a_runner_started_while_its_database_is_away_stands_by_says_so_and_leads_once_it_answers(
    database_url, nats_url, database_proxy, caplog: pytest.LogCaptureFixture
):
    await create_tables(database_url)
    writer, reader = create_engine(database_url), create_engine(database_proxy.url)
    nc = await connect_nats(nats_url, name="late-database")
    for spec in [service_stream(PRODUCER), *platform_streams()]:
        await declare_stream(nc.jetstream(), spec)
    runner = ConsumerRunner(
        [order_probe()], js=nc.jetstream(), sessions=session_factory(reader), clock=SystemClock()
    )
    relay = OutboxRelay(RelayConfig(service=PRODUCER, database_url=database_url, poll_interval_s=0.2), nc)
    stop = asyncio.Event()
    await database_proxy.cut()
    tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(relay.run(stop))]
    try:

        async def said_it_stands_by():
            unreachable = "consumers of analytics: database unreachable; standing by"
            return any(r.getMessage() == unreachable for r in caplog.records)

        await wait_until(said_it_stands_by)
        assert not runner.leading
        sessions = session_factory(writer)
        await register_customer(sessions, "customer-waiting")
        await database_proxy.restore()

        async def applied():
            return (await applied_order(sessions)).get("customer-waiting") == [1]

        await wait_until(applied, timeout=30)
        assert runner.leading and runner.applied == 1
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await nc.close()
        await writer.dispose()
        await reader.dispose()


async def test_a_handler_running_longer_than_ack_wait_keeps_its_message_and_runs_once(database_url, nats_url):
    consumer = order_probe(ack_wait_s=1)
    async with pipeline(database_url, nats_url, consumer) as (sessions, nc, _, _):
        Faults.slow_s["customer-slow@1"] = 4.0  # four ack waits; set before the relay can publish it
        slow = await register_customer(sessions, "customer-slow")

        async def handler_started():
            return Faults.handler_runs.get(str(slow.event_id)) == 1

        await wait_until(handler_started)
        # Anyone else pulling from the durable meanwhile would be handed the message once its ack wait ran out.
        other = await nc.jetstream().pull_subscribe_bind(durable=consumer.subscription_durable, stream=STREAM)
        with pytest.raises(NatsTimeoutError):
            await other.fetch(1, timeout=2.5)
        await other.unsubscribe()

        async def applied():
            return "customer-slow" in await applied_order(sessions)

        await wait_until(applied)
        info = await nc.jetstream().consumer_info(STREAM, consumer.subscription_durable)
        assert info.num_redelivered == 0 and info.num_ack_pending == 0
        assert Faults.handler_runs[str(slow.event_id)] == 1


async def advisory_lock_holders(sessions: Any) -> list[int]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) AND granted"
            )
        )
        return sorted(rows.scalars())


async def standing_by(sessions: Any) -> int:
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


async def test_the_leadership_lock_stays_on_one_connection_and_is_released_when_the_runner_stops(
    database_url, nats_url
):
    await create_tables(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    own_nats = await connect_nats(nats_url, name="leader")
    for spec in [service_stream(PRODUCER), *platform_streams()]:
        await declare_stream(own_nats.jetstream(), spec)
    runner = ConsumerRunner([order_probe()], js=own_nats.jetstream(), sessions=sessions, clock=SystemClock())
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:

        async def leading():
            return runner.leading

        await wait_until(leading)
        [holder] = await advisory_lock_holders(sessions)

        async def leadership_checked():  # the runner's periodic check ran, on the lock's connection
            async with sessions() as session:
                query = await session.execute(
                    text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": holder}
                )
                return query.scalar_one_or_none() == "SELECT 1"

        await wait_until(leadership_checked)
        assert await advisory_lock_holders(sessions) == [holder]
        stop.set()
        await asyncio.wait_for(task, 10)
        # The engine, and so its pooled connections, live on: the lock must not stay behind on one of them.
        assert await advisory_lock_holders(sessions) == []
    finally:
        stop.set()
        await own_nats.close()
        await engine.dispose()
