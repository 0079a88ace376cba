"""Everything a service process runs besides its own code: database, NATS, streams, relay and consumers.

A service builds one ServiceRuntime from its settings and hands its `lifespan` to the HTTP app factory, so
every service starts, becomes ready and stops the same way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from sqlalchemy import Table, text

from pitlane_platform.db import DriverPool, create_engine, session_factory
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import AfterCommit, Consumer, ConsumerRunner
from pitlane_platform.messaging.outbox import set_max_payload
from pitlane_platform.messaging.rebuild import Derivation
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig, outbox_health
from pitlane_platform.messaging.streams import declare_stream, platform_streams, service_stream
from pitlane_platform.migrations import upgrade
from pitlane_platform.scheduling.timers import TimerHandlers, TimerRunner, timer_health
from pitlane_platform.security.audit import AuditTrail
from pitlane_platform.settings import ServiceSettings

log = logging.getLogger(__name__)

# Readiness fails when the audit trail's oldest unwritten note is older than this: requests would be
# served without their trail being kept.
AUDIT_MAX_BACKLOG_S = 30.0
# Readiness fails while a timer has been due for longer than this without firing: no runner is taking them
# (none started, all stuck), or they cannot keep up. A timer that failed for good is an ALERT, not this.
TIMERS_MAX_LATENESS = timedelta(minutes=5)


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        consumers: Sequence[Consumer] = (),
        migrations: Path | None = None,
        after_commit: Sequence[AfterCommit] = (),
        timers: TimerHandlers | None = None,
        read_models: Sequence[Table] = (),
        derive_read_models: Sequence[Derivation] = (),
    ) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.clock = settings.clock()
        self.engine = create_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        # Units of work on fixed SQL only (appends, the outbox, health): no ORM session to pay for.
        self.driver = DriverPool(settings.database_url)
        # Every process that serves HTTP keeps the trail of its requests, API-only ones included.
        self.audit = AuditTrail(self.driver, self.sessions)
        self.consumers = list(consumers)
        self.migrations = migrations
        self.after_commit = list(after_commit)
        # The service's durable timers (scheduling/timers.py): handlers registered here fire in every
        # process that runs the background work, each due timer in exactly one of them.
        self.timers = timers or TimerHandlers()
        self.stream_replicas = settings.stream_replicas
        # Tables that the consumers write and nothing else writes: rebuilt from the streams and swapped in by
        # `pitlane <service> rebuild` (messaging/rebuild.py).
        self.read_models = list(read_models)
        # What computes the read models derived from the others once a rebuild has replayed them
        # (ReadModels.derive).
        self.derive_read_models = derive_read_models
        self.nats: Client | None = None
        self.relay: OutboxRelay | None = None
        self.runner: ConsumerRunner | None = None
        self.timer_runner: TimerRunner | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        if self.migrations is not None and self.settings.migrate_at_start:
            await asyncio.to_thread(upgrade, self.settings.database_url, self.migrations)
        await self.driver.open()
        self._tasks.append(
            asyncio.create_task(self.audit.run(self._stop), name=f"{self.service} audit trail")
        )
        self.nats = await connect_nats(
            self.settings.nats_url, name=self.service, access=self.settings.nats_access()
        )
        set_max_payload(self.nats.max_payload)  # commands that would produce larger events are refused
        js = self.nats.jetstream()
        # The streams this service consumes are declared too, exactly as their producers declare them:
        # services start in any order, and a durable consumer cannot exist before its stream.
        producers = sorted({self.service, *(consumer.source_service for consumer in self.consumers)})
        for spec in [
            *(service_stream(producer, replicas=self.stream_replicas) for producer in producers),
            *platform_streams(replicas=self.stream_replicas),
        ]:
            await declare_stream(js, spec)
        if self.settings.run_background:  # API-only processes leave this to the service's worker
            self.relay = OutboxRelay(
                RelayConfig(
                    service=self.service,
                    database_url=self.settings.database_url,
                    batch_size=self.settings.relay_batch_size,
                    poll_interval_s=self.settings.relay_poll_interval_s,
                ),
                self.nats,
            )
            self._tasks.append(asyncio.create_task(self.relay.run(self._stop), name=f"{self.service} relay"))
            if self.consumers:
                self.runner = ConsumerRunner(
                    self.consumers,
                    js=js,
                    sessions=self.sessions,
                    clock=self.clock,
                    after_commit=self.after_commit,
                    driver=self.driver,
                )
                await self.runner.declare()  # refuse to start on a configuration the server will not keep
                self._tasks.append(
                    asyncio.create_task(self.runner.run(self._stop), name=f"{self.service} consumers")
                )
            if self.timers.kinds:
                self.timer_runner = TimerRunner(
                    self.timers,
                    driver=self.driver,
                    clock=self.clock,
                    database_url=self.settings.database_url,
                    service=self.service,
                    poll_interval_s=self.settings.timer_poll_interval_s,
                    concurrency=self.settings.timer_concurrency,
                )
                self._tasks.append(
                    asyncio.create_task(self.timer_runner.run(self._stop), name=f"{self.service} timers")
                )
        for task in self._tasks:
            task.add_done_callback(_log_crash)
        # What start-up loaded (modules, models, compiled SQL) stays out of every later garbage collection.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:
                log.exception("background task failed while stopping")
        if self.nats is not None:
            await self.nats.drain()
        await self.driver.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def readiness_checks(self) -> list[Callable[[], Awaitable[None]]]:
        async def database() -> None:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        async def nats() -> None:
            if self.nats is None or not self.nats.is_connected:
                raise ConnectionError("not connected to NATS")

        async def outbox() -> None:
            """Events not reaching the broker: a backlog older than allowed, or rows parked for good."""
            async with self.driver.transaction() as transaction:
                health = await outbox_health(transaction.connection)
            problems = health.problems(max_lag_s=self.settings.relay_max_lag_s)
            if problems:
                raise OutboxNotDraining("; ".join(problems))

        async def audit_trail() -> None:
            """Requests whose audit notes the database has not taken for too long."""
            age = self.audit.backlog_age_s()
            if age > AUDIT_MAX_BACKLOG_S:
                raise AuditTrailBehind(f"the oldest unwritten audit note is {age:.0f} s old")

        async def timers() -> None:
            """Due timers nobody fires."""
            async with self.driver.transaction() as unit:
                health = await timer_health(unit, now=self.clock.now(), allowed_lateness=TIMERS_MAX_LATENESS)
            if health.late:
                raise TimersBehind(
                    f"{health.late} timer(s) due for over {TIMERS_MAX_LATENESS} have not fired"
                )

        return [database, nats, outbox, audit_trail, *([timers] if self.timers.kinds else [])]


class AuditTrailBehind(RuntimeError):
    """The audit trail cannot write its notes (the database refuses them)."""


class TimersBehind(RuntimeError):
    """Durable timers are due and no runner fires them."""


class OutboxNotDraining(RuntimeError):
    """The relay's backlog is too old, or it parked events the broker will never accept."""


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
