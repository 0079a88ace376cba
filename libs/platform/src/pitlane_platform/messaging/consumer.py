"""Consumers: durable pull consumers whose handlers see each aggregate's events in order, each once.

Guarantees a handler gets (docs/platform.md says the same for service authors):
- **Once:** each event is handled in one database transaction together with an inbox row for its event id;
  the message is acked only after that commit. A duplicate delivery finds the inbox row and has no effect.
- **In order per aggregate:** the relay stores an aggregate's events in version order, and a consumer never
  applies an event of an aggregate while an earlier one of it is still failing. When a handler fails, its
  aggregate is put on hold (`consumer_holds`): the failed message and every later message of that aggregate
  are parked in the database (`consumer_parked_messages`) and acked, and the runner retries the head on the
  consumer's back-off schedule, then applies the parked ones in order and releases the hold. Messages of
  other aggregates flow on.
- **Dead letters:** after `max_deliver` failed attempts the head goes to the dead-letter stream; its
  aggregate stays on hold with its later messages waiting, and a replay (`pitlane dlq replay`) applies the
  head and then them, in order.
- **Outages are not attempts:** an infrastructure error (database unreachable, connection lost,
  serialization failure, deadlock, lock timeout; see faults.py) counts as no attempt: the batch is kept,
  its messages kept alive with in-progress acks, and retried once the database answers; nothing is fetched
  meanwhile. Long handlers keep their messages alive the same way instead of being redelivered.
- **New subscriptions see the past:** the durable's name carries a hash of its subjects, so a consumer
  whose handlers change gets a new durable that starts at the stream's beginning; the inbox skips what was
  already applied, and the old durable is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import Status, StatusCode
from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from pitlane_events import Actor, DomainEvent, Envelope, EventError, decode
from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, Unit, advisory_lock_key, execute_on_driver
from pitlane_platform.messaging.deadletter import dead_letter, delivery_source, original_subject
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.messaging.faults import InfrastructureError, is_infrastructure_error
from pitlane_platform.messaging.streams import (
    REPLAY_PREFIX,
    REPLAY_STREAM,
    ConsumerSpec,
    declare_consumer,
    stream_name,
)
from pitlane_platform.telemetry import process_span

log = logging.getLogger(__name__)

# Fixed SQL on the per-message path, run on the driver (see db.execute_on_driver for why).
_CLAIM = (
    "INSERT INTO inbox (consumer, event_id, event_type) VALUES (%(consumer)s, %(event_id)s, %(event_type)s) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
_ADVANCE = (
    "INSERT INTO read_model_versions AS seen (read_model, aggregate_id, version) "
    "VALUES (%(read_model)s, %(aggregate_id)s, %(version)s) "
    "ON CONFLICT (read_model, aggregate_id) DO UPDATE SET version = excluded.version "
    "WHERE seen.version < excluded.version RETURNING version"
)
# The first claim of a batch's transaction also sets the transaction's time limits (one round trip less).
_CLAIM_SETTING_LIMITS = (
    "WITH limits AS MATERIALIZED (SELECT set_config('statement_timeout', %(statement_timeout)s, true), "
    "set_config('lock_timeout', %(lock_timeout)s, true)) "
    "INSERT INTO inbox (consumer, event_id, event_type) "
    "SELECT %(consumer)s, %(event_id)s, %(event_type)s FROM limits "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
# First statement of a consumer transaction that may meet a hold: its time limits, and which of the given
# aggregates are on hold (share-locked, so a hold cannot be released while this transaction parks a message
# behind it).
_BEGIN = (
    "SELECT set_config('statement_timeout', %(statement_timeout)s, true), "
    "set_config('lock_timeout', %(lock_timeout)s, true), "
    "ARRAY(SELECT aggregate_id FROM consumer_holds "
    "WHERE consumer = %(consumer)s AND aggregate_id = ANY(%(aggregate_ids)s::text[]) FOR SHARE)"
)
_PARK = (
    "INSERT INTO consumer_parked_messages "
    "(consumer, aggregate_id, aggregate_version, event_id, event_type, subject, headers, payload) "
    "VALUES (%(consumer)s, %(aggregate_id)s, %(aggregate_version)s, %(event_id)s, %(event_type)s, "
    "%(subject)s, %(headers)s, %(payload)s) ON CONFLICT (consumer, event_id) DO NOTHING"
)
_HOLD = (
    "INSERT INTO consumer_holds (consumer, aggregate_id, attempts, attempts_started, next_attempt_at, "
    "last_error, dead_lettered_at) VALUES (%(consumer)s, %(aggregate_id)s, %(attempts)s, %(attempts)s, "
    "now() + make_interval(secs => %(delay_s)s), %(error)s, CASE WHEN %(dead)s THEN now() END) "
    "ON CONFLICT (consumer, aggregate_id) DO NOTHING"
)
_DUE_HOLDS = text(
    "SELECT aggregate_id FROM consumer_holds WHERE consumer = :consumer AND dead_lettered_at IS NULL "
    "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 100"
)
_LOCK_HOLD = (
    "SELECT dead_lettered_at IS NOT NULL FROM consumer_holds "
    "WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s FOR UPDATE"
)
_HEAD = (
    "SELECT position, event_id, subject, headers, payload FROM consumer_parked_messages "
    "WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s "
    "ORDER BY aggregate_version, position LIMIT 1"
)
_START_ATTEMPT = (
    "UPDATE consumer_holds SET attempts_started = attempts_started + 1 "
    "WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s "
    "RETURNING attempts, attempts_started, replays"
)
_APPLIED_HEAD = (
    "WITH applied AS (DELETE FROM consumer_parked_messages WHERE position = %(position)s) "
    "UPDATE consumer_holds SET attempts = 0, attempts_started = 0, last_error = NULL "
    "WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s"
)
_RELEASE = "DELETE FROM consumer_holds WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s"
_FAILED_HEAD = (
    "UPDATE consumer_holds SET attempts = %(attempts)s, last_error = %(error)s, "
    "next_attempt_at = now() + make_interval(secs => %(delay_s)s), "
    "dead_lettered_at = CASE WHEN %(dead)s THEN now() END "
    "WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s"
)
_RETRY_REPLAYED = (
    "UPDATE consumer_holds SET dead_lettered_at = NULL, attempts = 0, attempts_started = 0, next_attempt_at = now(), "
    "replays = replays + 1 "
    "WHERE consumer = %(consumer)s AND aggregate_id = %(aggregate_id)s AND dead_lettered_at IS NOT NULL"
)

_DURABLE_WITH_HASH = re.compile(r"_[0-9a-f]{8}$")
_HOLD_POLL_S = 1.0
_STANDBY_RETRY_S = 2.0
_DATABASE_PROBE_MAX_S = 2.0


@dataclass(frozen=True)
class HandlerContext:
    """What a handler gets besides the event: the transaction its effect must be written in, and time."""

    unit: Unit  # the transaction: a session's, or (consumers `on_driver`) a DriverPool one
    envelope: Envelope[Any]
    clock: Clock
    service: str

    @property
    def session(self) -> AsyncSession:
        """The SQLAlchemy session of the transaction (not for consumers `on_driver`: use `unit`)."""
        if not isinstance(self.unit, AsyncSession):
            raise TypeError("this consumer runs on the driver: write with execute_on_driver(ctx.unit, ...)")
        return self.unit

    def command_context(self, *, branch_id: str | None = None) -> CommandContext:
        """For events the handler emits: caused by this event, in its correlation, by this service."""
        return CommandContext(
            actor=Actor.service(self.service),
            chain_id=self.envelope.chain_id,
            occurred_at=self.clock.now(),
            branch_id=branch_id if branch_id is not None else self.envelope.branch_id,
            caused_by=self.envelope,
        )


Handler = Callable[[HandlerContext, Any], Awaitable[None]]


class BatchHandler(Protocol):
    """Many events of one type at once, in the transaction `unit`: (envelope, event) pairs in stream order.
    `derived_later`: a rebuild is replaying the streams and computes the read models derived from the others
    once at the end (`ReadModels.derive`): the handler writes what it writes and leaves those alone."""

    def __call__(
        self,
        unit: Unit,
        events: Sequence[tuple[Envelope[Any], Any]],
        clock: Clock,
        *,
        derived_later: bool,
    ) -> Awaitable[None]: ...


AfterApplying = Callable[[Unit, Sequence[Envelope[Any]]], Awaitable[None]]


@dataclass
class Consumer:
    """A durable consumer `<service>.<purpose>` of one producing service's stream."""

    service: str
    purpose: str
    source_service: str
    max_deliver: int = 5
    backoff_s: Sequence[float] = (1.0, 5.0, 30.0, 120.0)
    ack_wait_s: float = 30.0
    batch_size: int = 64
    statement_timeout_s: float = 30.0
    lock_timeout_s: float = 10.0
    # Handlers that write only fixed SQL (`execute_on_driver(ctx.unit, ...)`) can run their batches in a
    # DriverPool transaction instead of a session's: about a millisecond of CPU less per batch.
    on_driver: bool = False
    handlers: dict[str, Handler] = field(default_factory=dict)
    # Handlers registered with `on_many`: each also answers one event at a time (in `handlers`).
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    # What runs once per transaction after the handlers, over the events they applied in it (`after_applying`).
    finish: AfterApplying | None = None

    @property
    def name(self) -> str:
        return f"{self.service}.{self.purpose}"

    @property
    def durable(self) -> str:
        """The consumer's stable id in JetStream names and dead letters (JetStream names have no dots)."""
        return f"{self.service}_{self.purpose}".replace(".", "_")

    def filter_subjects(self) -> tuple[str, ...]:
        filters = tuple(
            sorted(f"{self.source_service}.*.{event_type.split('.', 1)[1]}.*" for event_type in self.handlers)
        )
        if not filters:
            raise ValueError(f"consumer {self.name} handles no event")
        return filters

    @property
    def subscription_durable(self) -> str:
        """The durable on the source stream: named after its subjects, so new subjects mean a new durable
        that reads the stream from its start (a durable widened in place would skip their history)."""
        digest = hashlib.sha256("\n".join(self.filter_subjects()).encode()).hexdigest()[:8]
        return f"{self.durable}_{digest}"

    def on(self, model: type[DomainEvent]) -> Callable[[Handler], Handler]:
        """Register the handler of one event type; it receives the newest version's model."""
        if model.service() != self.source_service:
            raise ValueError(f"{model.event_type} is not published by {self.source_service}")

        def register(handler: Handler) -> Handler:
            self.handlers[model.event_type] = handler
            return handler

        return register

    def on_many(self, model: type[DomainEvent]) -> Callable[[BatchHandler], BatchHandler]:
        """Register a handler of many events of one type at once. It declares that this consumer's effects
        commute: any order of its events, across types and aggregates, leaves the same tables, and applying an
        event twice changes nothing. A rebuild then applies a batch type by type, a statement or so per type
        instead of one handler call per event; live deliveries reach it one event at a time."""

        def register(handler: BatchHandler) -> BatchHandler:
            self.batch_handlers[model.event_type] = handler

            async def one(ctx: HandlerContext, event: Any) -> None:
                await handler(ctx.unit, [(ctx.envelope, event)], ctx.clock, derived_later=False)

            self.on(model)(one)
            return handler

        return register

    def after_applying(self, finish: AfterApplying) -> AfterApplying:
        """Register what runs once per transaction, after the handlers and in their transaction, over the
        events they applied in it (in stream order; not called when none was): bookkeeping every event
        moves the same way, written once per batch instead of once per event — live, where a transaction
        applies a fetched batch, and in a rebuild, where it applies hundreds."""
        self.finish = finish
        return finish

    async def finish_transaction(self, unit: Unit, applied: Sequence[Envelope[Any]]) -> None:
        if self.finish is not None and applied:
            await self.finish(unit, applied)

    @property
    def commutes(self) -> bool:
        """Every event type it handles was registered with `on_many`."""
        return bool(self.handlers) and self.handlers.keys() == self.batch_handlers.keys()

    def specs(self) -> list[ConsumerSpec]:
        return [
            ConsumerSpec(
                stream_name(self.source_service),
                self.subscription_durable,
                self.filter_subjects(),
                ack_wait_s=self.ack_wait_s,
            ),
            ConsumerSpec(
                REPLAY_STREAM,
                self.durable,
                (f"{REPLAY_PREFIX}.{self.durable}.>",),
                ack_wait_s=self.ack_wait_s,
            ),
        ]

    def delay_after(self, attempt: int) -> float:
        return self.backoff_s[min(max(attempt, 1), len(self.backoff_s)) - 1]


