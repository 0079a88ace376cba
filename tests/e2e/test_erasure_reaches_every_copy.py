"""Erasure reaches every copy (issue 11, ADR 6 and 13): a customer who was registered in customer-profile,
met online by workorder first (introduced, then merged into the registration), and served a whole visit,
is erased in customer-profile; afterwards no table of either service's database, no message of any
JetStream stream (the services' own, the dead letters and the replays) and no log line of the services
holds their name or phone, in any form a person types it or E.164.

Every table and column is scanned (not a list of the ones we know hold personal data), so a table a service
adds later joins the check without being declared.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import nats
import psycopg
import pytest
from e2e_cluster import BRANCH, Cluster, eventually, rows

from pitlane_events.codec import MSG_ID_HEADER
from pitlane_platform.db import libpq_url
from pitlane_platform.messaging.deadletter import dead_letter, list_dead_letters, replay
from platform_flow import stream_messages

NAME = "欧阳春花"
PHONE = ("139 8765 4321", "13987654321", "+8613987654321")
# The phone of the first, online booking, before the customer registered with the one above.
FIRST_PHONE = ("137 6543 2109", "13765432109", "+8613765432109")
# The name as JSON escapes it (ensure_ascii), in case some copy was written that way.
NEEDLES = (NAME, json.dumps(NAME)[1:-1], *PHONE, *FIRST_PHONE)
PROBE_CONSUMER = "e2e_probe"


def found_in(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def as_text(value: Any) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def personal_data_in_database(database: str) -> list[str]:
    """`table.column: needle` for every value of every table holding one of the needles."""
    hits = []
    with psycopg.connect(libpq_url(database)) as connection:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [column.name for column in cursor.description or ()]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    hits += [f"{table}.{column}: {needle}" for needle in found_in(as_text(value))]
    return hits


async def personal_data_in_streams(js: Any) -> list[str]:
    hits = []
    for stream in await js.streams_info():
        if stream.state.messages == 0:
            continue  # nothing to read (and no sequence to read it at)
        for message in await stream_messages(js, stream.config.name):
            text = as_text(message.data or b"") + json.dumps(message.headers or {}, ensure_ascii=False)
            hits += [f"{stream.config.name}#{message.seq}: {needle}" for needle in found_in(text)]
    return hits


async def copy_to_dead_letters(js: Any, stream: str, event_id: str, *, replayed: bool) -> None:
    """Leave a copy of the event where a consumer that gave up on it would (and, `replayed`, where an
    operator's replay would): the erasure must find those too."""
    [message] = [
        m for m in await stream_messages(js, stream) if (m.headers or {}).get(MSG_ID_HEADER) == event_id
    ]
    await dead_letter(
        js,
        subject=message.subject,
        headers=dict(message.headers or {}),
        payload=message.data,
        consumer=PROBE_CONSUMER,
        error="e2e: gave up",
        attempts=5,
        source=f"{stream}:{message.seq}",
    )
    if replayed:
        [letter] = [
            letter
            for letter in await list_dead_letters(js, consumer=PROBE_CONSUMER)
            if letter.event_id == event_id
        ]
        await replay(js, consumer=PROBE_CONSUMER, sequences={letter.sequence})


def event_id_of(database: str, event_type: str, stream_id: str) -> str:
    [(event_id,)] = rows(
        database,
        "SELECT event_id::text FROM events WHERE event_type = %s AND stream_id = %s",
        event_type,
        stream_id,
    )
    return str(event_id)


async def test_after_erasure_no_table_stream_or_log_holds_the_customers_name_or_phone(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # Met online first: workorder introduces them (CustomerIntroduced carries the name and phone).
    first = await cluster.book_online(FIRST_PHONE[0], "沪E77777", slot=0, customer_name=NAME)
    introduced_id = first["customer_id"]

    async def adopted() -> bool:
        return bool(
            rows(cluster.profile_database, "SELECT 1 FROM customers WHERE customer_id = %s", introduced_id)
        )

    await eventually(adopted, "customer-profile adopted the online booker")
    # Then registered at the counter with another phone, and the online record merged into the registration.
    customer_id = await cluster.register(PHONE[0], name=NAME)
    await cluster.call(
        cluster.profile,
        "POST",
        f"/v1/customers/{customer_id}/merge",
        {"merged_customer_ids": [introduced_id]},
    )

    async def directory_caught_up() -> bool:
        merged = rows(
            cluster.workorder_database,
            "SELECT merged_into FROM directory_customers WHERE customer_id = %s",
            introduced_id,
        )
        return merged == [(customer_id,)] and bool(
            rows(
                cluster.workorder_database,
                "SELECT 1 FROM directory_phones WHERE customer_id = %s",
                customer_id,
            )
        )

    await eventually(directory_caught_up, "workorder's directory has the registration and the merge")
    # A whole visit booked with the registered phone, with a link to the customer's page.
    booked = await cluster.book_online(PHONE[0], "沪E88888", slot=1, customer_name=NAME)
    assert booked["customer_id"] == customer_id
    work_order_id = await cluster.serve(
        booked["appointment_id"], mileage_km=30_000, brand="大众", model="速腾"
    )
    await cluster.call(
        cluster.workorder, "POST", f"/v1/branches/{BRANCH}/work-orders/{work_order_id}/customer-link"
    )

    async def visit_counted() -> bool:
        return bool(
            rows(cluster.profile_database, "SELECT 1 FROM visits WHERE work_order_id = %s", work_order_id)
        )

    await eventually(visit_counted, "customer-profile counted the visit")
    connection = await nats.connect(cluster.workorder_settings.nats_url)
    try:
        js = connection.jetstream()
        # Copies a consumer gave up on, and one an operator replayed, of both services' personal events.
        registered = event_id_of(cluster.profile_database, "customer-profile.CustomerRegistered", customer_id)
        introduction = event_id_of(cluster.workorder_database, "workorder.CustomerIntroduced", introduced_id)
        await copy_to_dead_letters(js, "CUSTOMER_PROFILE", registered, replayed=False)
        await copy_to_dead_letters(js, "WORKORDER", introduction, replayed=True)
        assert await personal_data_in_streams(js), "the scan finds the copies before the erasure"
        assert personal_data_in_database(cluster.workorder_database)

        erasure = await cluster.call(
            cluster.profile, "POST", f"/v1/customers/{customer_id}/erasure", role="owner"
        )

        async def erased_everywhere() -> bool:
            scrubbed = rows(
                cluster.profile_database,
                "SELECT stream_messages_scrubbed_at IS NOT NULL FROM erasures WHERE erasure_request_id = %s",
                erasure["erasure_request_id"],
            )
            forgotten = rows(
                cluster.workorder_database,
                "SELECT count(*) FROM directory_customers WHERE customer_id = ANY(%s) AND erased_at IS NOT NULL",
                [customer_id, introduced_id],
            )
            return scrubbed == [(True,)] and forgotten == [(2,)]

        await eventually(erased_everywhere, "both services erased the customer and scrubbed their streams")
        assert personal_data_in_database(cluster.profile_database) == []
        assert personal_data_in_database(cluster.workorder_database) == []
        assert await personal_data_in_streams(js) == []
    finally:
        await connection.close()
    # The services' log lines; httpx's are this test's own client naming the URLs it calls.
    logged = [
        f"{record.name}: {needle}"
        for record in caplog.records
        if record.name != "httpx"
        for needle in found_in(
            record.getMessage() + as_text({k: as_text(v) for k, v in vars(record).items()})
        )
    ]
    assert logged == []
    # What the erasure keeps: the visit's figures under the now anonymous ids, the introduction's ids.
    assert rows(cluster.workorder_database, "SELECT customer_id FROM work_orders") == [(customer_id,)]
    [(data,)] = rows(
        cluster.workorder_database,
        "SELECT envelope -> 'data' FROM events WHERE event_id = %s::uuid",
        introduction,
    )
    assert data["customer_id"] == introduced_id and data["full_name"] is None and data["phone"] is None
