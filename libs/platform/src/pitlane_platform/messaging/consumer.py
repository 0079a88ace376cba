"""Consumers: durable pull consumers whose handlers have each event's effect exactly once.

Each message is handled in one database transaction together with an inbox row for its event id; the
message is acked only after that commit. A duplicate delivery finds the inbox row and is acked without
effect. A failing handler is nak'ed with a delay; after `max_deliver` attempts the message goes to the
dead-letter stream with its error and original headers and the consumer moves on. Dead letters replayed by
an operator come back through the consumer's replay subscription, on the same path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from opentelemetry.trace import Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pitlane_events import Actor, DomainEvent, Envelope, EventError, decode
from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.clock import Clock
from pitlane_platform.db import execute_on_driver
from pitlane_platform.messaging.deadletter import dead_letter, original_subject
from pitlane_platform.messaging.eventstore import CommandContext
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


@dataclass(frozen=True)
class HandlerContext:
    """What a handler gets besides the event: the transaction its effect must be written in, and time."""

    session: AsyncSession
    envelope: Envelope[Any]
    clock: Clock
    service: str

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
    handlers: dict[str, Handler] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}.{self.purpose}"

    @property
    def durable(self) -> str:
        # JetStream names cannot contain dots.
        return f"{self.service}_{self.purpose}".replace(".", "_")

    def on(self, model: type[DomainEvent]) -> Callable[[Handler], Handler]:
        """Register the handler of one event type; it receives the newest version's model."""
        if model.service() != self.source_service:
            raise ValueError(f"{model.event_type} is not published by {self.source_service}")

        def register(handler: Handler) -> Handler:
            self.handlers[model.event_type] = handler
            return handler

        return register

    def specs(self) -> list[ConsumerSpec]:
        filters = tuple(
            sorted(f"{self.source_service}.*.{event_type.split('.', 1)[1]}.*" for event_type in self.handlers)
        )
        if not filters:
            raise ValueError(f"consumer {self.name} handles no event")
        return [
            ConsumerSpec(stream_name(self.source_service), self.durable, filters, ack_wait_s=self.ack_wait_s),
            ConsumerSpec(
                REPLAY_STREAM,
                self.durable,
                (f"{REPLAY_PREFIX}.{self.durable}.>",),
                ack_wait_s=self.ack_wait_s,
            ),
        ]

    def delay_after(self, attempt: int) -> float:
        return self.backoff_s[min(attempt, len(self.backoff_s)) - 1]


AfterCommit = Callable[[Consumer, Envelope[Any]], None]


