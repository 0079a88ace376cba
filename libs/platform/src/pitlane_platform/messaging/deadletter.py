"""Dead letters: messages a consumer gave up on, kept with their error until an operator replays them.

A dead letter is the original message (payload and headers) published to `dlq.<consumer>.<subject>` in the
dead-letter stream, with `Pitlane-Dlq-*` headers saying who gave up, why, after how many attempts, and where
it came from. The consumer keeps the dead-lettered aggregate on hold: its later messages wait in the
consumer's database (`consumer_parked_messages`, counted by `pitlane dlq list`). Replaying publishes the dead
letter to `replay.<consumer>.<subject>`, which only that consumer reads, then removes it from the dead-letter
stream; the consumer then applies it and the aggregate's waiting messages in order, and its inbox keeps a
replay from having its effect twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from pitlane_events.codec import EVENT_TYPE_HEADER, MSG_ID_HEADER
from pitlane_platform.messaging.streams import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, REPLAY_PREFIX

ORIGINAL_SUBJECT = "Pitlane-Original-Subject"
ORIGINAL_MSG_ID = "Pitlane-Original-Msg-Id"
DLQ_CONSUMER = "Pitlane-Dlq-Consumer"
DLQ_ERROR = "Pitlane-Dlq-Error"
DLQ_ATTEMPTS = "Pitlane-Dlq-Attempts"
DLQ_SOURCE = "Pitlane-Dlq-Source"
DLQ_AT = "Pitlane-Dlq-At"
_DLQ_HEADERS = (DLQ_CONSUMER, DLQ_ERROR, DLQ_ATTEMPTS, DLQ_SOURCE, DLQ_AT)
_MAX_ERROR_LENGTH = 2000


def original_subject(message: Msg) -> str:
    """The subject the event was first published on, also for a replayed message."""
    return (message.headers or {}).get(ORIGINAL_SUBJECT, message.subject)


async def dead_letter(
    js: JetStreamContext,
    *,
    subject: str,
    headers: dict[str, str],
    payload: bytes,
    consumer: str,
    error: str,
    attempts: int,
    source: str,
) -> None:
    """Publish one message a consumer gave up on to the dead letters. `source` says where it was delivered
    from; one dead letter is kept per (consumer, source), so a retried publish is not stored twice."""
    headers = dict(headers)
    headers.setdefault(ORIGINAL_MSG_ID, headers.get(MSG_ID_HEADER, ""))
    headers.update(
        {
            ORIGINAL_SUBJECT: subject,
            MSG_ID_HEADER: f"dlq:{consumer}:{source}",
            DLQ_CONSUMER: consumer,
            DLQ_ERROR: _one_line(error)[:_MAX_ERROR_LENGTH],
            DLQ_ATTEMPTS: str(attempts),
            DLQ_SOURCE: source,
            DLQ_AT: datetime.now(UTC).isoformat(),
        }
    )
    await js.publish(f"{DEAD_LETTER_PREFIX}.{consumer}.{subject}", payload, headers=headers)


def delivery_source(message: Msg) -> str:
    """Where a message was delivered from: `<stream>:<sequence>`."""
    return f"{message.metadata.stream}:{message.metadata.sequence.stream}"


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    consumer: str
    subject: str
    event_type: str
    event_id: str
    error: str
    attempts: int
    dead_lettered_at: str
    payload: bytes
    headers: dict[str, str]

    def summary(self) -> dict[str, object]:
        return {
            "seq": self.sequence,
            "consumer": self.consumer,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "subject": self.subject,
            "attempts": self.attempts,
            "error": self.error,
            "at": self.dead_lettered_at,
        }


async def list_dead_letters(js: JetStreamContext, *, consumer: str | None = None) -> list[DeadLetter]:
    filter_subject = f"{DEAD_LETTER_PREFIX}.{consumer}.>" if consumer else f"{DEAD_LETTER_PREFIX}.>"
    letters = []
    async for letter in _iterate(js, filter_subject):
        letters.append(letter)
    return letters


async def replay(
    js: JetStreamContext, *, consumer: str | None = None, sequences: set[int] | None = None
) -> list[DeadLetter]:
    """Send dead letters back to their consumer; returns those replayed. Safe to run twice."""
    replayed = []
    for letter in await list_dead_letters(js, consumer=consumer):
        if sequences is not None and letter.sequence not in sequences:
            continue
        headers = {k: v for k, v in letter.headers.items() if k not in _DLQ_HEADERS}
        headers[MSG_ID_HEADER] = f"replay:{letter.sequence}"
        await js.publish(
            f"{REPLAY_PREFIX}.{letter.consumer}.{letter.subject}", letter.payload, headers=headers
        )
        await js.delete_msg(DEAD_LETTER_STREAM, letter.sequence)
        replayed.append(letter)
    return replayed


async def _iterate(js: JetStreamContext, filter_subject: str) -> AsyncIterator[DeadLetter]:
    sequence = 1
    while True:
        try:
            raw = await js.get_msg(DEAD_LETTER_STREAM, seq=sequence, subject=filter_subject, next=True)
        except NotFoundError:
            return
        headers = dict(raw.headers or {})
        yield DeadLetter(
            sequence=raw.seq or 0,
            consumer=headers.get(DLQ_CONSUMER, ""),
            subject=headers.get(ORIGINAL_SUBJECT, ""),
            event_type=headers.get(EVENT_TYPE_HEADER, "") or _event_type_of(raw.data or b""),
            event_id=headers.get(ORIGINAL_MSG_ID, ""),
            error=headers.get(DLQ_ERROR, ""),
            attempts=int(headers.get(DLQ_ATTEMPTS, "0") or 0),
            dead_lettered_at=headers.get(DLQ_AT, ""),
            payload=raw.data or b"",
            headers=headers,
        )
        sequence = (raw.seq or sequence) + 1


def _event_type_of(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("event_type", ""))
    except (ValueError, AttributeError):
        return ""


def _one_line(text: str) -> str:
    # NATS headers cannot carry line breaks.
    return " ".join(text.split())
