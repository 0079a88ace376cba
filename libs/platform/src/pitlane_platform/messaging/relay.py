"""The outbox relay: publishes committed outbox rows to JetStream, in commit order, then marks them.

One relay is active per service (a PostgreSQL advisory lock held on its listening connection); others stand
by and take over when the active one's connection goes away. The relay wakes on LISTEN/NOTIFY, polls as a
fallback, waits for JetStream's ack before marking a row, and backs off while NATS is down. A crash between
publishing and marking republishes the rows, and JetStream drops the copies by `Nats-Msg-Id` (the event id)
within the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from nats.js import JetStreamContext

from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.db import libpq_url
from pitlane_platform.schema import OUTBOX_CHANNEL
from pitlane_platform.telemetry import context_from_headers, inject_trace_headers, publish_span

log = logging.getLogger(__name__)

_SELECT_PENDING = """
    SELECT id, subject, headers, payload FROM outbox
    WHERE published_at IS NULL ORDER BY id LIMIT %s
"""
_MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)"
_LAG = "SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL"
_PURGE = "DELETE FROM outbox WHERE published_at < now() - %s::interval"


@dataclass
class RelayStatus:
    active: bool = False
    published: int = 0
    pending: int = 0
    oldest_pending_age_s: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True)
class RelayConfig:
    service: str
    database_url: str
    batch_size: int = 256
    poll_interval_s: float = 1.0
    publish_timeout_s: float = 5.0
    max_backoff_s: float = 5.0
    standby_retry_s: float = 2.0
    keep_published: timedelta = timedelta(days=1)
    report_every_s: float = 10.0


class OutboxRelay:
    def __init__(self, config: RelayConfig, js: JetStreamContext) -> None:
        self.config = config
        self.js = js
        self.status = RelayStatus()
        # Leadership is per service database; the lock key is derived from the service name.
        self._lock_key = int.from_bytes(
            hashlib.sha256(f"outbox-relay:{config.service}".encode()).digest()[:8], "big", signed=True
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Stand by until this relay holds the lock, then publish until `stop` is set."""
        while not stop.is_set():
            try:
                await self._lead(stop)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self.status.active = False
                self.status.last_error = f"database: {exc}"
                log.warning("relay lost its database connection; retrying", extra={"error": str(exc)})
                await _sleep_unless(stop, self.config.standby_retry_s)

    async def _lead(self, stop: asyncio.Event) -> None:
        url = libpq_url(self.config.database_url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listener:
            while not stop.is_set():
                cursor = await listener.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,))
                row = await cursor.fetchone()
                if row and row[0]:
                    break
                await _sleep_unless(stop, self.config.standby_retry_s)
            else:
                return
            await listener.execute(f"LISTEN {OUTBOX_CHANNEL}")
            self.status.active = True
            log.info("relay active", extra={"service": self.config.service})
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as worker:
                    await self._publish_loop(stop, listener, worker)
            finally:
                self.status.active = False

    async def _publish_loop(
        self, stop: asyncio.Event, listener: psycopg.AsyncConnection, worker: psycopg.AsyncConnection
    ) -> None:
        backoff = 0.0
        next_report = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            if loop.time() >= next_report:
                await self._report(worker)
                next_report = loop.time() + self.config.report_every_s
            try:
                published, more = await self._drain_once(worker)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise
            except Exception as exc:  # NATS down, timeouts, anything the broker says: back off and retry
                backoff = min(self.config.max_backoff_s, max(0.05, backoff * 2))
                self.status.last_error = f"publish: {type(exc).__name__}: {exc}"
                log.warning("relay could not publish; backing off %.2fs", backoff, extra={"error": str(exc)})
                await _sleep_unless(stop, backoff)
                continue
            backoff = 0.0
            self.status.last_error = None
            if published and more:
                continue
            await self._wait_for_notify(stop, listener)

    async def _drain_once(self, worker: psycopg.AsyncConnection) -> tuple[int, bool]:
        cursor = await worker.execute(_SELECT_PENDING, (self.config.batch_size,))
        rows = await cursor.fetchall()
        if not rows:
            return 0, False
        outcomes = await asyncio.gather(*(self._publish(*row) for row in rows), return_exceptions=True)
        # Mark what JetStream acknowledged; what follows a failure is retried (and deduplicated if stored).
        acked = []
        first_error: BaseException | None = None
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                first_error = outcome
                break
            acked.append(row[0])
        if acked:
            await worker.execute(_MARK_PUBLISHED, (acked,))
            self.status.published += len(acked)
        if first_error is not None:
            raise first_error
        return len(acked), len(rows) == self.config.batch_size

    async def _publish(self, row_id: int, subject: str, headers: dict[str, str], payload: bytes) -> None:
        with publish_span(
            subject, message_id=headers.get(MSG_ID_HEADER, ""), context=context_from_headers(headers)
        ):
            message_headers = {**headers, **inject_trace_headers()}
            await self.js.publish(
                subject, bytes(payload), headers=message_headers, timeout=self.config.publish_timeout_s
            )

    async def _wait_for_notify(self, stop: asyncio.Event, listener: psycopg.AsyncConnection) -> None:
        async for _ in listener.notifies(timeout=self.config.poll_interval_s, stop_after=1):
            pass

    async def _report(self, worker: psycopg.AsyncConnection) -> None:
        cursor = await worker.execute(_LAG)
        count, oldest = await cursor.fetchone() or (0, None)
        self.status.pending = int(count)
        self.status.oldest_pending_age_s = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        await worker.execute(_PURGE, (self.config.keep_published,))
        log.info(
            "relay lag",
            extra={
                "service": self.config.service,
                "pending": self.status.pending,
                "oldest_pending_age_s": round(self.status.oldest_pending_age_s, 3),
            },
        )

    def describe(self) -> dict[str, Any]:
        return {
            "active": self.status.active,
            "published": self.status.published,
            "pending": self.status.pending,
            "oldest_pending_age_s": self.status.oldest_pending_age_s,
            "last_error": self.status.last_error,
        }


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
