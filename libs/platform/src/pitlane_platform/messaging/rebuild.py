"""Rebuilding a service's read models from the streams into fresh tables, swapped in while the service runs.

`pitlane <service> rebuild` runs `rebuild_read_models` for a service whose runtime declares its read models
(`ServiceRuntime(read_models=...)`): tables that its consumers write and nothing else writes.

1. **Fresh tables.** A schema `read_models_rebuild_<UTC time>` gets the read models as the service's
   MetaData defines them, with the consumers' bookkeeping (`inbox`, `read_model_versions`) and the live
   tables' owner and grants. They must match the live tables (columns, types, indexes): a database not
   migrated to the code's version is refused before anything is replayed.
2. **Replay.** Each consumer's source stream is read from its first message by an ephemeral pull consumer on
   the live durable's subjects (no acks, deleted at the end, and by the server an hour after a crash); the
   next batch is read and decoded while the database applies the previous one. Events go through the
   consumer's own handlers with the same inbox claim, many per transaction, on a connection whose
   `search_path` is the fresh schema alone: the handlers' unqualified table names are the fresh tables, and a
   handler that writes anything else (an outbox, timers) fails instead of touching the live service. A
   consumer whose effects commute (`Consumer.on_many`) gets each batch type by type. The fresh tables'
   non-unique indexes are dropped for the replay and built after it, with the tables' statistics taken; read
   models derived from the others (`ReadModels.derive`) are left alone by the batch handlers
   (`derived_later`) and computed whole once the replay is done, the derivations at once on their own
   connections.
3. **Catch-up** while the live consumers go on updating the live tables, until no stream has more.
4. **Swap**, in one transaction: `LOCK inbox IN EXCLUSIVE MODE` on the live inbox pauses the live consumers
   (each of their transactions claims its event in the inbox before its handler writes anything, so none
   can write a read model meanwhile, and readers are not stopped); the last events are applied; then the old
   and fresh tables are locked and moved (`ALTER TABLE … SET SCHEMA`): the old ones to
   `read_models_previous`, the fresh ones into place. A reader waits a moment on the lock and then reads the
   new tables; none sees a missing or half-built table. The table locks wait less than PostgreSQL's
   deadlock timeout, so a reader holding one table while asking for another (one snapshot over several)
   makes the swap give way and try again: the reader never fails.
5. **After the swap** the live consumers go on from their own positions; whatever they deliver that the
   rebuild applied is a duplicate to the swapped-in inbox.
6. The previous tables stay in `read_models_previous` until the next rebuild (`keep_backup=False` drops
   them in the swap: erasures after the swap do not reach that copy).

Failures. A handler failing on an event the live consumer applied stops the rebuild: the rebuilt tables
could not equal the live ones. One failing on an event the live consumer has not applied either is held
back here as the live consumer holds it (ADR 9): retried during the rebuild, and if it still fails at the
swap, the aggregate's events from it on are left to the live hold (it must exist then), which applies them
into the swapped-in tables (after a dead letter's replay, if it came to that). Any other error, or the
process dying, leaves the live tables as they were: the fresh schema is dropped then, or by the next
rebuild if the process died. One rebuild of a service runs at a time (an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from psycopg import errors as pg_errors
from psycopg import sql
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from pitlane_events import Envelope, EventError, decode
from pitlane_platform.clock import Clock
from pitlane_platform.db import (
    DriverTransaction,
    Unit,
    advisory_lock_key,
    driver_connection,
    fetch_on_driver,
    json_rows,
    libpq_url,
    sqlalchemy_url,
)
from pitlane_platform.messaging.consumer import Consumer, HandlerContext
from pitlane_platform.messaging.faults import is_infrastructure_error
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.schema import PLATFORM_TABLES

log = logging.getLogger(__name__)

REBUILD_SCHEMA_PREFIX = "read_models_rebuild_"
BACKUP_SCHEMA = "read_models_previous"
# What makes a handler count each event once and apply an aggregate's events in order: rebuilt with the read
# models, so the swapped-in inbox knows what the swapped-in tables hold.
CONSUMER_BOOKKEEPING = ("inbox", "read_model_versions")

# The live consumers wait at most this long for the swap to pause them, then retry as after any lock
# timeout; the swap waits this long for their transactions in flight.
_PAUSE_LOCK_TIMEOUT_MS = 10_000
# How long the swap keeps trying when readers keep the tables busy, or when a live consumer has not yet met
# an event the rebuild holds back.
_SWAP_PATIENCE_S = 120.0
_PROGRESS_EVERY_S = 5.0
_HELD_BACK_RETRY_EVERY_S = 1.0
# An ephemeral consumer left by a process that died is removed by the server after this long unused.
_EPHEMERAL_INACTIVE_S = 3600.0
_FETCH_TIMEOUT_S = 5.0
_FETCH_ATTEMPTS = 5

_CLAIM_ALL = (
    "INSERT INTO inbox (consumer, event_id, event_type) "
    "SELECT %(consumer)s, claim.event_id, claim.event_type "
    "FROM jsonb_to_recordset(%(claims)s) AS claim(event_id uuid, event_type text) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


Derivation = Callable[[Unit], Awaitable[None]]


class RebuildFailed(RuntimeError):
    """The rebuild stopped; the live tables are as they were."""


@dataclass(frozen=True)
class ReadModels:
    """What a rebuild replaces: a service's read-model tables and the consumers that write them. The tables
    must be written by these consumers only (not by HTTP commands or timers), and every consumer of the
    service must be here: the inbox they share is rebuilt with the tables."""

    service: str
    consumers: Sequence[Consumer]
    tables: Sequence[Table]  # its own tables, from its service_metadata(); the bookkeeping is added
    # Read models derived from the others (pre-aggregated figures) that the handlers keep in step event by
    # event, but that a replay computes faster once, at its end: while the streams are replayed, batch
    # handlers are told `derived_later` and leave them alone; then the derivations compute them whole from
    # the replayed tables, before the catch-up and the swap (whose events are applied as live). They run at
    # once, each in its own transaction on its own connection: none may read what another writes, and what
    # two write to the same rows must add up the same in either order.
    derive: Sequence[Derivation] = ()

    def __post_init__(self) -> None:
        if not self.tables or not self.consumers:
            raise ValueError(f"{self.service} declares no read models or no consumers to rebuild them")
        platform = {table.name for table in PLATFORM_TABLES}
        if taken := sorted(table.name for table in self.tables if table.name in platform):
            raise ValueError(f"platform tables are not read models: {', '.join(taken)}")
        if others := sorted(c.name for c in self.consumers if c.service != self.service):
            raise ValueError(f"consumers of another service: {', '.join(others)}")
        metadata = self.tables[0].metadata
        if any(table.metadata is not metadata for table in self.tables) or any(
            name not in metadata.tables for name in CONSUMER_BOOKKEEPING
        ):
            raise ValueError("read models are tables of one service_metadata(), which has the inbox")

    def all_tables(self) -> list[Table]:
        metadata = self.tables[0].metadata
        return [*self.tables, *(metadata.tables[name] for name in CONSUMER_BOOKKEEPING)]


@dataclass(frozen=True)
class ConsumerReplay:
    """What one consumer's replay read and did."""

    consumer: str
    stream: str
    read: int  # messages of its subjects in the stream
    applied: int  # events its handlers applied
    duplicates: int  # copies of events already applied (published again under another message id)
    unreadable: int  # messages the live consumer dead-lettered as unreadable: nothing to apply
    held_back: int  # events left to the live consumer's hold of their aggregate