class ConsumerRunner:
    def __init__(
        self,
        consumers: Sequence[Consumer],
        *,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        after_commit: Sequence[AfterCommit] = (),
    ) -> None:
        self.consumers = consumers
        self.js = js
        self.sessions = sessions
        self.clock = clock
        self.after_commit = list(after_commit)
        self.applied = 0
        self.dead_lettered = 0

    async def declare(self) -> None:
        for consumer in self.consumers:
            for spec in consumer.specs():
                await declare_consumer(self.js, spec)

    async def run(self, stop: asyncio.Event) -> None:
        await self.declare()
        async with asyncio.TaskGroup() as tasks:
            for consumer in self.consumers:
                for spec in consumer.specs():
                    tasks.create_task(
                        self._pull(consumer, spec, stop), name=f"consume {spec.stream}/{spec.durable}"
                    )

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
                    await asyncio.sleep(0.5)
                    continue
                await self.process_batch(consumer, messages)
        finally:
            await subscription.unsubscribe()

    async def process_batch(self, consumer: Consumer, messages: list[Msg]) -> None:
        """Apply a fetched batch in one transaction (one commit instead of one per message), in order.

        If a handler fails, the batch's transaction is rolled back; the messages before it are applied one
        by one, the failing one is settled as this delivery's failed attempt (nak with back-off, or dead
        letter), and the rest are applied one by one, so a poison message costs the batch nothing but time.
        """
        ready = [item for item in [await self._prepare(consumer, message) for message in messages] if item]
        if len(ready) <= 1:
            for message, envelope, handler in ready:
                await self._apply_alone(consumer, message, envelope, handler)
            return
        failing = None
        applied: list[bool] = []
        try:
            async with self.sessions() as session, session.begin():
                for index, (message, envelope, handler) in enumerate(ready):
                    failing = index
                    with self._span(consumer, message):
                        applied.append(await self._claim_and_handle(session, consumer, handler, envelope))
                failing = None
        except Exception as exc:
            if failing is None:  # the commit itself failed: nothing was applied, try each on its own
                for message, envelope, handler in ready:
                    await self._apply_alone(consumer, message, envelope, handler)
                return
            for message, envelope, handler in ready[:failing]:
                await self._apply_alone(consumer, message, envelope, handler)
            await self._failed(consumer, ready[failing][0], ready[failing][1], exc)
            for message, envelope, handler in ready[failing + 1 :]:
                await self._apply_alone(consumer, message, envelope, handler)
            return
        for (message, envelope, _), was_applied in zip(ready, applied, strict=True):
            await self._succeeded(consumer, message, envelope, was_applied)

    async def _prepare(self, consumer: Consumer, message: Msg) -> tuple[Msg, Envelope[Any], Handler] | None:
        """Settle what needs no handler (dead letters, events this consumer ignores); else what to apply."""
        attempt = message.metadata.num_delivered
        if attempt > consumer.max_deliver:
            # The process died during the last attempt: give up without running the handler again.
            await self._dead_letter(
                consumer, message, f"no outcome after {consumer.max_deliver} attempts", attempt
            )
            return None
        try:
            envelope = decode(message.data)
        except EventError as exc:  # retrying cannot make an unreadable event readable
            await self._dead_letter(consumer, message, str(exc), attempt)
            return None
        handler = consumer.handlers.get(envelope.event_type)
        if handler is None:
            await _quietly(message.ack())
            return None
        return message, envelope, handler

    async def _apply_alone(
        self, consumer: Consumer, message: Msg, envelope: Envelope[Any], handler: Handler
    ) -> None:
        try:
            with self._span(consumer, message):
                async with self.sessions() as session, session.begin():
                    applied = await self._claim_and_handle(session, consumer, handler, envelope)
        except Exception as exc:
            await self._failed(consumer, message, envelope, exc)
            return
        await self._succeeded(consumer, message, envelope, applied)

    async def _claim_and_handle(
        self, session: AsyncSession, consumer: Consumer, handler: Handler, envelope: Envelope[Any]
    ) -> bool:
        """Write the inbox row and run the handler in the caller's transaction; False if already applied."""
        claimed = await execute_on_driver(
            session,
            "claim",
            _CLAIM,
            {"consumer": consumer.name, "event_id": envelope.event_id, "event_type": envelope.event_type},
        )
        if claimed is None:
            return False
        await handler(HandlerContext(session, envelope, self.clock, consumer.service), envelope.data)
        return True

    async def _succeeded(
        self, consumer: Consumer, message: Msg, envelope: Envelope[Any], applied: bool
    ) -> None:
        if applied:
            self.applied += 1
            for hook in self.after_commit:
                hook(consumer, envelope)
        await _quietly(message.ack())

    async def _failed(
        self, consumer: Consumer, message: Msg, envelope: Envelope[Any], exc: Exception
    ) -> None:
        attempt = message.metadata.num_delivered
        log.warning(
            "handler %s failed on %s (attempt %d/%d)",
            consumer.name,
            envelope.event_type,
            attempt,
            consumer.max_deliver,
            exc_info=exc,
            extra={"event_id": str(envelope.event_id)},
        )
        if attempt >= consumer.max_deliver:
            await self._dead_letter(consumer, message, f"{type(exc).__name__}: {exc}", attempt)
        else:
            await _quietly(message.nak(delay=consumer.delay_after(attempt)))

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

    async def _dead_letter(self, consumer: Consumer, message: Msg, error: str, attempt: int) -> None:
        try:
            await dead_letter(self.js, message, consumer=consumer.durable, error=error, attempts=attempt)
        except Exception:
            log.exception("could not dead-letter a message of %s; it will be redelivered", consumer.name)
            await _quietly(message.nak(delay=consumer.delay_after(consumer.max_deliver)))
            return
        self.dead_lettered += 1
        await _quietly(message.term())


async def advance_read_model(session: AsyncSession, read_model: str, aggregate_id: str, version: int) -> bool:
    """Record that `read_model` applied `aggregate_id` at `version`; False if it already saw that or newer.

    Call it first in a read-model handler and skip the update when it returns False, so a late or replayed
    older event never overwrites newer state.
    """
    advanced = await execute_on_driver(
        session,
        "advance_read_model",
        _ADVANCE,
        {"read_model": read_model, "aggregate_id": aggregate_id, "version": version},
    )
    return advanced is not None


async def _quietly(operation: Awaitable[Any]) -> None:
    """Ack/nak/term are best effort: if the broker is away, the message is redelivered and the inbox absorbs it."""
    try:
        await operation
    except Exception as exc:
        log.warning("could not settle a message: %s", exc)
