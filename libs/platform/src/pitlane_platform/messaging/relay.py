"""The outbox relay: publishes committed outbox rows to JetStream, each aggregate's in order, then marks them.

One relay is active per service (a PostgreSQL advisory lock held on its listening connection); others stand
by and take over when the active one's connection goes away. The relay wakes on LISTEN/NOTIFY, polls as a
fallback, waits for JetStream's ack before marking a row, and backs off while NATS is down. A crash between
publishing and marking republishes the rows, and JetStream drops the copies by `Nats-Msg-Id` (the event id)
within the stream's duplicate window.

Order: an aggregate's rows are published one at a time, each after the previous one's ack, so no failure,
timeout or reconnect can store them out of order; different aggregates are published concurrently. A row
that fails holds back only its own aggregate's later rows. A row the broker will never accept (larger than
its max_payload) is parked with the reason and reported; it holds back its aggregate (publishing the later
rows would hand consumers a gap), never the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from nats.aio.client import Client
from nats.js.errors import APIError

from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.db import advisory_lock_key, libpq_url
from pitlane_platform.messaging.outbox import RELAY_HEADER_ALLOWANCE, message_size
from pitlane_platform.schema import OUTBOX_CHANNEL
from pitlane_platform.telemetry import context_from_headers, inject_trace_headers, publish_span

log = logging.getLogger(__name__)

# Unpublished rows in id order, without those of an aggregate that has a parked row (they wait behind it).
_SELECT_PENDING = """
    SELECT id, aggregate_id, subject, headers, payload FROM outbox AS pending
    WHERE published_at IS NULL AND parked_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM outbox AS parked
          WHERE parked.published_at IS NULL AND parked.parked_at IS NOT NULL
            AND parked.aggregate_id = pending.aggregate_id
      )
    ORDER BY id LIMIT %s
"""
# A published row keeps no payload: the stream has the message now, and a payload kept for the purge's day
# would be one more copy of personal data for an erasure to chase (ADR 13). Empty, not NULL: the column is
# NOT NULL, and health and `pitlane status` read only unpublished and parked rows' payloads.
_MARK_PUBLISHED = "UPDATE outbox SET published_at = now(), payload = ''::bytea WHERE id = ANY(%s)"
_PARK = "UPDATE outbox SET parked_at = now(), park_reason = %s WHERE id = %s"
_PURGE = "DELETE FROM outbox WHERE published_at < now() - %s::interval"
# JetStream's "message size exceeds maximum allowed" (a stream's max_msg_size): retrying cannot help.
_JS_MESSAGE_TOO_LARGE = 10054


@dataclass
class OutboxHealth:
    """The relay's backlog as the database shows it: what `/ready` and `pitlane status` report."""

    pending: int = 0
    oldest_pending_age_s: float = 0.0
    parked: int = 0
    parked_rows: list[dict[str, Any]] = field(default_factory=list)

    def problems(self, *, max_lag_s: float) -> list[str]:
        found = []
        if self.oldest_pending_age_s > max_lag_s:
            found.append(f"oldest unpublished event is {self.oldest_pending_age_s:.0f}s old")
        if self.parked:
            found.append(f"{self.parked} event(s) parked: the broker will not accept them")
        return found


_HEALTH = """
    SELECT count(*) FILTER (WHERE parked_at IS NULL),
           min(created_at) FILTER (WHERE parked_at IS NULL),
           count(*) FILTER (WHERE parked_at IS NOT NULL)
    FROM outbox WHERE published_at IS NULL
"""
_PARKED_ROWS = """
    SELECT id, event_id::text, aggregate_id, subject, length(payload), parked_at, park_reason FROM outbox
    WHERE published_at IS NULL AND parked_at IS NOT NULL ORDER BY id LIMIT 20
"""


