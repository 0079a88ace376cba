"""Durable timers: "do this at that time", stored in the service's database, fired exactly once while several
replicas run, surviving restarts, on the injected clock (ADR 15).

A timer is a row of `timers` with a kind (which handler), a key (which thing: unique per kind, so
scheduling is idempotent), a due time and a JSON payload. It is scheduled inside the caller's transaction,
so it exists if and only if the change that wanted it commits. Every replica runs a TimerRunner; a runner
takes one due row with `FOR UPDATE SKIP LOCKED` and runs its handler in the same transaction that marks it
fired: the handler's writes (its state, its events through the outbox, the next timers it schedules) commit
together with the mark, or not at all. Two replicas never take the same row, and a replica that dies
mid-handler leaves the row unmarked and unlocked for the next taker.

What a handler does outside that transaction (an HTTP call to an SMS provider) is not undone by a rollback:
if the process dies after such a call and before the commit, the timer fires again. Handlers that call out
make the call idempotent on the provider's side where it can be (an id it dedupes on).

A handler that raises is retried on `backoff_s`; after `max_attempts` the timer is marked failed, logged as
an ALERT and counted by `timer_health`. An unreachable database is not an attempt: the runner waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, DriverTransaction, Unit, execute_on_driver, libpq_url
from pitlane_platform.logging import describe_exception
from pitlane_platform.messaging.faults import is_infrastructure_error
from pitlane_platform.schema import TIMERS_CHANNEL
from pitlane_platform.telemetry import context_from_headers, inject_trace_headers, start_span

log = logging.getLogger(__name__)

# Kept with the trace headers: the correlation of what scheduled the timer (a visit's), which the events its
# handler emits carry on however much later it fires.
CORRELATION_HEADER = "pitlane-correlation-id"

_PENDING = "fired_at IS NULL AND cancelled_at IS NULL AND failed_at IS NULL"

# A new timer, or (replace) the pending one of the same kind and key moved to the new time and payload.
# A timer that already fired, failed or was cancelled is never revived by scheduling it again: its key
# names one occurrence (one survey, one reminder step), and that occurrence is over.
_SCHEDULE = f"""
    WITH scheduled AS (
        INSERT INTO timers (kind, key, due_at, payload, trace_headers)
        SELECT %(kind)s, s.key, s.due_at, s.payload, %(trace_headers)s::jsonb
        FROM jsonb_to_recordset(%(timers)s::jsonb) AS s(key text, due_at timestamptz, payload jsonb)
        ON CONFLICT (kind, key) DO UPDATE
            SET due_at = excluded.due_at, payload = excluded.payload, trace_headers = excluded.trace_headers,
                attempts = 0, last_error = NULL
            WHERE %(replace)s
              AND timers.fired_at IS NULL AND timers.cancelled_at IS NULL AND timers.failed_at IS NULL
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM scheduled), pg_notify('{TIMERS_CHANNEL}', '')
"""
_CANCEL = f"""
    UPDATE timers SET cancelled_at = %(now)s
    WHERE kind = %(kind)s AND key = %(key)s AND {_PENDING}
    RETURNING 1
"""

_CANCEL_PREFIX = f"""
    WITH cancelled AS (
        UPDATE timers SET cancelled_at = %(now)s
        WHERE kind = %(kind)s AND starts_with(key, %(prefix)s) AND {_PENDING}
        RETURNING 1
    )
    SELECT count(*) FROM cancelled
"""

# Oldest due first; SKIP LOCKED: what another replica is firing is not waited for, it is simply not ours.
_TAKE_DUE = f"""
    SELECT id, kind, key, due_at, payload, attempts, trace_headers FROM timers
    WHERE {_PENDING} AND due_at <= %(now)s AND kind = ANY(%(kinds)s)
    ORDER BY due_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""

_MARK_FIRED = "UPDATE timers SET fired_at = %(now)s, attempts = attempts + 1 WHERE id = %(id)s"

_RECORD_FAILURE = f"""
    UPDATE timers
    SET attempts = attempts + 1, last_error = %(error)s,
        due_at = CASE WHEN %(give_up)s THEN due_at ELSE %(retry_at)s END,
        failed_at = CASE WHEN %(give_up)s THEN %(now)s END
    WHERE id = %(id)s AND {_PENDING}
"""

_HEALTH = f"""
    SELECT count(*) FILTER (WHERE {_PENDING}),
           count(*) FILTER (WHERE {_PENDING} AND due_at <= %(late_before)s),
           count(*) FILTER (WHERE failed_at IS NOT NULL),
           min(due_at) FILTER (WHERE {_PENDING})
    FROM timers
"""


@dataclass(frozen=True)
class Timer:
    id: int
    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any]
    attempts: int  # failed attempts before this one
    trace_headers: dict[str, str] = field(default_factory=dict)

    @property
    def correlation_id(self) -> UUID | None:
        """The correlation it was scheduled in (`schedule(correlation_id=...)`), for the events it causes."""
        stored = self.trace_headers.get(CORRELATION_HEADER)
        return UUID(stored) if stored else None