@dataclass(frozen=True)
class RebuildReport:
    service: str
    replays: tuple[ConsumerReplay, ...]
    tables: tuple[str, ...]
    backup_schema: str | None
    seconds: float
    paused_seconds: float  # how long the live consumers waited for the swap

    def lines(self) -> list[str]:
        lines = [
            f"{self.service}: {len(self.tables)} table(s) rebuilt from the streams and swapped in after "
            f"{self.seconds:.1f} s (live consumers paused {self.paused_seconds * 1000:.0f} ms)"
        ]
        for replay in self.replays:
            lines.append(
                f"  {replay.consumer} ({replay.stream}): {replay.read} read, {replay.applied} applied, "
                f"{replay.duplicates} duplicate(s), {replay.unreadable} unreadable, "
                f"{replay.held_back} left to its live hold"
            )
        lines.append(
            f"  the previous tables are in schema {self.backup_schema} until the next rebuild"
            if self.backup_schema
            else "  the previous tables were dropped"
        )
        return lines


async def rebuild_read_models(
    read_models: ReadModels,
    *,
    database_url: str,
    js: JetStreamContext,
    clock: Clock,
    batch_size: int = 500,
    keep_backup: bool = True,
) -> RebuildReport:
    """Rebuild `read_models` from the streams their consumers read and swap them in (module docstring)."""
    return await _Rebuild(
        read_models,
        database_url=database_url,
        js=js,
        clock=clock,
        batch_size=batch_size,
        keep_backup=keep_backup,
    ).run()


