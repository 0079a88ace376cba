"""How a service's messaging is doing, as an operator asks it: the relay's backlog and parked rows (from the
service's database), and per consumer what waits in JetStream, what it holds back and what it gave up on.
`pitlane status` and `pitlane dlq list` print these; `/ready` uses the outbox part."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from pitlane_platform.messaging.deadletter import DeadLetter
from pitlane_platform.messaging.streams import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM


@dataclass
class ConsumerHealth:
    consumer: str  # the durable's stable id, as dead letters name it: `<service>_<purpose>`
    pending: int = 0  # in JetStream: not yet delivered, or delivered and not yet acknowledged
    held_aggregates: int = 0  # retrying their head on the back-off schedule
    dead_lettered_aggregates: int = 0  # waiting for a replay
    held_messages: int = 0  # parked behind a held or dead-lettered head, heads included
    dead_letters: int = 0  # in the dead-letter stream


_HOLDS = """
    SELECT consumer,
           count(*) FILTER (WHERE dead_lettered_at IS NULL),
           count(*) FILTER (WHERE dead_lettered_at IS NOT NULL),
           (SELECT count(*) FROM consumer_parked_messages AS parked WHERE parked.consumer = hold.consumer)
    FROM consumer_holds AS hold GROUP BY consumer
"""
_HELD_BEHIND = """
    SELECT count(*) FROM consumer_parked_messages WHERE consumer = %s AND aggregate_id = %s
"""


def durable_of(consumer_name: str) -> str:
    """`customer-profile.visits` (inbox and holds) → `customer-profile_visits` (JetStream, dead letters)."""
    return consumer_name.replace(".", "_")


def service_of(durable: str) -> str:
    """The consuming service of a durable: service names have no underscore, purposes may."""
    return durable.split("_", 1)[0]


async def consumer_health(
    js: JetStreamContext, service: str, connection: psycopg.AsyncConnection[Any] | None
) -> list[ConsumerHealth]:
    """Every consumer of `service` that JetStream or the service's database knows of."""
    found: dict[str, ConsumerHealth] = {}

    def of(durable: str) -> ConsumerHealth:
        return found.setdefault(durable, ConsumerHealth(durable))

    for stream in await js.streams_info():
        name = stream.config.name
        assert name is not None
        for info in await js.consumers_info(name):
            if info.name and service_of(info.name) == service:
                base = info.name if name.startswith("PITLANE_") else info.name.rsplit("_", 1)[0]
                of(base).pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
    try:
        letters = await js.stream_info(DEAD_LETTER_STREAM, subjects_filter=f"{DEAD_LETTER_PREFIX}.>")
    except NotFoundError:
        letters = None
    for subject, count in ((letters.state.subjects or {}) if letters else {}).items():
        durable = subject.split(".")[1]
        if service_of(durable) == service:
            of(durable).dead_letters += count
    if connection is not None:
        cursor = await connection.execute(_HOLDS)
        for consumer, held, dead, parked in await cursor.fetchall():
            health = of(durable_of(consumer))
            health.held_aggregates, health.dead_lettered_aggregates, health.held_messages = held, dead, parked
    return sorted(found.values(), key=lambda health: health.consumer)


async def messages_held_behind(connection: psycopg.AsyncConnection[Any], letter: DeadLetter) -> int:
    """How many later messages of the dead letter's aggregate its consumer keeps waiting (the head too)."""
    try:
        aggregate_id = json.loads(letter.payload).get("aggregate_id")
    except (ValueError, AttributeError):
        return 0
    # The hold is keyed by the consumer's logical name: its service, a dot, its purpose.
    service, _, purpose = letter.consumer.partition("_")
    cursor = await connection.execute(_HELD_BEHIND, (f"{service}.{purpose}", aggregate_id))
    row = await cursor.fetchone()
    assert row is not None  # count(*) answers one row
    return int(row[0])