@dataclass(frozen=True)
class TimerContext:
    """What a handler gets: the firing timer, the transaction its effects are written in, and "now" on the
    service's clock (a timer may fire later than due: after an outage, or held by quiet hours)."""

    timer: Timer
    unit: DriverTransaction
    now: datetime


TimerHandler = Callable[[TimerContext], Awaitable[None]]


class TimerHandlers:
    """The handlers of one service, by timer kind. `@timers.on("survey.send")`."""

    def __init__(self) -> None:
        self._handlers: dict[str, TimerHandler] = {}

    def on(self, kind: str) -> Callable[[TimerHandler], TimerHandler]:
        def register(handler: TimerHandler) -> TimerHandler:
            if kind in self._handlers:
                raise ValueError(f"a handler for timer kind {kind!r} is registered already")
            self._handlers[kind] = handler
            return handler

        return register

    def handler(self, kind: str) -> TimerHandler:
        return self._handlers[kind]

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)


@dataclass(frozen=True)
class NewTimer:
    """One timer to schedule: its key, when, and the payload its handler gets."""

    key: str
    at: datetime
    payload: Mapping[str, Any]


async def schedule(
    unit: Unit,
    kind: str,
    key: str,
    due_at: datetime,
    payload: Mapping[str, Any] | None = None,
    *,
    replace: bool = False,
    correlation_id: UUID | None = None,
) -> bool:
    """Schedule a timer in the caller's transaction. Returns False when a timer of that kind and key exists
    already and was left as it is: scheduling is idempotent (a redelivered event schedules nothing new).
    With `replace`, a pending one moves to the new time and payload (a rescheduled reminder); one that has
    fired, failed or been cancelled stays so. Keys are ids, never personal data: they appear in logs.
    `correlation_id`: the business flow it belongs to (the event that scheduled it's), which the handler's
    events keep (`Timer.correlation_id`)."""
    timers = [NewTimer(key, due_at, payload or {})]
    return await schedule_many(unit, kind, timers, replace=replace, correlation_id=correlation_id) == 1


async def schedule_many(
    unit: Unit,
    kind: str,
    timers: Sequence[NewTimer],
    *,
    replace: bool = False,
    correlation_id: UUID | None = None,
) -> int:
    """`schedule` for many timers of one kind in one statement (a rule change laying out a thousand
    vehicles' reminders); a key given twice counts once, with its last time and payload. Returns how many
    were scheduled or moved."""
    if any(timer.at.tzinfo is None for timer in timers):
        raise ValueError("due_at must be timezone-aware")
    latest = {timer.key: timer for timer in timers}
    if not latest:
        return 0
    row = await execute_on_driver(
        unit,
        "INSERT timers",
        _SCHEDULE,
        {
            "kind": kind,
            # One JSON document, not arrays: psycopg dumps arrays element by element in Python, and a rule
            # change schedules thousands of timers at once.
            "timers": json.dumps(
                [{"key": t.key, "due_at": t.at.isoformat(), "payload": t.payload} for t in latest.values()],
                default=str,
            ),
            # The trace of whatever scheduled it: the handler runs in it, hours later, so one trace leads
            # from a request to what its timers did (a work order's completion to its NPS survey).
            "trace_headers": json.dumps(
                inject_trace_headers()
                | ({CORRELATION_HEADER: str(correlation_id)} if correlation_id is not None else {})
            ),
            "replace": replace,
        },
    )
    return int(row[0]) if row else 0


async def cancel(unit: Unit, kind: str, key: str, *, now: datetime) -> bool:
    """Cancel a pending timer in the caller's transaction; False if there was none pending."""
    row = await execute_on_driver(unit, "UPDATE timers", _CANCEL, {"kind": kind, "key": key, "now": now})
    return row is not None


async def cancel_prefixed(unit: Unit, kind: str, prefix: str, *, now: datetime) -> int:
    """Cancel every pending timer of a kind whose key starts with `prefix` (all of one customer's, say)."""
    row = await execute_on_driver(
        unit, "UPDATE timers", _CANCEL_PREFIX, {"kind": kind, "prefix": prefix, "now": now}
    )
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class TimerHealth:
    pending: int
    late: int  # due for longer than the allowed lateness and not fired: no runner, or handlers failing
    failed: int  # gave up after max_attempts
    next_due_at: datetime | None


async def timer_health(unit: Unit, *, now: datetime, allowed_lateness: timedelta) -> TimerHealth:
    row = await execute_on_driver(unit, "SELECT timers", _HEALTH, {"late_before": now - allowed_lateness})
    assert row is not None
    return TimerHealth(pending=row[0], late=row[1], failed=row[2], next_due_at=row[3])


@dataclass
class TimerRunnerStatus:
    fired: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    running: bool = False
    # The latest "now" (on the service's clock) at which a look for due timers found none left: every timer
    # due by then has fired. Tests wait on it after moving the clock, before asserting that nothing fired.
    checked_until: datetime | None = None


