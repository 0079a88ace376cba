"""Durable timers against real PostgreSQL, on an injected clock: fired when due and not before, exactly once
across replicas, restarts, a handler's failures and a database outage; scheduled only with the transaction
that wanted them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from opentelemetry import context as otel_context

from pitlane_platform.clock import FixedClock
from pitlane_platform.db import DriverPool, fetch_on_driver, libpq_url
from pitlane_platform.scheduling.timers import (
    NewTimer,
    TimerContext,
    TimerHandlers,
    TimerRunner,
    cancel,
    cancel_prefixed,
    schedule,
    schedule_many,
    timer_health,
)
from pitlane_platform.telemetry import context_from_headers, current_trace_id
from pitlane_platform.testing.dbproxy import DatabaseProxy
from platform_flow import create_tables, wait_until

START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
EFFECTS_DDL = "CREATE TABLE timer_effects (id bigserial PRIMARY KEY, key text NOT NULL, fired_at timestamptz)"


class Behaviour:
    """What the test's handler does: fail a key's first N attempts, or block a key until released."""

    def __init__(self) -> None:
        self.failures_left: dict[str, int] = {}
        self.always_fail: set[str] = set()
        self.blocked: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}


def handlers_for(behaviour: Behaviour) -> TimerHandlers:
    handlers = TimerHandlers()

    @handlers.on("probe")
    async def record(ctx: TimerContext) -> None:
        key = ctx.timer.key
        # Written before failing: a failed attempt's writes must be rolled back with it.
        await ctx.unit.connection.execute(
            "INSERT INTO timer_effects (key, fired_at) VALUES (%s, %s)", (key, ctx.now)
        )
        if key in behaviour.entered:
            behaviour.entered[key].set()
        if key in behaviour.blocked:
            await behaviour.blocked[key].wait()
        if key in behaviour.always_fail:
            raise RuntimeError("the handler refuses this one")
        if behaviour.failures_left.get(key, 0) > 0:
            behaviour.failures_left[key] -= 1
            raise RuntimeError("the handler fails this one once")

    return handlers


@pytest.fixture
async def timer_db(database_url: str) -> AsyncIterator[str]:
    await create_tables(database_url)
    pool = DriverPool(database_url)
    await pool.open()
    async with pool.transaction() as unit:
        await unit.connection.execute(EFFECTS_DDL)
    await pool.close()
    yield database_url


@asynccontextmanager
async def running_runner(
    database_url: str, clock: FixedClock, behaviour: Behaviour, **options: object
) -> AsyncIterator[TimerRunner]:
    """A replica: its own connection pool and runner, stopped when the block ends."""
    pool = DriverPool(database_url)
    await pool.open()
    runner = TimerRunner(
        handlers_for(behaviour),
        driver=pool,
        clock=clock,
        database_url=database_url,
        service="test",
        poll_interval_s=0.05,
        **options,  # type: ignore[arg-type]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await pool.close()


async def scheduled(database_url: str, *timers: tuple[str, datetime], replace: bool = False) -> list[bool]:
    pool = DriverPool(database_url)
    await pool.open()
    try:
        async with pool.transaction() as unit:
            return [
                await schedule(unit, "probe", key, due, {"key": key}, replace=replace) for key, due in timers
            ]
    finally:
        await pool.close()


async def effect_counts(database_url: str) -> dict[str, int]:
    pool = DriverPool(database_url)
    await pool.open()
    try:
        async with pool.transaction() as unit:
            rows = await fetch_on_driver(
                unit, "SELECT", "SELECT key, count(*) FROM timer_effects GROUP BY key", {}
            )
        return {key: count for key, count in rows}
    finally:
        await pool.close()


async def terminate_other_backends(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as admin:
        await admin.execute(
            """
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
            """
        )


async def timer_row(database_url: str, key: str) -> dict[str, object]:
    pool = DriverPool(database_url)
    await pool.open()
    try:
        async with pool.transaction() as unit:
            rows = await fetch_on_driver(
                unit, "SELECT", "SELECT * FROM timers WHERE key = %(key)s", {"key": key}, as_dicts=True
            )
        return dict(rows[0])
    finally:
        await pool.close()


def fired(database_url: str, key: str) -> Callable[[], Awaitable[bool]]:
    async def has_fired() -> bool:
        return (await timer_row(database_url, key))["fired_at"] is not None

    has_fired.__name__ = f"timer {key} fired"
    return has_fired


async def test_a_timer_fires_when_the_clock_reaches_it_and_not_before(timer_db: str) -> None:
    clock = FixedClock(START)
    await scheduled(timer_db, ("now", START), ("in-two-hours", START + timedelta(hours=2)))
    async with running_runner(timer_db, clock, Behaviour()):
        await wait_until(fired(timer_db, "now"))
        # The due one fired on this runner's polls, so they looked at the later one too and left it.
        assert await effect_counts(timer_db) == {"now": 1}
        clock.advance(timedelta(hours=1, minutes=59))
        await asyncio.sleep(0.3)  # several polls of 0.05 s on the advanced clock
        assert await effect_counts(timer_db) == {"now": 1}
        clock.advance(timedelta(minutes=1))
        await wait_until(fired(timer_db, "in-two-hours"))
    assert await effect_counts(timer_db) == {"now": 1, "in-two-hours": 1}
    row = await timer_row(timer_db, "in-two-hours")
    assert row["fired_at"] == START + timedelta(hours=2)  # fired at "now" on the injected clock


async def test_a_timer_scheduled_in_a_transaction_that_rolls_back_does_not_exist(timer_db: str) -> None:
    pool = DriverPool(timer_db)
    await pool.open()
    with pytest.raises(RuntimeError):
        async with pool.transaction() as unit:
            await schedule(unit, "probe", "rolled-back", START, {})
            raise RuntimeError("the change that wanted the timer failed")
    async with pool.transaction() as unit:
        rows = await fetch_on_driver(unit, "SELECT", "SELECT key FROM timers", {})
    await pool.close()
    assert rows == []


async def test_scheduling_a_key_twice_keeps_one_timer_and_replace_moves_only_a_pending_one(
    timer_db: str,
) -> None:
    later = START + timedelta(days=1)
    assert await scheduled(timer_db, ("once", START), ("once", later)) == [True, False]
    assert (await timer_row(timer_db, "once"))["due_at"] == START
    assert await scheduled(timer_db, ("once", later), replace=True) == [True]
    assert (await timer_row(timer_db, "once"))["due_at"] == later
    clock = FixedClock(later)
    async with running_runner(timer_db, clock, Behaviour()):
        await wait_until(fired(timer_db, "once"))
    # A fired timer is an occurrence that is over: neither scheduling nor replacing revives it.
    assert await scheduled(timer_db, ("once", later + timedelta(days=1)), replace=True) == [False]
    row = await timer_row(timer_db, "once")
    assert row["due_at"] == later and row["fired_at"] == later
    assert await effect_counts(timer_db) == {"once": 1}


async def test_many_timers_scheduled_in_one_statement_keep_to_the_same_rules(timer_db: str) -> None:
    later = START + timedelta(days=1)
    await scheduled(timer_db, ("kept", START), ("moved", START))
    pool = DriverPool(timer_db)
    await pool.open()
    async with pool.transaction() as unit:
        batch = [
            NewTimer("kept", later, {"key": "kept"}),
            NewTimer("new", START, {"key": "first"}),
            NewTimer("new", later, {"key": "new"}),  # a key given twice: its last time and payload
        ]
        assert await schedule_many(unit, "probe", batch) == 1
    async with pool.transaction() as unit:
        assert (
            await schedule_many(unit, "probe", [NewTimer("moved", later, {"key": "moved"})], replace=True)
            == 1
        )
        assert await schedule_many(unit, "probe", []) == 0
    await pool.close()
    assert (await timer_row(timer_db, "kept"))["due_at"] == START  # not replaced: left as it was
    assert (await timer_row(timer_db, "moved"))["due_at"] == later
    new = await timer_row(timer_db, "new")
    assert (new["due_at"], new["payload"]) == (later, {"key": "new"})
    async with running_runner(timer_db, FixedClock(later), Behaviour()):
        await wait_until(fired(timer_db, "new"))
        await wait_until(fired(timer_db, "moved"))
    assert await effect_counts(timer_db) == {"kept": 1, "moved": 1, "new": 1}


async def test_a_runner_is_not_caught_up_while_one_of_its_workers_is_still_firing(timer_db: str) -> None:
    behaviour = Behaviour()
    behaviour.blocked["slow"] = asyncio.Event()
    behaviour.entered["slow"] = asyncio.Event()
    await scheduled(timer_db, ("slow", START))
    async with running_runner(timer_db, FixedClock(START), behaviour, concurrency=3) as runner:
        await asyncio.wait_for(behaviour.entered["slow"].wait(), timeout=10)
        await asyncio.sleep(0.3)  # the other workers poll every 0.05 s and find nothing they may take
        assert runner.status.checked_until is None  # "caught up" would be a lie: the slow one is not done
        behaviour.blocked["slow"].set()

        async def caught_up() -> bool:
            return runner.status.checked_until == START

        await wait_until(caught_up)
        assert (await timer_row(timer_db, "slow"))["fired_at"] == START  # committed before "caught up"


async def test_a_cancelled_timer_never_fires(timer_db: str) -> None:
    await scheduled(
        timer_db, ("customer-7:survey", START), ("customer-7:reminder", START), ("customer-8:survey", START)
    )
    pool = DriverPool(timer_db)
    await pool.open()
    async with pool.transaction() as unit:
        assert await cancel(unit, "probe", "customer-8:survey", now=START)
        assert not await cancel(unit, "probe", "customer-8:survey", now=START)  # nothing pending left
    async with pool.transaction() as unit:
        assert await cancel_prefixed(unit, "probe", "customer-7:", now=START) == 2
    await pool.close()
    await scheduled(timer_db, ("witness", START))
    async with running_runner(timer_db, FixedClock(START), Behaviour()):
        await wait_until(fired(timer_db, "witness"))
    assert await effect_counts(timer_db) == {"witness": 1}


async def test_two_replicas_fire_each_of_many_timers_exactly_once(timer_db: str) -> None:
    keys = [f"t{n:04d}" for n in range(600)]
    await scheduled(timer_db, *[(key, START + timedelta(seconds=n % 60)) for n, key in enumerate(keys)])
    clock = FixedClock(START + timedelta(minutes=1))
    behaviour = Behaviour()
    async with (
        running_runner(timer_db, clock, behaviour, concurrency=3) as first,
        running_runner(timer_db, clock, behaviour, concurrency=3) as second,
    ):

        async def all_fired() -> bool:
            return first.status.fired + second.status.fired >= len(keys)

        await wait_until(all_fired, timeout=120)
    counts = await effect_counts(timer_db)
    assert counts == dict.fromkeys(keys, 1)
    assert first.status.fired + second.status.fired == len(keys)


async def test_a_failing_handler_is_retried_on_its_back_off_and_its_failed_writes_are_undone(
    timer_db: str,
) -> None:
    clock = FixedClock(START)
    behaviour = Behaviour()
    behaviour.failures_left["flaky"] = 1
    await scheduled(timer_db, ("flaky", START))
    async with running_runner(timer_db, clock, behaviour, backoff_s=(60.0,)) as runner:

        async def attempted() -> bool:
            return runner.status.failed_attempts == 1

        await wait_until(attempted)
        row = await timer_row(timer_db, "flaky")
        assert row["attempts"] == 1 and row["fired_at"] is None
        assert row["due_at"] == START + timedelta(seconds=60)
        assert "the handler fails this one once" in str(row["last_error"])
        assert await effect_counts(timer_db) == {}  # the failed attempt's insert was rolled back
        clock.advance(timedelta(seconds=60))
        await wait_until(fired(timer_db, "flaky"))
    assert await effect_counts(timer_db) == {"flaky": 1}


async def test_a_handler_that_keeps_failing_is_given_up_with_an_alert(
    timer_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FixedClock(START)
    behaviour = Behaviour()
    behaviour.always_fail.add("doomed")
    await scheduled(timer_db, ("doomed", START))
    pool = DriverPool(timer_db)
    await pool.open()
    with caplog.at_level(logging.WARNING, logger="pitlane_platform.scheduling.timers"):
        async with running_runner(timer_db, clock, behaviour, backoff_s=(1.0,), max_attempts=3) as runner:
            for attempt in (1, 2, 3):

                async def attempts_reached(expected: int = attempt) -> bool:
                    return runner.status.failed_attempts >= expected

                await wait_until(attempts_reached)
                clock.advance(timedelta(seconds=1))
            row = await timer_row(timer_db, "doomed")
            assert row["failed_at"] is not None and row["attempts"] == 3
            async with pool.transaction() as unit:
                health = await timer_health(unit, now=clock.now(), allowed_lateness=timedelta(minutes=5))
            assert (health.failed, health.pending, health.late) == (1, 0, 0)
    await pool.close()
    alerts = [record for record in caplog.records if record.getMessage().startswith("ALERT timer failed")]
    assert len(alerts) == 1 and vars(alerts[0])["key"] == "doomed"
    assert await effect_counts(timer_db) == {}


async def test_a_timer_left_half_done_by_a_dying_replica_fires_once_in_the_next(timer_db: str) -> None:
    clock = FixedClock(START)
    dying = Behaviour()
    dying.entered["cut-short"] = asyncio.Event()
    dying.blocked["cut-short"] = asyncio.Event()  # never released: the replica dies inside the handler
    await scheduled(timer_db, ("cut-short", START))
    pool = DriverPool(timer_db)
    await pool.open()
    runner = TimerRunner(
        handlers_for(dying),
        driver=pool,
        clock=clock,
        database_url=timer_db,
        service="test",
        poll_interval_s=0.05,
    )
    task = asyncio.create_task(runner.run(asyncio.Event()))
    await asyncio.wait_for(dying.entered["cut-short"].wait(), timeout=30)
    # The process is gone: its connection drops, and PostgreSQL rolls its transaction back (a cancelled task
    # in this process may leave its connection checked out, still holding the row: end it as death would).
    await terminate_other_backends(timer_db)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pool.close()
    assert (await timer_row(timer_db, "cut-short"))["fired_at"] is None
    async with running_runner(timer_db, clock, Behaviour()):
        await wait_until(fired(timer_db, "cut-short"))
    assert await effect_counts(timer_db) == {"cut-short": 1}


async def test_timers_survive_a_restart_and_fire_once_after_it(timer_db: str) -> None:
    clock = FixedClock(START)
    await scheduled(timer_db, ("before-restart", START), ("after-restart", START + timedelta(hours=10)))
    async with running_runner(timer_db, clock, Behaviour()):
        await wait_until(fired(timer_db, "before-restart"))
    clock.advance(timedelta(hours=10))
    async with running_runner(timer_db, clock, Behaviour()):
        await wait_until(fired(timer_db, "after-restart"))
        await asyncio.sleep(0.2)  # more polls: nothing fires twice
    assert await effect_counts(timer_db) == {"before-restart": 1, "after-restart": 1}


async def test_a_database_outage_is_waited_out_without_counting_as_an_attempt(
    timer_db: str, database_proxy: DatabaseProxy
) -> None:
    clock = FixedClock(START)
    async with running_runner(database_proxy.url, clock, Behaviour(), max_attempts=1) as runner:
        await database_proxy.cut()
        await scheduled(timer_db, ("during-outage", START))  # through the direct URL

        async def noticed_the_outage() -> bool:
            return runner.status.last_error is not None and runner.status.last_error.startswith("database")

        await wait_until(noticed_the_outage)
        await database_proxy.restore()
        await wait_until(fired(timer_db, "during-outage"))
    row = await timer_row(timer_db, "during-outage")
    assert row["attempts"] == 1 and row["failed_at"] is None  # the firing itself, no failed attempt
    assert await effect_counts(timer_db) == {"during-outage": 1}


async def test_a_timer_fires_in_the_trace_that_scheduled_it(timer_db: str) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    seen: list[str | None] = []
    handlers = TimerHandlers()

    @handlers.on("probe")
    async def note_trace(ctx: TimerContext) -> None:
        seen.append(current_trace_id())

    token = otel_context.attach(context_from_headers({"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}))
    try:
        await scheduled(timer_db, ("traced", START))  # scheduled while handling a traced request
    finally:
        otel_context.detach(token)
    pool = DriverPool(timer_db)
    await pool.open()
    runner = TimerRunner(
        handlers, driver=pool, clock=FixedClock(START), database_url=timer_db, service="test"
    )
    assert await runner.fire_due() == 1  # hours later, outside any trace
    await pool.close()
    assert seen == [trace_id]


async def test_a_timer_fires_in_the_correlation_it_was_scheduled_in(timer_db: str) -> None:
    """Each timer keeps its own scheduler's correlation (a visit's), and one scheduled outside any has none;
    it does not depend on the trace, which a request starts anew."""
    visit, other_visit = uuid4(), uuid4()
    seen: dict[str, UUID | None] = {}
    handlers = TimerHandlers()

    @handlers.on("probe")
    async def note_correlation(ctx: TimerContext) -> None:
        seen[ctx.timer.key] = ctx.timer.correlation_id

    pool = DriverPool(timer_db)
    await pool.open()
    async with pool.transaction() as unit:
        await schedule(unit, "probe", "survey-1", START, correlation_id=visit)
        await schedule_many(
            unit,
            "probe",
            [NewTimer("survey-2", START, {}), NewTimer("survey-3", START, {})],
            correlation_id=other_visit,
        )
        await schedule(unit, "probe", "sweep", START)
    runner = TimerRunner(
        handlers, driver=pool, clock=FixedClock(START), database_url=timer_db, service="test"
    )
    assert await runner.fire_due() == 4
    await pool.close()
    assert seen == {"survey-1": visit, "survey-2": other_visit, "survey-3": other_visit, "sweep": None}