async def outbox_health(connection: psycopg.AsyncConnection[Any]) -> OutboxHealth:
    cursor = await connection.execute(_HEALTH)
    row = await cursor.fetchone()
    assert row is not None  # an aggregate query answers one row, on an empty table too
    pending, oldest, parked = row
    health = OutboxHealth(
        pending=int(pending),
        oldest_pending_age_s=(datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0,
        parked=int(parked),
    )
    if health.parked:
        cursor = await connection.execute(_PARKED_ROWS)
        keys = ("id", "event_id", "aggregate_id", "subject", "bytes", "parked_at", "reason")
        health.parked_rows = [dict(zip(keys, row, strict=True)) for row in await cursor.fetchall()]
    return health


@dataclass(frozen=True)
class _Row:
    id: int
    aggregate_id: str
    subject: str
    headers: dict[str, str]
    payload: bytes


@dataclass
class _ChainOutcome:
    """What publishing one aggregate's rows of a batch came to: the acknowledged prefix, then possibly a row
    parked for good or a transient error that stopped the chain."""

    acked: list[int] = field(default_factory=list)
    parked: tuple[_Row, str] | None = None
    error: BaseException | None = None


@dataclass
class RelayStatus:
    active: bool = False
    published: int = 0
    parked: int = 0
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
    statement_timeout_s: float = 30.0


class OutboxRelay:
    def __init__(self, config: RelayConfig, nats: Client) -> None:
        self.config = config
        self.nats = nats
        self.js = nats.jetstream()
        self.status = RelayStatus()
        # Leadership is per service database; the lock key is derived from the service name.
        self._lock_key = advisory_lock_key(f"outbox-relay:{config.service}")

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

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        # A statement that hangs (a lock held by someone else) must not stall publishing forever.
        timeout_ms = int(self.config.statement_timeout_s * 1000)
        return await psycopg.AsyncConnection.connect(
            libpq_url(self.config.database_url),
            autocommit=True,
            options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
        )

    async def _lead(self, stop: asyncio.Event) -> None:
        async with await self._connect() as listener:
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
                async with await self._connect() as worker:
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
                settled, more = await self._drain_once(worker)
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
            if settled and more:
                continue
            await self._wait_for_notify(stop, listener)

    async def _drain_once(self, worker: psycopg.AsyncConnection) -> tuple[int, bool]:
        """Publish one batch; returns how many rows were settled (acked or parked) and whether more wait."""
        cursor = await worker.execute(_SELECT_PENDING, (self.config.batch_size,))
        rows = [_Row(*row) for row in await cursor.fetchall()]
        if not rows:
            return 0, False
        chains: dict[str, list[_Row]] = {}
        for row in rows:
            chains.setdefault(row.aggregate_id, []).append(row)
        outcomes = await asyncio.gather(*(self._publish_chain(chain) for chain in chains.values()))
        acked = [row_id for outcome in outcomes for row_id in outcome.acked]
        if acked:
            await worker.execute(_MARK_PUBLISHED, (acked,))
            self.status.published += len(acked)
        parked = [outcome.parked for outcome in outcomes if outcome.parked is not None]
        for row, reason in parked:
            await worker.execute(_PARK, (reason, row.id))
            self.status.parked += 1
            log.error(
                "ALERT relay parked an event the broker will never accept; its aggregate's later events wait",
                extra={
                    "service": self.config.service,
                    "outbox_id": row.id,
                    "subject": row.subject,
                    "aggregate_id": row.aggregate_id,
                    "reason": reason,
                },
            )
        errors = [outcome.error for outcome in outcomes if outcome.error is not None]
        if errors:
            raise errors[0]
        return len(acked) + len(parked), len(rows) == self.config.batch_size

    async def _publish_chain(self, rows: Sequence[_Row]) -> _ChainOutcome:
        """One aggregate's rows, strictly one after the other: the next is sent only once the previous one
        is acknowledged, so a lost, refused or timed-out publish can never let a later one overtake it."""
        outcome = _ChainOutcome()
        for row in rows:
            size = message_size(row.payload, row.headers) + RELAY_HEADER_ALLOWANCE
            if size > self.nats.max_payload:
                outcome.parked = (
                    row,
                    f"{size} bytes exceed the server's max_payload of {self.nats.max_payload}",
                )
                return outcome
            try:
                await self._publish(row)
            except APIError as exc:
                if exc.err_code != _JS_MESSAGE_TOO_LARGE:
                    outcome.error = exc
                    return outcome
                outcome.parked = (row, f"{size} bytes refused by the stream: {exc.description}")
                return outcome
            except Exception as exc:
                outcome.error = exc
                return outcome
            outcome.acked.append(row.id)
        return outcome

    async def _publish(self, row: _Row) -> None:
        with publish_span(
            row.subject,
            message_id=row.headers.get(MSG_ID_HEADER, ""),
            context=context_from_headers(row.headers),
        ):
            headers = {**row.headers, **inject_trace_headers()}
            await self.js.publish(
                row.subject, bytes(row.payload), headers=headers, timeout=self.config.publish_timeout_s
            )

    async def _wait_for_notify(self, stop: asyncio.Event, listener: psycopg.AsyncConnection) -> None:
        async for _ in listener.notifies(timeout=self.config.poll_interval_s, stop_after=1):
            pass

    async def _report(self, worker: psycopg.AsyncConnection) -> None:
        health = await outbox_health(worker)
        await worker.execute(_PURGE, (self.config.keep_published,))
        log.info(
            "relay lag",
            extra={
                "service": self.config.service,
                "pending": health.pending,
                "oldest_pending_age_s": round(health.oldest_pending_age_s, 3),
                "parked": health.parked,
            },
        )
        if health.parked:
            log.error(
                "ALERT %d outbox row(s) parked; see `pitlane status`",
                health.parked,
                extra={"service": self.config.service, "parked": health.parked},
            )


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