@dataclass
class TimerRunner:
    """Fires the due timers of one service process. Every replica runs one; `concurrency` timers fire at
    once in each (handlers mostly wait on providers)."""

    handlers: TimerHandlers
    driver: DriverPool
    clock: Clock
    database_url: str
    service: str
    poll_interval_s: float = 1.0
    concurrency: int = 4
    backoff_s: Sequence[float] = (5.0, 30.0, 120.0, 600.0)
    max_attempts: int = 5
    statement_timeout_s: float = 30.0
    status: TimerRunnerStatus = field(default_factory=TimerRunnerStatus)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: int = field(default=0, init=False)  # timers this runner's workers are firing right now

    async def run(self, stop: asyncio.Event) -> None:
        """Fire what is due until `stop` is set; woken by NOTIFY on every schedule, polling otherwise (the
        injected clock moves without notifying anyone)."""
        if not self.handlers.kinds:
            return
        self.status.running = True
        listener = asyncio.create_task(self._listen(stop), name=f"{self.service} timer listener")
        workers = [
            asyncio.create_task(self._work(stop), name=f"{self.service} timer worker {n}")
            for n in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            self.status.running = False
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def fire_due(self, limit: int | None = None) -> int:
        """Fire due timers one at a time until none is due (or `limit` fired); returns how many fired.
        Raises on an unreachable database (the caller decides how to wait)."""
        fired = 0
        while limit is None or fired < limit:
            if not await self._fire_one():
                break
            fired += 1
        return fired

    async def _work(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                fired = await self.fire_due(limit=100)
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                self.status.last_error = f"database: {describe_exception(exc)}"
                log.warning("timers: database unavailable; waiting", extra={"service": self.service})
                await _sleep_unless(stop, self.poll_interval_s * 2)
                continue
            if fired:
                continue
            self._wake.clear()
            await _first_of(stop, self._wake, within_s=self.poll_interval_s)

    async def _fire_one(self) -> bool:
        now = self.clock.now()
        taken = False
        try:
            async with self.driver.transaction() as unit:
                await unit.connection.execute(
                    f"SET LOCAL statement_timeout = {int(self.statement_timeout_s * 1000)}"
                )
                async with unit.connection.cursor(row_factory=dict_row) as cursor:
                    await cursor.execute(_TAKE_DUE, {"now": now, "kinds": self.handlers.kinds})
                    row = await cursor.fetchone()
                if row is None:
                    # Found none — unless one of our own workers is still firing one (SKIP LOCKED passed
                    # over it): "caught up" must mean every timer due by `now` has fired and committed.
                    if self._in_flight == 0 and (
                        self.status.checked_until is None or now > self.status.checked_until
                    ):
                        self.status.checked_until = now
                    return False
                taken = True
                self._in_flight += 1
                timer = Timer(**{**row, "trace_headers": row["trace_headers"] or {}})
                fired = await self._fire(unit, timer, now)
        finally:
            if taken:
                self._in_flight -= 1
        if fired:  # counted once its transaction has committed
            self.status.fired += 1
        return True

    async def _fire(self, unit: DriverTransaction, timer: Timer, now: datetime) -> bool:
        """Run the timer's handler in a savepoint of the transaction that took it and mark it fired there;
        False when the handler failed (the failure is recorded instead)."""
        try:
            with start_span(
                f"timer {timer.kind}",
                context=context_from_headers(timer.trace_headers),
                attributes={"pitlane.timer.kind": timer.kind, "pitlane.timer.key": timer.key},
            ):
                async with unit.connection.transaction():  # a savepoint: a failed handler's writes go
                    await self.handlers.handler(timer.kind)(TimerContext(timer=timer, unit=unit, now=now))
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            await self._record_failure(unit, timer, exc, now)
            return False
        await unit.connection.execute(_MARK_FIRED, {"id": timer.id, "now": now})
        return True

    async def _record_failure(
        self, unit: DriverTransaction, timer: Timer, error: Exception, now: datetime
    ) -> None:
        attempt = timer.attempts + 1
        give_up = attempt >= self.max_attempts
        delay = self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)]
        description = describe_exception(error)
        self.status.failed_attempts += 1
        self.status.last_error = description
        await unit.connection.execute(
            _RECORD_FAILURE,
            {
                "id": timer.id,
                "error": description,
                "give_up": give_up,
                "retry_at": now + timedelta(seconds=delay),
                "now": now,
            },
        )
        extra = {"service": self.service, "kind": timer.kind, "key": timer.key, "attempt": attempt}
        if give_up:
            log.error("ALERT timer failed for good after %d attempts: %s", attempt, description, extra=extra)
        else:
            log.warning("timer failed; retrying in %.0f s: %s", delay, description, extra=extra)

    async def _listen(self, stop: asyncio.Event) -> None:
        """Wake the workers when a timer is scheduled (NOTIFY on commit); polling covers a lost connection."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self.database_url), autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {TIMERS_CHANNEL}")
                    async for _ in connection.notifies():
                        self._wake.set()
            except (psycopg.OperationalError, psycopg.InterfaceError):
                await _sleep_unless(stop, self.poll_interval_s * 2)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _first_of(stop: asyncio.Event, wake: asyncio.Event, *, within_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
