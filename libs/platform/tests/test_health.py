"""What `pitlane status` and `pitlane dlq list` tell an operator about a service's consumers, read from a
real JetStream and PostgreSQL in a known state: what waits in JetStream per consumer (its subscription and
its replay durable together), which aggregates it holds or gave up on and how many messages wait behind
them, its dead letters (with their summary fields), and none of another service's."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
import pytest
from nats.js import JetStreamContext

from pitlane_events.customer_profile import CustomerRegistered
from pitlane_platform.db import libpq_url
from pitlane_platform.messaging import deadletter
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import Consumer, HandlerContext
from pitlane_platform.messaging.health import ConsumerHealth, consumer_health, messages_held_behind
from pitlane_platform.messaging.streams import (
    REPLAY_PREFIX,
    declare_consumer,
    declare_stream,
    platform_streams,
    service_stream,
)
from platform_flow import PRODUCER, create_tables

SUBJECT = f"{PRODUCER}.branch-1.CustomerRegistered.v1"
REGISTERED = "customer-profile.CustomerRegistered"


def consumer_of(service: str, purpose: str) -> Consumer:
    consumer = Consumer(service=service, purpose=purpose, source_service=PRODUCER)

    async def ignore(ctx: HandlerContext, event: Any) -> None:
        return None

    consumer.on(CustomerRegistered)(ignore)
    return consumer


# Two consumers of the service under watch, one with an underscore in its purpose, and one of another service.
ORDER_PROBE = consumer_of("analytics", "order-probe")
DAILY_TOTALS = consumer_of("analytics", "daily_totals")
INVOICES = consumer_of("billing", "invoices")


async def letter_for(
    js: JetStreamContext, consumer: Consumer, payload: bytes, *, source: str, subject: str = SUBJECT
) -> None:
    await deadletter.dead_letter(
        js,
        subject=subject,
        headers={"Nats-Msg-Id": f"event-{source}"},
        payload=payload,
        consumer=consumer.durable,
        error="ValueError: a field this consumer refuses",
        attempts=3,
        source=source,
    )


async def hold(
    db: psycopg.AsyncConnection[Any], consumer: Consumer, aggregate_id: str, *, dead: bool
) -> None:
    await db.execute(
        "INSERT INTO consumer_holds (consumer, aggregate_id, attempts, dead_lettered_at) "
        "VALUES (%s, %s, 3, CASE WHEN %s THEN now() END)",
        (consumer.name, aggregate_id, dead),
    )


async def park(
    db: psycopg.AsyncConnection[Any], consumer: Consumer, aggregate_id: str, versions: int
) -> None:
    for version in range(1, versions + 1):
        await db.execute(
            "INSERT INTO consumer_parked_messages "
            "(consumer, aggregate_id, aggregate_version, event_id, event_type, subject, headers, payload) "
            "VALUES (%s, %s, %s, gen_random_uuid(), %s, %s, '{}', '\\x7b7d')",
            (consumer.name, aggregate_id, version, REGISTERED, SUBJECT),
        )


@pytest.fixture
async def js(nats_url):
    nc = await connect_nats(nats_url, name="health")
    js = nc.jetstream()
    for spec in [service_stream(PRODUCER), *platform_streams()]:
        await declare_stream(js, spec)
    for consumer in (ORDER_PROBE, DAILY_TOTALS, INVOICES):
        for durable in consumer.specs():
            await declare_consumer(js, durable)
    yield js
    await nc.close()


@pytest.fixture
async def db(database_url):
    await create_tables(database_url)
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as connection:
        yield connection


async def test_consumer_health_counts_per_consumer_what_waits_what_is_held_and_what_was_given_up(js, db):
    for n in range(3):
        await js.publish(SUBJECT, json.dumps({"n": n}).encode())
    # order-probe has taken one of the three and not acknowledged it yet: 2 undelivered + 1 unacknowledged.
    taking = await js.pull_subscribe_bind(durable=ORDER_PROBE.subscription_durable, stream="CUSTOMER_PROFILE")
    [_] = await taking.fetch(1, timeout=5)
    # daily_totals has a replayed dead letter waiting on its replay durable besides the three.
    await js.publish(f"{REPLAY_PREFIX}.{DAILY_TOTALS.durable}.{SUBJECT}", b"{}")
    await letter_for(js, ORDER_PROBE, b'{"aggregate_id": "customer-a"}', source="CUSTOMER_PROFILE:1")
    await letter_for(
        js,
        ORDER_PROBE,
        b'{"aggregate_id": "customer-d"}',
        source="CUSTOMER_PROFILE:2",
        subject=SUBJECT.replace("branch-1", "branch-2"),  # counted per subject by JetStream
    )
    await letter_for(js, INVOICES, b'{"aggregate_id": "customer-a"}', source="CUSTOMER_PROFILE:1")
    await hold(db, ORDER_PROBE, "customer-a", dead=True)
    await park(db, ORDER_PROBE, "customer-a", 3)
    await hold(db, DAILY_TOTALS, "customer-b", dead=False)
    await hold(db, DAILY_TOTALS, "customer-c", dead=False)
    await park(db, DAILY_TOTALS, "customer-b", 2)

    assert await consumer_health(js, "analytics", db) == [
        ConsumerHealth(
            "analytics_daily_totals",
            pending=4,
            held_aggregates=2,
            dead_lettered_aggregates=0,
            held_messages=2,
            dead_letters=0,
        ),
        ConsumerHealth(
            "analytics_order-probe",
            pending=3,
            held_aggregates=0,
            dead_lettered_aggregates=1,
            held_messages=3,
            dead_letters=2,
        ),
    ]
    # Without the service's database (`pitlane status` given only the broker): JetStream's part alone.
    assert await consumer_health(js, "billing", None) == [
        ConsumerHealth("billing_invoices", pending=3, dead_letters=1)
    ]


async def test_a_dead_letter_summary_names_its_consumer_event_error_and_how_many_messages_it_holds_back(
    js, db
):
    await letter_for(
        js,
        ORDER_PROBE,
        json.dumps({"event_type": REGISTERED, "aggregate_id": "customer-a"}).encode(),
        source="CUSTOMER_PROFILE:7",
    )
    await letter_for(js, INVOICES, b'{"aggregate_id": "customer-a"}', source="CUSTOMER_PROFILE:7")
    await letter_for(js, DAILY_TOTALS, b'{"aggregate_id": "customer-b"}', source="CUSTOMER_PROFILE:8")
    await letter_for(js, ORDER_PROBE, b"not json", source="CUSTOMER_PROFILE:9")
    await letter_for(js, ORDER_PROBE, b'["customer-a"]', source="CUSTOMER_PROFILE:10")
    await hold(db, ORDER_PROBE, "customer-a", dead=True)
    await park(db, ORDER_PROBE, "customer-a", 3)
    await hold(db, DAILY_TOTALS, "customer-b", dead=True)
    await park(db, DAILY_TOTALS, "customer-b", 2)
    await park(db, INVOICES, "customer-a", 5)

    letters = await deadletter.list_dead_letters(js, consumer=ORDER_PROBE.durable)
    summaries = [letter.summary() for letter in letters]
    for summary in summaries:
        assert datetime.fromisoformat(str(summary.pop("at"))).tzinfo is not None
    assert summaries == [
        {
            "seq": sequence,
            "consumer": "analytics_order-probe",
            "event_type": event_type,  # the event's own header, else its payload's, else unknown
            "event_id": f"event-CUSTOMER_PROFILE:{source}",
            "subject": SUBJECT,
            "attempts": 3,
            "error": "ValueError: a field this consumer refuses",
        }
        for sequence, source, event_type in [(1, 7, REGISTERED), (4, 9, ""), (5, 10, "")]
    ]
    # The head and the later messages of its aggregate, of its own consumer only; none for a payload
    # without an aggregate.
    assert [await messages_held_behind(db, letter) for letter in letters] == [3, 0, 0]
    [totals] = await deadletter.list_dead_letters(js, consumer=DAILY_TOTALS.durable)
    assert (totals.event_type, await messages_held_behind(db, totals)) == ("", 2)

    replayed = await deadletter.replay(js, consumer=ORDER_PROBE.durable, sequences={4})
    assert [letter.summary()["event_id"] for letter in replayed] == ["event-CUSTOMER_PROFILE:9"]
    assert [letter.sequence for letter in await deadletter.list_dead_letters(js)] == [1, 2, 3, 5]