class _Source:
    """One consumer's source stream, read from its start by an ephemeral pull consumer of its subjects."""

    def __init__(self, consumer: Consumer, js: JetStreamContext) -> None:
        self.consumer = consumer
        self.js = js
        self.stream = stream_name(consumer.source_service)
        self.name = f"rebuild_{consumer.durable}_{uuid.uuid4().hex[:8]}"
        self.subscription: JetStreamContext.PullSubscription | None = None
        self._ahead: asyncio.Future[tuple[int, list[Envelope[Any]]]] | None = None
        self.read = self.applied = self.duplicates = self.unreadable = 0

    async def open(self) -> None:
        await self.js.add_consumer(
            self.stream,
            ConsumerConfig(
                name=self.name,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                filter_subjects=list(self.consumer.filter_subjects()),
                inactive_threshold=_EPHEMERAL_INACTIVE_S,
                mem_storage=True,
                num_replicas=1,
            ),
        )
        self.subscription = await self.js.pull_subscribe_bind(consumer=self.name, stream=self.stream)

    async def next_batch(self, size: int) -> list[Envelope[Any]] | None:
        """The events of the next `size` messages of the stream (or of as many as it has now) that its
        consumer handles, decoded; None when it has no more for now. After a full batch the next one is read
        and decoded while the caller applies this one: the database works while this process decodes."""
        ahead, self._ahead = self._ahead, None
        read, envelopes = await (ahead if ahead is not None else self._read(size))
        if read == size:
            self._ahead = asyncio.ensure_future(self._read(size))
        return envelopes if read else None

    async def _read(self, size: int) -> tuple[int, list[Envelope[Any]]]:
        messages: list[Msg] = []
        while len(messages) < size:
            # A fetch returns what the server sent first, often a few: asked again until the batch is full,
            # so a transaction applies a whole batch instead of a handful.
            fetched = await self._fetch(size - len(messages))
            if not fetched:
                break
            messages.extend(fetched)
        self.read += len(messages)
        envelopes = []
        for message in messages:
            try:
                envelope = decode(message.data, headers=message.headers)
            except EventError:
                self.unreadable += 1  # the live consumer dead-lettered it: it applied nothing either
                continue
            if envelope.event_type in self.consumer.handlers:
                envelopes.append(envelope)
        return len(messages), envelopes

    async def _fetch(self, size: int) -> list[Msg]:
        assert self.subscription is not None
        for _ in range(_FETCH_ATTEMPTS):
            # Asked each time: a fetch that waits for messages that are not there costs its whole timeout.
            pending = (await self.js.consumer_info(self.stream, self.name)).num_pending or 0
            if not pending:
                return []
            try:
                return await self.subscription.fetch(min(size, pending), timeout=_FETCH_TIMEOUT_S)
            except (TimeoutError, NatsTimeoutError):
                continue
        raise RebuildFailed(f"{self.stream} did not deliver the messages it has for {self.consumer.name}")

    async def close(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            with contextlib.suppress(BaseException):
                await self._ahead
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()
        with contextlib.suppress(Exception):
            await self.js.delete_consumer(self.stream, self.name)


@dataclass
class _HeldBack:
    """An aggregate whose event fails here as it may live: that event and the aggregate's later ones, in
    order, retried now and then, left to the live consumer's hold if it still fails at the swap."""

    source: _Source
    envelopes: list[Envelope[Any]]


class _HandlerFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(_kind_of(error))
        self.index = index
        self.error = error


class _SwapDeferred(Exception):
    """Not now: try the swap again in a moment."""


class _Rebuild:
    control: psycopg.AsyncConnection[Any]  # the one-rebuild-at-a-time lock, the live tables, the swap
    live_schema: str  # where the service's unqualified table names resolve
    autovacuum_held: list[str]  # fresh tables whose autovacuum is off until the swap
    sessions: async_sessionmaker[AsyncSession]  # transactions on the fresh tables

    def __init__(
        self,
        read_models: ReadModels,
        *,
        database_url: str,
        js: JetStreamContext,
        clock: Clock,
        batch_size: int,
        keep_backup: bool,
    ) -> None:
        self.read_models = read_models
        self.service = read_models.service
        self.tables = read_models.all_tables()
        self.database_url = database_url
        self.js = js
        self.clock = clock
        self.batch_size = batch_size
        self.keep_backup = keep_backup
        self.schema = f"{REBUILD_SCHEMA_PREFIX}{datetime.now(UTC):%Y%m%d%H%M%S}"
        self.sources = [_Source(consumer, js) for consumer in read_models.consumers]
        self.held_back: dict[tuple[str, str], _HeldBack] = {}
        self.derived_later = False  # while replaying, for ReadModels.derive
        self._next_progress_log = 0.0
        self._next_held_back_retry = 0.0

    async def run(self) -> RebuildReport:
        started = time.monotonic()
        async with await psycopg.AsyncConnection.connect(
            libpq_url(self.database_url), autocommit=True
        ) as control:
            self.control = control
            await self._lead()
            self.live_schema = str(await self._scalar("SELECT current_schema()"))
            await self._drop_leftovers()
            # The fresh schema alone: handlers writing a table that is not rebuilt fail here. Its commits do
            # not wait for the disk: until the swap nothing depends on them (a crash fails the rebuild, which
            # starts over), and the swap's own commit, on the control connection, waits for all of them.
            engine = create_async_engine(
                sqlalchemy_url(self.database_url),
                connect_args={"options": f"-c search_path={self.schema} -c synchronous_commit=off"},
                # One connection replays; the derivations take one each.
                pool_size=1,
                max_overflow=len(self.read_models.derive),
                hide_parameters=True,
            )
            self.sessions = async_sessionmaker(engine, expire_on_commit=False)
            try:
                await self._create_fresh_tables(engine)
                log.info(
                    "rebuilding the read models of %s in schema %s: %d table(s), %d consumer(s)",
                    self.service,
                    self.schema,
                    len(self.tables),
                    len(self.sources),
                )
                for source in self.sources:
                    await source.open()
                self.derived_later = bool(self.read_models.derive)
                indexes = await self._drop_secondary_indexes()
                with _collecting_rarely():
                    await self._catch_up()
                await self._restore_indexes(indexes)
                if self.read_models.derive:
                    await self._derive(self.read_models.derive)
                log.info("rebuild of %s caught up with the streams: swapping in", self.service)
                paused = await self._swap_in()
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self._fresh()))
                raise
            finally:
                for source in self.sources:
                    await source.close()
                await engine.dispose()
        report = RebuildReport(
            service=self.service,
            replays=tuple(
                ConsumerReplay(
                    consumer=source.consumer.name,
                    stream=source.stream,
                    read=source.read,
                    applied=source.applied,
                    duplicates=source.duplicates,
                    unreadable=source.unreadable,
                    held_back=sum(
                        len(held.envelopes) for held in self.held_back.values() if held.source is source
                    ),
                )
                for source in self.sources
            ),
            tables=tuple(table.name for table in self.tables),
            backup_schema=BACKUP_SCHEMA if self.keep_backup else None,
            seconds=time.monotonic() - started,
            paused_seconds=paused,
        )
        log.info(
            "read models of %s rebuilt and swapped in",
            self.service,
            extra={
                "seconds": round(report.seconds, 3),
                "paused_ms": round(paused * 1000),
                "applied": {replay.consumer: replay.applied for replay in report.replays},
                "held_back": {replay.consumer: replay.held_back for replay in report.replays},
            },
        )
        return report

    # ---- setting up ----------------------------------------------------------------------------------------

    async def _lead(self) -> None:
        key = advisory_lock_key(f"read-model-rebuild:{self.service}")
        if not await self._scalar("SELECT pg_try_advisory_lock(%(key)s)", key=key):
            raise RebuildFailed(f"another rebuild of {self.service}'s read models is running")

    async def _drop_leftovers(self) -> None:
        """Schemas of rebuilds whose process died (under the lock, none is in use)."""
        rows = await self._rows(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %(prefix)s)",
            prefix=REBUILD_SCHEMA_PREFIX,
        )
        for (leftover,) in rows:
            await self._execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(leftover)))
            log.warning("dropped %s, left by a rebuild of %s that did not finish", leftover, self.service)

    async def _create_fresh_tables(self, engine: AsyncEngine) -> None:
        await self._execute(sql.SQL("CREATE SCHEMA {}").format(self._fresh()))
        metadata = self.read_models.tables[0].metadata
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda sync: metadata.create_all(sync, tables=self.tables, checkfirst=False)
            )
        await self._check_same_shape()
        await self._take_owner_and_grants()
        await self._hold_autovacuum_off()

    async def _drop_secondary_indexes(self) -> list[str]:
        """The fresh tables' indexes that no write needs (not unique: ON CONFLICT and the claims use those),
        dropped for the replay and built once after it, faster than kept up row by row; their definitions."""
        rows = await self._rows(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
            "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname "
            "JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE i.schemaname = %(schema)s AND NOT x.indisunique ORDER BY i.indexname",
            schema=self.schema,
        )
        for name, _ in rows:
            await self._execute(sql.SQL("DROP INDEX {}.{}").format(self._fresh(), sql.Identifier(name)))
        return [definition for _, definition in rows]

    async def _restore_indexes(self, definitions: list[str]) -> None:
        """Build the indexes dropped for the replay (their definitions name the fresh schema), and give the
        planner the replayed tables' statistics: what reads them next (deriving, the live catch-up, the
        readers after the swap) would otherwise plan for empty tables."""
        started = time.monotonic()
        for definition in definitions:
            await self._execute(sql.SQL(definition))  # type: ignore[arg-type]  # from the catalog, not input
        for table in self.tables:
            await self._execute(sql.SQL("ANALYZE {}.{}").format(self._fresh(), sql.Identifier(table.name)))
        log.info(
            "rebuild of %s: %d index(es) built and statistics taken after the replay",
            self.service,
            len(definitions),
            extra={"seconds": round(time.monotonic() - started, 3)},
        )

    async def _check_same_shape(self) -> None:
        """The fresh tables are the service's code's; the live ones must be the same, or the swap would
        leave the database other than its migrations say."""
        fresh, live = await self._shapes(self.schema), await self._shapes(self.live_schema)
        for table in self.tables:
            if table.name not in live:
                raise RebuildFailed(f"{table.name} does not exist: migrate the database first")
            if fresh[table.name] != live[table.name]:
                raise RebuildFailed(
                    f"{table.name} differs from its definition in the code (columns, types or indexes): "
                    "migrate the database to the code's version first"
                )

    async def _shapes(self, schema: str) -> dict[str, tuple[frozenset[tuple[Any, ...]], frozenset[str]]]:
        names = [table.name for table in self.tables]
        columns = await self._rows(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %(schema)s AND c.relname = ANY(%(names)s) AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped",
            schema=schema,
            names=names,
        )
        indexes = await self._rows(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = %(schema)s "
            "AND tablename = ANY(%(names)s)",
            schema=schema,
            names=names,
        )
        shapes: dict[str, tuple[set[tuple[Any, ...]], set[str]]] = {}
        for table, *column in columns:
            shapes.setdefault(table, (set(), set()))[0].add(tuple(column))
        for table, index in indexes:
            shapes.setdefault(table, (set(), set()))[1].add(index)
        return {table: (frozenset(cols), frozenset(idx)) for table, (cols, idx) in shapes.items()}

    async def _hold_autovacuum_off(self) -> None:
        """No autovacuum on the fresh tables until they are swapped in: one that is vacuuming a freshly
        loaded table when the swap asks for its locks (which wait less than the deadlock timeout, so it is not
        cancelled for them) kept the swap waiting for seconds, minutes on a big table. The replay analyses
        them itself; the swap gives them the settings they are defined with (tables whose definition sets
        autovacuum are left to it)."""
        defined = await self._rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') "
            "AND NOT EXISTS (SELECT FROM unnest(c.reloptions) o WHERE o LIKE 'autovacuum%%') "
            "AND NOT EXISTS (SELECT FROM pg_class t, unnest(t.reloptions) o "
            "                WHERE t.oid = c.reltoastrelid AND o LIKE 'autovacuum%%')",
            schema=self.schema,
        )
        self.autovacuum_held = [name for (name,) in defined]
        for name in self.autovacuum_held:
            await self._execute(
                sql.SQL(
                    "ALTER TABLE {}.{} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)"
                ).format(self._fresh(), sql.Identifier(name))
            )

    async def _take_owner_and_grants(self) -> None:
        """The fresh tables belong to whoever owns the live ones, with the same grants: a service whose
        role only has SELECT on its read models keeps it after the swap."""
        owners = await self._rows(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %(live)s AND c.relname = ANY(%(names)s) "
            "AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)",
            live=self.live_schema,
            names=[table.name for table in self.tables],
        )
        for table, owner in owners:
            await self._execute(
                sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(
                    self._fresh(), sql.Identifier(table), sql.Identifier(owner)
                )
            )
        grants = await self._rows(
            "SELECT c.relname, a.privilege_type, a.grantee = 0, pg_get_userbyid(a.grantee), a.is_grantable "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a "
            "WHERE n.nspname = %(live)s AND c.relname = ANY(%(names)s) AND a.grantee <> c.relowner",
            live=self.live_schema,
            names=[table.name for table in self.tables],
        )
        for table, privilege, to_public, grantee, grantable in grants:
            await self._execute(
                sql.SQL("GRANT {} ON {}.{} TO {}{}").format(
                    sql.SQL(privilege),  # a privilege's name, from the catalog
                    self._fresh(),
                    sql.Identifier(table),
                    sql.SQL("PUBLIC") if to_public else sql.Identifier(grantee),
                    sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
                )
            )

    # ---- replaying -----------------------------------------------------------------------------------------

    async def _catch_up(self) -> None:
        """Apply what the streams have, a batch per source in turn, until a round finds nothing more."""
        while True:
            found = False
            for source in self.sources:
                envelopes = await source.next_batch(self.batch_size)
                if envelopes is not None:
                    found = True
                    await self._apply(source, envelopes)
            now = time.monotonic()
            if self.held_back and now >= self._next_held_back_retry:
                await self._retry_held_back()
                self._next_held_back_retry = now + _HELD_BACK_RETRY_EVERY_S
            if now >= self._next_progress_log:
                self._log_progress()
                self._next_progress_log = now + _PROGRESS_EVERY_S
            if not found:
                return

    async def _derive(self, derivations: Sequence[Derivation]) -> None:
        started = time.monotonic()

        async def derive(derivation: Derivation) -> None:
            async with self.sessions() as session, session.begin():
                await derivation(DriverTransaction(await driver_connection(session)))

        try:
            async with asyncio.TaskGroup() as derivations_at_once:
                for derivation in derivations:
                    derivations_at_once.create_task(derive(derivation))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first failure; the others were stopped
        self.derived_later = False
        log.info(
            "rebuild of %s: derived read models computed from the replayed ones",
            self.service,
            extra={"seconds": round(time.monotonic() - started, 3)},
        )

    def _log_progress(self) -> None:
        log.info(
            "rebuild of %s: %d event(s) read so far",
            self.service,
            sum(source.read for source in self.sources),
            extra={"read": {source.consumer.name: source.read for source in self.sources}},
        )

    async def _apply(self, source: _Source, envelopes: list[Envelope[Any]]) -> None:
        """Apply the events in order, in as few transactions as their handlers allow."""
        pending = self._not_held_back(source, envelopes)
        while pending:
            failure = await self._apply_prefix(source, pending)
            if failure is None:
                return
            await self._hold_back(source, pending[failure.index], failure.error)
            pending = self._not_held_back(source, pending[failure.index + 1 :])

    def _not_held_back(self, source: _Source, envelopes: list[Envelope[Any]]) -> list[Envelope[Any]]:
        """The events whose aggregate is not held back; the others join their aggregate's held events."""
        free = []
        for envelope in envelopes:
            held = self.held_back.get((source.consumer.name, envelope.aggregate_id))
            if held is None:
                free.append(envelope)
            else:
                held.envelopes.append(envelope)
        return free

    async def _apply_prefix(self, source: _Source, envelopes: list[Envelope[Any]]) -> _HandlerFailed | None:
        """Apply the longest run of `envelopes` from the first whose handlers succeed, in one transaction;
        returns the failure that ended it, if one did."""
        failure = None
        end = len(envelopes)
        while end:
            try:
                await self._apply_in_one_transaction(source, envelopes[:end])
                break
            except _HandlerFailed as failed:
                failure, end = failed, failed.index
        return failure

    async def _apply_in_one_transaction(self, source: _Source, envelopes: list[Envelope[Any]]) -> None:
        """Apply the events not applied yet, in one transaction: type by type when the consumer's effects
        commute (`Consumer.on_many`), else one by one in order. A batch handler failing says not which event
        failed: the transaction is then run again one event at a time, which finds it."""
        if source.consumer.commutes:
            try:
                await self._apply_transaction(source, envelopes, by_type=True)
                return
            except _HandlerFailed:
                pass
        await self._apply_transaction(source, envelopes, by_type=False)

    async def _apply_transaction(
        self, source: _Source, envelopes: list[Envelope[Any]], *, by_type: bool
    ) -> None:
        consumer = source.consumer
        async with self.sessions() as session, session.begin():
            unit: Unit = (
                DriverTransaction(await driver_connection(session)) if consumer.on_driver else session
            )
            claimed = await self._claim(unit, consumer, envelopes)
            fresh: list[tuple[int, Envelope[Any]]] = []
            for index, envelope in enumerate(envelopes):
                if envelope.event_id in claimed:
                    claimed.discard(envelope.event_id)  # a second copy in this batch is a duplicate
                    fresh.append((index, envelope))
            try:
                if by_type:
                    await self._apply_by_type(unit, consumer, fresh)
                else:
                    for index, envelope in fresh:
                        await self._apply_one(unit, consumer, index, envelope)
                await consumer.finish_transaction(unit, [envelope for _, envelope in fresh])
            except _HandlerFailed:
                raise
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                raise _HandlerFailed(fresh[0][0], exc) from exc
        source.applied += len(fresh)
        source.duplicates += len(envelopes) - len(fresh)

    async def _apply_one(self, unit: Unit, consumer: Consumer, index: int, envelope: Envelope[Any]) -> None:
        handler = consumer.handlers[envelope.event_type]
        try:
            await handler(HandlerContext(unit, envelope, self.clock, consumer.service), envelope.data)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            raise _HandlerFailed(index, exc) from exc

    async def _apply_by_type(
        self, unit: Unit, consumer: Consumer, fresh: list[tuple[int, Envelope[Any]]]
    ) -> None:
        by_type: dict[str, list[tuple[Envelope[Any], Any]]] = {}
        for _, envelope in fresh:
            by_type.setdefault(envelope.event_type, []).append((envelope, envelope.data))
        for event_type, events in by_type.items():
            await consumer.batch_handlers[event_type](
                unit, events, self.clock, derived_later=self.derived_later
            )

    @staticmethod
    async def _claim(unit: Unit, consumer: Consumer, envelopes: list[Envelope[Any]]) -> set[uuid.UUID]:
        """The inbox rows of the batch's events, written in one statement; the ids not claimed before."""
        claims = [
            {"event_id": envelope.event_id, "event_type": envelope.event_type} for envelope in envelopes
        ]
        rows = await fetch_on_driver(
            unit, "rebuild claim", _CLAIM_ALL, {"consumer": consumer.name, "claims": json_rows(claims)}
        )
        return {row[0] for row in rows}

    async def _hold_back(self, source: _Source, envelope: Envelope[Any], error: Exception) -> None:
        consumer = source.consumer
        if await self._applied_live(consumer, envelope):
            raise RebuildFailed(
                f"{consumer.name} fails on {envelope.event_type} {envelope.event_id} ({_kind_of(error)}), "
                "which its live consumer applied: fix the handler, then rebuild again"
            ) from error
        log.warning(
            "rebuild of %s: %s fails on %s, not applied live either; its aggregate is held back",
            self.service,
            consumer.name,
            envelope.event_type,
            extra={"event_id": str(envelope.event_id)},
            exc_info=error,
        )
        self.held_back[(consumer.name, envelope.aggregate_id)] = _HeldBack(source, [envelope])

    async def _retry_held_back(self) -> None:
        for key, held in list(self.held_back.items()):
            failure = await self._apply_prefix(held.source, held.envelopes)
            if failure is None:
                del self.held_back[key]
                log.info("rebuild of %s: a held-back aggregate of %s applied", self.service, key[0])
            else:
                del held.envelopes[: failure.index]

    async def _applied_live(self, consumer: Consumer, envelope: Envelope[Any]) -> bool:
        return bool(
            await self._scalar(
                sql.SQL(
                    "SELECT EXISTS (SELECT FROM {}.inbox WHERE consumer = %(consumer)s AND event_id = %(id)s)"
                ).format(self._live()),
                consumer=consumer.name,
                id=envelope.event_id,
            )
        )

    # ---- swapping in ---------------------------------------------------------------------------------------

    async def _swap_in(self) -> float:
        """Swap the fresh tables in, trying again while something keeps it from happening now; returns how
        long the live consumers were paused."""
        deadline = time.monotonic() + _SWAP_PATIENCE_S
        delay = 0.05
        while True:
            try:
                return await self._swap()
            except _SwapDeferred as deferred:
                reason = str(deferred)
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected):
                reason = "readers or live consumers kept the tables for longer than the swap waits"
            if time.monotonic() > deadline:
                raise RebuildFailed(f"could not swap the rebuilt read models in: {reason}")
            log.info("rebuild of %s: swap deferred (%s); trying again", self.service, reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            await self._catch_up()  # outside the pause: what arrived meanwhile is not applied under it

    async def _swap(self) -> float:
        live, fresh = self._live(), self._fresh()
        names = [sql.Identifier(table.name) for table in self.tables]
        async with self.control.transaction():
            await self._lock_timeout(_PAUSE_LOCK_TIMEOUT_MS)
            # Live consumer transactions claim in the inbox first: this waits for those in flight and keeps
            # new ones waiting until the swap commits; readers of the read models go on.
            await self._execute(sql.SQL("LOCK TABLE {}.inbox IN EXCLUSIVE MODE").format(live))
            paused_at = time.monotonic()
            await self._catch_up()
            if self.held_back:
                await self._retry_held_back()
                await self._check_live_holds()
            # Below the deadlock timeout: a reader waiting on us while we wait on it gets its table first.
            await self._lock_timeout(await self._table_lock_timeout_ms())
            tables = [sql.SQL("{}.{}").format(schema, name) for schema in (live, fresh) for name in names]
            await self._execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(", ").join(tables))
            )
            if self.keep_backup:
                backup = sql.Identifier(BACKUP_SCHEMA)
                await self._execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(backup))
                await self._execute(sql.SQL("CREATE SCHEMA {}").format(backup))
                for name in names:
                    await self._execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(live, name, backup))
            else:
                for name in names:
                    await self._execute(sql.SQL("DROP TABLE {}.{}").format(live, name))
            for name in names:
                await self._execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(fresh, name, live))
            for held in self.autovacuum_held:
                await self._execute(
                    sql.SQL("ALTER TABLE {}.{} RESET (autovacuum_enabled, toast.autovacuum_enabled)").format(
                        live, sql.Identifier(held)
                    )
                )
            # Not CASCADE: anything else the tables' creation left there (a type, a sequence of its own) would
            # be lost with it; it stops the swap instead.
            await self._execute(sql.SQL("DROP SCHEMA {}").format(fresh))
        return time.monotonic() - paused_at

    async def _check_live_holds(self) -> None:
        """Each aggregate still held back here must be held by the live consumer from the same event on: the
        live hold then applies those events after the swap. Share-locked, so the hold stays until then."""
        for (consumer_name, aggregate_id), held in self.held_back.items():
            head = held.envelopes[0]
            if await self._applied_live(held.source.consumer, head):
                raise RebuildFailed(
                    f"{consumer_name} fails on {head.event_type} {head.event_id}, which its live consumer "
                    "applied meanwhile: fix the handler, then rebuild again"
                )
            holding = await self._rows(
                sql.SQL(
                    "SELECT 1 FROM {}.consumer_holds WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate)s "
                    "FOR SHARE"
                ).format(self._live()),
                consumer=consumer_name,
                aggregate=aggregate_id,
            )
            if not holding:
                raise _SwapDeferred(
                    f"{consumer_name} has not met an event yet that the rebuild cannot apply (event "
                    f"{head.event_id}); waiting for it to hold that aggregate back too"
                )

    async def _table_lock_timeout_ms(self) -> int:
        deadlock_timeout_ms = int(
            await self._scalar("SELECT setting FROM pg_settings WHERE name = 'deadlock_timeout'")
        )
        return max(10, min(200, deadlock_timeout_ms // 2))

    # ---- SQL on the control connection ---------------------------------------------------------------------

    def _fresh(self) -> sql.Identifier:
        return sql.Identifier(self.schema)

    def _live(self) -> sql.Identifier:
        return sql.Identifier(self.live_schema)

    async def _lock_timeout(self, milliseconds: int) -> None:
        await self._rows("SELECT set_config('lock_timeout', %(ms)s, true)", ms=f"{milliseconds}ms")

    async def _execute(self, statement: sql.Composed | sql.SQL) -> None:
        await self.control.execute(statement)

    async def _rows(self, query: LiteralString | sql.Composed, **parameters: Any) -> list[tuple[Any, ...]]:
        cursor = await self.control.execute(query, parameters)
        return await cursor.fetchall() if cursor.description is not None else []

    async def _scalar(self, query: LiteralString | sql.Composed, **parameters: Any) -> Any:
        rows = await self._rows(query, **parameters)
        return rows[0][0]


# The young generation's threshold during a replay (CPython's default: 700).
_REPLAY_GC_THRESHOLD = 20_000


@contextlib.contextmanager
def _collecting_rarely() -> Iterator[None]:
    """A replay makes millions of short-lived objects and no cycles (messages, events, rows, statements'
    parameters): at the cyclic collector's default pace, collections over everything the process holds took
    a fifth of the replay's time. What lives before the replay is frozen out of them, and the young
    generation is collected less often; both are undone after it (which also returns to the collections
    whatever the process had frozen before)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(_REPLAY_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _kind_of(error: BaseException) -> str:
    """An error's class and SQLSTATE: its message may quote the event's personal data."""
    cause = getattr(error, "orig", None) or error
    sqlstate = getattr(cause, "sqlstate", None)
    return f"{type(cause).__name__}{f', SQLSTATE {sqlstate}' if sqlstate else ''}"