AfterCommit = Callable[[Consumer, Envelope[Any]], None]


@dataclass
class _Delivery:
    """One fetched message on its way to being settled (acked after its effect or park committed)."""

    message: Msg
    envelope: Envelope[Any]
    handler: Handler
    replayed: bool
    settled: bool = False

    @property
    def aggregate_id(self) -> str:
        return self.envelope.aggregate_id


@dataclass(frozen=True)
class _HeldMessage:
    """The head of a hold, as parked in the database."""

    position: int
    event_id: Any
    subject: str
    headers: dict[str, str]
    payload: bytes
    replays: int


class _LeadershipLost(Exception):
    pass


class _HandlerFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


class ConsumerRunner:
    def __init__(
        self,
        consumers: Sequence[Consumer],
        *,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        after_commit: Sequence[AfterCommit] = (),
        driver: DriverPool | None = None,
    ) -> None:
        if driver is None and any(consumer.on_driver for consumer in consumers):
            raise ValueError("consumers on_driver need the runner's DriverPool")
        self.consumers = consumers
        self.js = js
        self.sessions = sessions
        self.driver = driver
        self.clock = clock
        self.after_commit = list(after_commit)
        self.applied = 0
        self.dead_lettered = 0
        self.infrastructure_failures = 0
        self.leading = False
        self._service = consumers[0].service if consumers else ""
        self._holds_changed = {consumer.name: asyncio.Event() for consumer in consumers}
        # The aggregates each consumer holds. Only the leading runner creates and releases holds, so this
        # set (loaded when it starts leading) says which batches need to read the holds table at all.
        self._held: dict[str, set[str]] = {consumer.name: set() for consumer in consumers}

    async def declare(self) -> None:
        for consumer in self.consumers:
            for spec in consumer.specs():
                await declare_consumer(self.js, spec)
            await self._delete_outdated_durables(consumer)

    async def _delete_outdated_durables(self, consumer: Consumer) -> None:
        """Durables of this consumer for subjects it no longer has: its new durable re-reads the stream."""
        stream = stream_name(consumer.source_service)
        current = consumer.subscription_durable
        with contextlib.suppress(NotFoundError):
            for info in await self.js.consumers_info(stream):
                name = info.name
                if name == current or not (
                    name == consumer.durable
                    or (
                        name.startswith(consumer.durable)
                        and _DURABLE_WITH_HASH.fullmatch(name[len(consumer.durable) :])
                    )
                ):
                    continue
                await self.js.delete_consumer(stream, name)
                log.warning(
                    "consumer %s subscribes to other subjects now: durable %s replaces %s and reads %s from "
                    "its start (the inbox skips what was already applied)",
                    consumer.name,
                    current,
                    name,
                    stream,
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Stand by until this process leads its service's consumers, then consume until `stop` is set.

        One runner per service consumes at a time (a PostgreSQL advisory lock held on a session of its own,
        as the relay does): two replicas pulling the same durable would apply one aggregate's events
        concurrently, out of order.
        """
        await self.declare()
        while not stop.is_set():
            try:
                await self._lead(stop)
            except* _LeadershipLost:
                log.warning("consumers of %s lost their leadership; standing by", self._service)
            except* Exception as errors:
                if not all(is_infrastructure_error(error) for error in errors.exceptions):
                    raise
                log.warning("consumers of %s: database unreachable; standing by", self._service)
                await _sleep_unless(stop, _DATABASE_PROBE_MAX_S)

    async def _lead(self, stop: asyncio.Event) -> None:
        lock_key = advisory_lock_key(f"consumer-runner:{self._service}")
        engine: AsyncEngine = self.sessions.kw["bind"]
        # A connection of its own for the whole leadership: a session lock lives on its connection, and a
        # session would hand its connection back to the pool at every commit.
        async with engine.connect() as connection:
            leadership = await connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                while not await self._try_lock(leadership, lock_key):
                    if stop.is_set():
                        return
                    await _sleep_unless(stop, _STANDBY_RETRY_S)
                await self._load_holds()
                self.leading = True
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(
                        self._keep_leadership(leadership, lock_key, stop), name="consumer leadership"
                    )
                    for consumer in self.consumers:
                        for spec in consumer.specs():
                            tasks.create_task(
                                self._pull(consumer, spec, stop), name=f"consume {spec.stream}/{spec.durable}"
                            )
                        tasks.create_task(self._retry_holds(consumer, stop), name=f"holds of {consumer.name}")
            finally:
                self.leading = False
                with contextlib.suppress(Exception):  # the pooled connection would keep the lock
                    await leadership.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})

    async def _load_holds(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(text("SELECT consumer, aggregate_id FROM consumer_holds"))
            for held in self._held.values():
                held.clear()
            for consumer_name, aggregate_id in rows:
                self._held.setdefault(consumer_name, set()).add(aggregate_id)

    @staticmethod
    async def _try_lock(leadership: AsyncConnection, lock_key: int) -> bool:
        locked = (
            await leadership.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key})
        ).scalar_one()
        await leadership.commit()  # a no-op in autocommit; ends the transaction if a reconnect began one
        return bool(locked)

    async def _keep_leadership(self, leadership: AsyncConnection, lock_key: int, stop: asyncio.Event) -> None:
        """The lock lives on one connection. If that connection breaks (the database went away), the lock is
        taken again on a new one once the database answers; only if another process took it meanwhile does
        this one stop consuming. The batches in flight meanwhile wait for the database like any outage."""
        while not stop.is_set():
            await _sleep_unless(stop, _STANDBY_RETRY_S)
            try:
                await leadership.execute(text("SELECT 1"))
                await leadership.commit()
                continue
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    await leadership.invalidate()  # the next statement connects anew, once rolled back
                with contextlib.suppress(Exception):
                    await leadership.rollback()
                try:
                    if not await self._try_lock(leadership, lock_key):
                        raise _LeadershipLost()
                    break
                except _LeadershipLost:
                    raise
                except Exception as exc:
                    if not is_infrastructure_error(exc):
                        raise
                    await _sleep_unless(stop, _STANDBY_RETRY_S)

    # Intake: fetched messages, applied in batches.

    async def _pull(self, consumer: Consumer, spec: ConsumerSpec, stop: asyncio.Event) -> None:
        subscription = await self.js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
        try:
            while not stop.is_set():
                try:
                    messages = await subscription.fetch(consumer.batch_size, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except Exception as exc:  # broker away: the client reconnects; wait and fetch again
                    log.warning("fetch failed for %s; retrying", spec.durable, extra={"error": str(exc)})
                    await _sleep_unless(stop, 0.5)
                    continue
                await self._settle_through_outages(consumer, messages, stop)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _settle_through_outages(
        self, consumer: Consumer, messages: list[Msg], stop: asyncio.Event
    ) -> None:
        """Process the batch; while the database is away, keep its messages alive and try again."""
        async with _kept_alive(messages, consumer.ack_wait_s):
            deliveries: list[_Delivery] | None = None
            probe_delay = 0.1
            while True:
                try:
                    if deliveries is None:
                        deliveries = await self._prepare(consumer, messages)
                    await self.process_batch(consumer, deliveries)
                    return
                except InfrastructureError as exc:
                    self.infrastructure_failures += 1
                    log.warning(
                        "consumer %s paused: infrastructure error (not counted as an attempt): %s",
                        consumer.name,
                        exc,
                    )
                    if not await self._wait_for_database(stop, probe_delay):
                        return  # stopping: the unsettled messages are redelivered to the next run
                    probe_delay = min(_DATABASE_PROBE_MAX_S, probe_delay * 2)

    async def _wait_for_database(self, stop: asyncio.Event, delay: float) -> bool:
        while not stop.is_set():
            await _sleep_unless(stop, delay)
            try:
                async with self.sessions() as session:
                    await session.execute(text("SELECT 1"))
                return True
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                delay = min(_DATABASE_PROBE_MAX_S, delay * 2)
        return False

    async def _prepare(self, consumer: Consumer, messages: list[Msg]) -> list[_Delivery]:
        """Settle what needs no handler (unreadable messages, events this consumer ignores, deliveries past
        max_deliver after a crash); the rest are deliveries to apply, in order."""
        deliveries = []
        for message in messages:
            replayed = message.metadata.stream == REPLAY_STREAM
            try:
                envelope = decode(message.data, headers=message.headers)
            except EventError as exc:  # retrying cannot make an unreadable event readable
                await self._dead_letter_unreadable(consumer, message, str(exc))
                continue
            handler = consumer.handlers.get(envelope.event_type)
            if handler is None:
                await _quietly(message.ack())
                continue
            delivery = _Delivery(message, envelope, handler, replayed)
            attempt = message.metadata.num_delivered
            if attempt > consumer.max_deliver and not replayed:
                # The process died during each of its deliveries, and the rest of each batch died with it: the
                # count cannot tell the message that kills the process from its neighbours (dead-lettering
                # them all held back innocent aggregates). Held with one attempt left, run alone by the hold
                # retries: the one that kills the process again is dead-lettered after the restart
                # (_drain_hold counts the attempt begun), the others are applied.
                await self._hold(
                    consumer,
                    delivery,
                    f"no outcome after {attempt - 1} deliveries; tried once more alone",
                    consumer.max_deliver - 1,
                    delay_s=0,
                )
                continue
            deliveries.append(delivery)
        return deliveries

    async def process_batch(self, consumer: Consumer, deliveries: list[_Delivery]) -> None:
        """Apply the unsettled deliveries in one transaction (one commit for the batch), in order.

        If a handler fails, the transaction is rolled back; the deliveries before it are applied again
        together, the failing one puts its aggregate on hold (this run was its attempt), and the rest are
        applied (or, for that aggregate, parked) after it, so a failing message costs its neighbours nothing
        but time and its handler runs once per attempt.
        """
        pending = [delivery for delivery in deliveries if not delivery.settled]
        if not pending:
            return
        try:
            applied = await self._apply(consumer, pending)
        except _HandlerFailed as failure:
            await self.process_batch(consumer, pending[: failure.index])
            failing = pending[failure.index]
            await self._hold(
                consumer, failing, _describe(failure.error), failing.message.metadata.num_delivered
            )
            await self.process_batch(consumer, pending[failure.index + 1 :])
            return
        await self._settle(consumer, pending, applied)

    @contextlib.asynccontextmanager
    async def _handler_transaction(self, consumer: Consumer) -> AsyncIterator[Unit]:
        """The transaction handlers write their effects in, with the inbox rows; commits when the block ends."""
        if consumer.on_driver:
            assert self.driver is not None
            async with self.driver.transaction() as transaction:
                yield transaction
        else:
            async with self.sessions() as session, session.begin():
                yield session

    async def _apply(self, consumer: Consumer, deliveries: list[_Delivery]) -> list[bool]:
        """In one transaction: park the deliveries of held aggregates, apply the others; True per applied."""
        applied: list[bool] = []
        held: set[str] = set()
        index = 0
        try:
            async with self._handler_transaction(consumer) as session:
                maybe_held = [
                    d.aggregate_id for d in deliveries if d.aggregate_id in self._held[consumer.name]
                ]
                limits_set = bool(maybe_held)
                if maybe_held:
                    held = set(await self._begin(session, consumer, maybe_held))
                for index, delivery in enumerate(deliveries):  # noqa: B007 (the except reads it)
                    if delivery.aggregate_id in held:
                        await self._park(session, consumer, delivery.message, delivery.envelope)
                        applied.append(False)
                        if delivery.replayed:
                            await execute_on_driver(
                                session,
                                "retry replayed",
                                _RETRY_REPLAYED,
                                {"consumer": consumer.name, "aggregate_id": delivery.aggregate_id},
                            )
                        continue
                    with self._span(consumer, delivery.message):
                        applied.append(
                            await self._claim_and_handle(
                                session,
                                consumer,
                                delivery.handler,
                                delivery.envelope,
                                set_limits=not limits_set,
                            )
                        )
                    limits_set = True
                await consumer.finish_transaction(
                    session, [d.envelope for d, was in zip(deliveries, applied, strict=True) if was]
                )
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise InfrastructureError(_describe(exc)) from exc
            raise _HandlerFailed(index, exc) from exc
        if any(d.replayed and d.aggregate_id in held for d in deliveries):
            self._holds_changed[consumer.name].set()
        return applied

    async def _begin(self, session: Unit, consumer: Consumer, aggregate_ids: list[str]) -> list[str]:
        row = await execute_on_driver(
            session,
            "begin consumer transaction",
            _BEGIN,
            {**_limits(consumer), "consumer": consumer.name, "aggregate_ids": aggregate_ids},
        )
        assert row is not None
        return list(row[2])

    async def _park(self, session: Unit, consumer: Consumer, message: Msg, envelope: Envelope[Any]) -> None:
        await execute_on_driver(
            session,
            "park",
            _PARK,
            {
                "consumer": consumer.name,
                "aggregate_id": envelope.aggregate_id,
                "aggregate_version": envelope.aggregate_version,
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "subject": original_subject(message),
                "headers": Jsonb(dict(message.headers or {})),
                "payload": message.data,
            },
        )

    async def _claim_and_handle(
        self,
        session: Unit,
        consumer: Consumer,
        handler: Handler,
        envelope: Envelope[Any],
        *,
        set_limits: bool = False,
    ) -> bool:
        """Write the inbox row and run the handler in the caller's transaction; False if already applied.
        `set_limits`: this claim opens the transaction and sets its time limits."""
        keys = {"consumer": consumer.name, "event_id": envelope.event_id, "event_type": envelope.event_type}
        if set_limits:
            claimed = await execute_on_driver(
                session, "claim", _CLAIM_SETTING_LIMITS, {**keys, **_limits(consumer)}
            )
        else:
            claimed = await execute_on_driver(session, "claim", _CLAIM, keys)
        if claimed is None:
            return False
        await handler(HandlerContext(session, envelope, self.clock, consumer.service), envelope.data)
        return True

    async def _settle(self, consumer: Consumer, deliveries: list[_Delivery], applied: list[bool]) -> None:
        for delivery, was_applied in zip(deliveries, applied, strict=True):
            if was_applied:
                self._applied(consumer, delivery.envelope)
            delivery.settled = True
            await _quietly(delivery.message.ack())

    def _applied(self, consumer: Consumer, envelope: Envelope[Any]) -> None:
        self.applied += 1
        for hook in self.after_commit:
            hook(consumer, envelope)

    async def _hold(
        self,
        consumer: Consumer,
        delivery: _Delivery,
        error: str,
        attempt: int,
        *,
        delay_s: float | None = None,
    ) -> None:
        """The delivery failed (attempt `attempt`): park it as the head of its aggregate's hold, to be
        retried by the runner after the back-off delay (or `delay_s`), or dead-lettered if that was the last
        attempt."""
        dead = attempt >= consumer.max_deliver
        log.warning(
            "handler %s failed on %s (attempt %d/%d); its aggregate is held back",
            consumer.name,
            delivery.envelope.event_type,
            attempt,
            consumer.max_deliver,
            extra={"event_id": str(delivery.envelope.event_id), "error": error},
        )
        if dead:
            await self._publish_dead_letter(
                consumer,
                subject=original_subject(delivery.message),
                headers=dict(delivery.message.headers or {}),
                payload=delivery.message.data,
                error=error,
                attempts=attempt,
                source=delivery_source(delivery.message),
            )
        # Known as held before the hold commits, so later batches read the holds table for this aggregate (a
        # replayed message racing this very commit can still pass it: ADR 9).
        self._held[consumer.name].add(delivery.aggregate_id)
        try:
            async with self.sessions() as session, session.begin():
                await self._begin(session, consumer, [])
                await self._park(session, consumer, delivery.message, delivery.envelope)
                await execute_on_driver(
                    session,
                    "hold",
                    _HOLD,
                    {
                        "consumer": consumer.name,
                        "aggregate_id": delivery.aggregate_id,
                        "attempts": attempt,
                        "delay_s": consumer.delay_after(attempt) if delay_s is None else delay_s,
                        "error": error[:2000],
                        "dead": dead,
                    },
                )
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise InfrastructureError(_describe(exc)) from exc
            raise
        delivery.settled = True
        await _quietly(delivery.message.ack())
        self._holds_changed[consumer.name].set()

    async def _dead_letter_unreadable(self, consumer: Consumer, message: Msg, error: str) -> None:
        """An unreadable message (not JSON, no known type) cannot be applied by any retry: dead-lettered at
        once. Without a readable envelope there is no aggregate to hold back."""
        await self._publish_dead_letter(
            consumer,
            subject=original_subject(message),
            headers=dict(message.headers or {}),
            payload=message.data,
            error=error,
            attempts=message.metadata.num_delivered,
            source=delivery_source(message),
        )
        await _quietly(message.term())

    async def _publish_dead_letter(self, consumer: Consumer, **letter: Any) -> None:
        try:
            await dead_letter(self.js, consumer=consumer.durable, **letter)
        except Exception as exc:
            # Not dead-lettered and not settled: retried like any outage, never dropped.
            raise InfrastructureError(f"could not publish a dead letter: {exc}") from exc
        self.dead_lettered += 1

    # Holds: a held aggregate's head retried on the back-off schedule, then its parked messages in order.

    async def _retry_holds(self, consumer: Consumer, stop: asyncio.Event) -> None:
        changed = self._holds_changed[consumer.name]
        while not stop.is_set():
            changed.clear()
            try:
                due: list[str] = []
                if self._held[consumer.name]:  # the set is authoritative: nothing held, nothing to ask
                    async with self.sessions() as session:
                        due = list((await session.execute(_DUE_HOLDS, {"consumer": consumer.name})).scalars())
                for aggregate_id in due:
                    await self._drain_hold(consumer, aggregate_id)
            except Exception as exc:
                # Never let one bad hold stop the consumer: the next round tries again (and says so).
                infrastructure = is_infrastructure_error(exc)
                log.log(
                    logging.WARNING if infrastructure else logging.ERROR,
                    "retrying held aggregates of %s failed: %s",
                    consumer.name,
                    exc,
                    exc_info=not infrastructure,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first_of(stop, changed), _HOLD_POLL_S)

    async def _drain_hold(self, consumer: Consumer, aggregate_id: str) -> None:
        """Apply the held aggregate's parked messages in order, each in its own transaction, until one fails
        (its retry is scheduled, or it is dead-lettered) or none is left (the hold is released)."""
        keys = {"consumer": consumer.name, "aggregate_id": aggregate_id}
        while True:
            async with self.sessions() as session, session.begin():
                await self._begin(session, consumer, [])
                hold = await execute_on_driver(session, "lock hold", _LOCK_HOLD, keys)
                if hold is None or hold[0]:
                    return  # released meanwhile, or dead-lettered: waits for a replay
                head = await execute_on_driver(session, "held head", _HEAD, keys)
                if head is None:
                    await execute_on_driver(session, "release hold", _RELEASE, keys)
                else:
                    counts = await execute_on_driver(session, "start attempt", _START_ATTEMPT, keys)
            if head is None:  # released, and committed: its aggregate's messages are applied directly again
                self._held[consumer.name].discard(aggregate_id)
                log.info("consumer %s released a held aggregate", consumer.name)
                return
            assert counts is not None
            _, started, replays = counts
            position, event_id, subject, headers, payload = head
            held = _HeldMessage(position, event_id, subject, headers, payload, replays)
            # Every attempt begun counts, finished or not (as JetStream's num_delivered counts a crashed
            # delivery before the message is held): `started` includes this one. Counting only the failures,
            # a process dying during the last attempt had the head run again after its restart, up to
            # max_deliver more times.
            if started > consumer.max_deliver:
                # The process died during the last attempt. Give up on running it.
                await self._dead_letter_head(
                    consumer, keys, held, f"no outcome after {started - 1} attempts", started - 1
                )
                return
            if not await self._apply_head(consumer, keys, held, started):
                return

    async def _apply_head(
        self, consumer: Consumer, keys: dict[str, str], held: _HeldMessage, attempt: int
    ) -> bool:
        """One attempt at the hold's head; True if it was applied (or needs no handler any more)."""
        try:
            envelope = decode(held.payload)
        except EventError as exc:
            await self._dead_letter_head(consumer, keys, held, str(exc), attempt)
            return False
        handler = consumer.handlers.get(envelope.event_type)
        applied = False
        try:
            async with self._handler_transaction(consumer) as session:
                await self._begin(session, consumer, [])
                if handler is not None:
                    with process_span(
                        held.subject,
                        message_id=str(held.event_id),
                        headers=held.headers,
                        consumer_name=consumer.durable,
                    ):
                        applied = await self._claim_and_handle(session, consumer, handler, envelope)
                if applied:
                    await consumer.finish_transaction(session, [envelope])
                await execute_on_driver(
                    session, "applied head", _APPLIED_HEAD, {**keys, "position": held.position}
                )
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            error = _describe(exc)
            log.warning(
                "handler %s failed on held %s (attempt %d/%d)",
                consumer.name,
                envelope.event_type,
                attempt,
                consumer.max_deliver,
                extra={"event_id": str(held.event_id), "error": error},
            )
            if attempt >= consumer.max_deliver:
                await self._dead_letter_head(consumer, keys, held, error, attempt)
            else:
                await self._record_failure(
                    keys, error, attempt, delay_s=consumer.delay_after(attempt), dead=False
                )
            return False
        if applied:
            self._applied(consumer, envelope)
        return True

    async def _dead_letter_head(
        self, consumer: Consumer, keys: dict[str, str], held: _HeldMessage, error: str, attempts: int
    ) -> None:
        await self._publish_dead_letter(
            consumer,
            subject=held.subject,
            headers=dict(held.headers),
            payload=bytes(held.payload),
            error=error,
            attempts=attempts,
            source=f"held:{held.event_id}:{held.replays}",  # once per hold and replay, however often retried
        )
        await self._record_failure(keys, error, attempts, delay_s=0, dead=True)

    async def _record_failure(
        self, keys: dict[str, str], error: str, attempts: int, *, delay_s: float, dead: bool
    ) -> None:
        async with self.sessions() as session, session.begin():
            await execute_on_driver(
                session,
                "failed head",
                _FAILED_HEAD,
                {**keys, "attempts": attempts, "error": error[:2000], "delay_s": delay_s, "dead": dead},
            )

    @contextmanager
    def _span(self, consumer: Consumer, message: Msg) -> Iterator[None]:
        """The CONSUMER span of one message, continuing the producer's trace; handler errors mark it failed."""
        headers = dict(message.headers or {})
        with process_span(
            original_subject(message),
            message_id=headers.get(MSG_ID_HEADER, ""),
            headers=headers,
            consumer_name=consumer.durable,
        ) as span:
            span.set_attribute("messaging.message.delivery_count", message.metadata.num_delivered)
            try:
                yield
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise


async def advance_read_model(unit: Unit, read_model: str, aggregate_id: str, version: int) -> bool:
    """Record that `read_model` applied `aggregate_id` at `version`; False if it already saw that or newer.

    Contract: the platform hands each consumer an aggregate's events in version order, so a False here means
    the event was already applied or superseded — a copy published under another message id, or an event of
    a type that the read model's consumer subscribed to only later (its history arrives after newer events
    were applied: read models gated by this call should be fed by one consumer that subscribes to every event
    type that changes them from the start, or be rebuilt under a new `read_model` name when a type is added).
    Call it first in a read-model handler and skip the update when it returns False.
    """
    advanced = await execute_on_driver(
        unit,
        "advance_read_model",
        _ADVANCE,
        {"read_model": read_model, "aggregate_id": aggregate_id, "version": version},
    )
    return advanced is not None


@contextlib.asynccontextmanager
async def _kept_alive(messages: list[Msg], ack_wait_s: float) -> AsyncIterator[None]:
    """While the block runs, tell JetStream every third of ack_wait that the messages are still in progress,
    so a long handler or a database outage does not get them redelivered behind our back."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(ack_wait_s / 3)
            for message in messages:
                if not message.is_acked:
                    await _quietly(message.in_progress())

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _limits(consumer: Consumer) -> dict[str, str]:
    return {
        "statement_timeout": f"{int(consumer.statement_timeout_s * 1000)}ms",
        "lock_timeout": f"{int(consumer.lock_timeout_s * 1000)}ms",
    }


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _quietly(operation: Awaitable[Any]) -> None:
    """Ack/nak/term are best effort: if the broker is away, the message is redelivered and the inbox absorbs it."""
    try:
        await operation
    except Exception as exc:
        log.warning("could not settle a message: %s", exc)
