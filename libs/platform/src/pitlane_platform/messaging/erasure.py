"""Erasure in the streams (PIPL, ADR 6 and 13): the published copies of a customer's personal events are
securely deleted — from the producing service's stream, and from the dead letters and replays, where a
consumer that gave up on such an event (or an operator who replayed it) left another copy.

JetStream's secure delete (`STREAM.MSG.DELETE` without `no_erase`) overwrites the message in the store. The
scan reads headers only, of the given subjects only, through a short-lived consumer: one pass over those
messages per erasure, acceptable for a rare, audited operation. Every step is idempotent (a message already
gone is skipped), so a scrub retried by its consumer's back-off finishes the job.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as JsNotFoundError

from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.messaging.deadletter import ORIGINAL_MSG_ID
from pitlane_platform.messaging.streams import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    REPLAY_PREFIX,
    REPLAY_STREAM,
)


def event_subjects(event_types: Iterable[str]) -> list[str]:
    """The stream subjects of these event types (`workorder.CustomerIntroduced`), any branch, any version."""
    return sorted(f"{service}.*.{name}.*" for service, name in (t.split(".", 1) for t in event_types))


async def scrub_event_copies(
    js: JetStreamContext, *, stream: str, subjects: Sequence[str], event_ids: set[str]
) -> int:
    """Securely delete every copy of the events `event_ids`: in `stream` (on `subjects`), in the dead letters
    and in the replays. Returns how many messages were deleted."""
    if not event_ids:
        return 0
    deleted = await _scrub(js, stream, list(subjects), MSG_ID_HEADER, event_ids)
    # A dead letter or a replay keeps the event's own id in its own header (its Nats-Msg-Id is the
    # dead letter's); these streams are an operator's queue, small enough to scan whole.
    deleted += await _scrub(js, DEAD_LETTER_STREAM, [f"{DEAD_LETTER_PREFIX}.>"], ORIGINAL_MSG_ID, event_ids)
    deleted += await _scrub(js, REPLAY_STREAM, [f"{REPLAY_PREFIX}.>"], ORIGINAL_MSG_ID, event_ids)
    return deleted


async def _scrub(
    js: JetStreamContext, stream: str, subjects: list[str], id_header: str, event_ids: set[str]
) -> int:
    name = f"scrub_{uuid.uuid4().hex}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            filter_subjects=subjects,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    subscription = await js.pull_subscribe_bind(durable=name, stream=stream)
    deleted = 0
    try:
        while True:
            info = await subscription.consumer_info()
            if info.num_pending == 0:
                break
            try:
                messages = await subscription.fetch(512, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            for message in messages:
                if (message.headers or {}).get(id_header) in event_ids:
                    try:
                        # no_erase=False: the server overwrites the message, not just its index entry.
                        await js.delete_msg(stream, message.metadata.sequence.stream)
                        deleted += 1
                    except JsNotFoundError:
                        pass  # already gone (a retried scrub)
            await asyncio.sleep(0)
    finally:
        await subscription.unsubscribe()
        await js.delete_consumer(stream, name)
    return deleted
