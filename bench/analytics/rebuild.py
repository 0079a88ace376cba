"""Rebuilding analytics' read models from 1,000,000 events, beside a raw fetch-and-insert of the same facts.

- The service: `rebuild_read_models` (what `pitlane analytics rebuild` runs) on a migrated, empty analytics
  database: every stream read from its start, each event decoded and checked by its model, claimed in the
  fresh inbox and applied by the consumers' writers, then swapped in.
- The baseline, by hand: the same streams read the same way (an ephemeral pull consumer per stream, batches
  of the same size), each message parsed with `json.loads` alone, and the same fact rows written with one
  statement per table per batch into a database of the same schema — no models, no inbox, no swap.

Both must leave the same facts (a digest of every fact table), or the bench fails.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nats
import psycopg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from psycopg.types.json import Jsonb

from bench.analytics.history import SOURCES
from pitlane_analytics.adapters.kpi_projections import everything_at_once
from pitlane_analytics.bootstrap import MIGRATIONS, READ_MODELS
from pitlane_analytics.entrypoints.consumers import CHAIN_TIMEZONE, build_consumers
from pitlane_platform.clock import SystemClock
from pitlane_platform.db import libpq_url
from pitlane_platform.messaging.rebuild import ReadModels, rebuild_read_models
from pitlane_platform.messaging.streams import service_stream
from pitlane_platform.migrations import upgrade

BATCH = 500
# The fact tables both sides fill, and the columns a digest compares (event ids are the same on both sides).
FACT_TABLES = {
    "work_orders": "work_order_id, customer_id, vehicle_id, branch_id, advisor_id, technician_ids, "
    "appointment_id, coupon_codes, completed_at, paid_fen, voided_at, (SELECT array_agg(e ORDER BY e) FROM unnest(event_ids) e)",
    "visit_lines": "work_order_id, line_no, item_code, name, category, quantity, revenue_fen, cost_fen, add_on_id, event_id",
    "appointments": "appointment_id, customer_id, branch_id, vehicle_id, channel, campaign_id, reminder_id, booked_at, "
    "arrived_at, work_order_id, cancelled_at, no_show_at, (SELECT array_agg(e ORDER BY e) FROM unnest(event_ids) e)",
    "add_ons": "add_on_id, work_order_id, item, item_code, category, price_fen, proposed_at, approved_at, declined_at, "
    "(SELECT array_agg(e ORDER BY e) FROM unnest(event_ids) e)",
    "surveys": "survey_id, work_order_id, branch_id, sent_at, event_id",
    "nps_answers": "survey_id, work_order_id, customer_id, branch_id, advisor_id, technician_ids, score, answered_at, event_id",
    "reminders_sent": "event_id, reminder_id, vehicle_id, branch_id, sent_at",
    "customer_aliases": "merged_customer_id, surviving_customer_id, event_id",
}


@dataclass(frozen=True)
class Rebuilt:
    events: int
    seconds: float
    digest: dict[str, tuple[int, str]]

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


def migrate(database_url: str) -> None:
    upgrade(database_url, MIGRATIONS)


async def with_the_service(database_url: str, nats_url: str) -> Rebuilt:
    connection = await nats.connect(nats_url)
    try:
        consumers = build_consumers()
        started = time.perf_counter()
        report = await rebuild_read_models(
            ReadModels("analytics", consumers, READ_MODELS, everything_at_once(CHAIN_TIMEZONE)),
            database_url=database_url,
            js=connection.jetstream(),
            clock=SystemClock(),
            batch_size=BATCH,
            keep_backup=False,
        )
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    read = sum(replay.read for replay in report.replays)
    return Rebuilt(read, seconds, await digest(database_url))


async def by_hand(database_url: str, nats_url: str) -> Rebuilt:
    connection = await nats.connect(nats_url)
    js = connection.jetstream()
    read = 0
    try:
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as database:
            started = time.perf_counter()
            for source in SOURCES:
                stream = service_stream(source).name
                name = f"bench_{uuid.uuid4().hex[:8]}"
                await js.add_consumer(
                    stream,
                    ConsumerConfig(
                        name=name,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_policy=AckPolicy.NONE,
                        mem_storage=True,
                        inactive_threshold=300,
                    ),
                )
                subscription = await js.pull_subscribe_bind(consumer=name, stream=stream)
                while messages := await _full_batch(js, subscription, stream, name):
                    read += len(messages)
                    async with database.transaction():
                        await _write(database, [json.loads(message.data) for message in messages])
                await js.delete_consumer(stream, name)
            seconds = time.perf_counter() - started
    finally:
        await connection.close()
    return Rebuilt(read, seconds, await digest(database_url))


async def _full_batch(js: Any, subscription: Any, stream: str, name: str) -> list[Any]:
    """Up to BATCH messages, as many as the stream has: read as the rebuild reads them."""
    batch: list[Any] = []
    while len(batch) < BATCH and (pending := (await js.consumer_info(stream, name)).num_pending):
        batch.extend(await subscription.fetch(min(BATCH - len(batch), pending), timeout=5))
    return batch


# ---- the baseline's statements: one per table per batch, rows merged in Python first ---------------------------

_KEYS = {"work_orders": "work_order_id", "appointments": "appointment_id", "add_ons": "add_on_id"}
_TYPES = {
    "technician_ids": "text[]",
    "coupon_codes": "text[]",
    "paid_fen": "bigint",
    "price_fen": "bigint",
    "revenue_fen": "bigint",
    "cost_fen": "bigint",
    "line_no": "smallint",
    "score": "smallint",
    "quantity": "numeric(12,3)",
}


def _type(column: str) -> str:
    return "timestamptz" if column.endswith("_at") else _TYPES.get(column, "text")


async def _write(database: psycopg.AsyncConnection[Any], envelopes: list[dict[str, Any]]) -> None:
    # Rows several events write are merged in Python per (table, columns, authority) first: one statement
    # may not update a row twice.
    merged: dict[tuple[str, tuple[str, ...], bool], dict[str, dict[str, Any]]] = defaultdict(dict)
    inserted: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    newest: dict[str, str] = {}
    for envelope in envelopes:
        for table, row in _facts(envelope):
            if table in _KEYS:
                wins = bool(row.pop("_wins", False))
                event_id = row.pop("event_id")
                group = merged[(table, tuple(row), wins)]
                into = group.setdefault(row[_KEYS[table]], {**row, "event_ids": []})
                into["event_ids"].append(event_id)
                for column, value in row.items():
                    if value is not None and (wins or into.get(column) is None):
                        into[column] = value
            else:
                inserted[(table, tuple(row))].append(row)
        source = envelope["event_type"].split(".")[0]
        newest[source] = max(newest.get(source, ""), envelope["occurred_at"])
    for (table, columns, wins), rows in merged.items():
        key = _KEYS[table]
        winner, loser = ("excluded", "t") if wins else ("t", "excluded")
        updates = ", ".join(f"{c} = coalesce({winner}.{c}, {loser}.{c})" for c in columns if c != key)
        await database.execute(
            f"INSERT INTO {table} AS t ({', '.join(columns)}, event_ids) "
            f"SELECT {', '.join(columns)}, event_ids FROM jsonb_to_recordset(%s) "
            f"AS r({', '.join(f'{c} {_type(c)}' for c in columns)}, event_ids text[]) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}, event_ids = t.event_ids || excluded.event_ids",
            (Jsonb(list(rows.values())),),
        )
    for (table, columns), new_rows in inserted.items():
        await database.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} "
            f"FROM jsonb_to_recordset(%s) AS r({', '.join(f'{c} {_type(c)}' for c in columns)}) "
            "ON CONFLICT DO NOTHING",
            (Jsonb(new_rows),),
        )
    for source, at in newest.items():
        await database.execute(
            "INSERT INTO source_watermarks AS w (source_service, newest_event_at) VALUES (%s, %s) "
            "ON CONFLICT (source_service) DO UPDATE "
            "SET newest_event_at = greatest(w.newest_event_at, excluded.newest_event_at)",
            (source, at),
        )


def _facts(envelope: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data, event_id, at = (
        envelope["event_type"],
        envelope["data"],
        envelope["event_id"],
        envelope["occurred_at"],
    )
    branch = envelope.get("branch_id")
    if kind == "workorder.WorkOrderOpened":
        yield (
            "work_orders",
            {
                "work_order_id": data["work_order_id"],
                "customer_id": data["customer_id"],
                "vehicle_id": data["vehicle_id"],
                "branch_id": branch,
                "advisor_id": data.get("advisor_id"),
                "appointment_id": data.get("appointment_id"),
                "event_id": event_id,
            },
        )
    elif kind == "workorder.WorkOrderCompleted":
        coupons = {data.get("coupon_code")} | {d["coupon_code"] for d in data.get("discounts", [])}
        yield (
            "work_orders",
            {
                "work_order_id": data["work_order_id"],
                "customer_id": data["customer_id"],
                "vehicle_id": data["vehicle_id"],
                "branch_id": data["branch_id"],
                "advisor_id": data["advisor_id"],
                "technician_ids": data["technician_ids"],
                "appointment_id": data.get("appointment_id"),
                "coupon_codes": sorted(c for c in coupons if c is not None),
                "completed_at": data["completed_at"],
                "paid_fen": data["paid_fen"],
                "event_id": event_id,
                "_wins": True,
            },
        )
        for number, line in enumerate(data["line_items"], start=1):
            yield (
                "visit_lines",
                {
                    "work_order_id": data["work_order_id"],
                    "line_no": number,
                    "item_code": line["item_code"],
                    "name": line["name"],
                    "category": line["category"],
                    "quantity": line["quantity"],
                    "revenue_fen": line["line_total_fen"],
                    "cost_fen": line.get("cost_fen"),
                    "add_on_id": line.get("add_on_id"),
                    "event_id": event_id,
                },
            )
    elif kind == "workorder.WorkOrderVoided":
        yield (
            "work_orders",
            {
                "work_order_id": data["work_order_id"],
                "customer_id": data["customer_id"],
                "voided_at": at,
                "event_id": event_id,
            },
        )
    elif kind.startswith("workorder.Appointment"):
        row = {
            "appointment_id": data["appointment_id"],
            "customer_id": data["customer_id"],
            "branch_id": branch,
            "event_id": event_id,
            "_wins": True,
        }
        if kind.endswith("Booked"):
            row |= {
                "vehicle_id": data.get("vehicle_id"),
                "channel": data["channel"],
                "campaign_id": data.get("campaign_id"),
                "reminder_id": data.get("reminder_id"),
                "booked_at": at,
            }
        elif kind.endswith("Arrived"):
            row |= {"arrived_at": data["arrived_at"], "work_order_id": data["work_order_id"]}
        elif kind.endswith("Cancelled"):
            row |= {"cancelled_at": at}
        yield "appointments", row
    elif kind == "workorder.AddOnProposed":
        yield (
            "add_ons",
            {
                "add_on_id": data["add_on_id"],
                "work_order_id": data["work_order_id"],
                "item": data["item"],
                "item_code": data.get("item_code"),
                "category": data["category"],
                "price_fen": data["price_fen"],
                "proposed_at": at,
                "event_id": event_id,
                "_wins": True,
            },
        )
    elif kind in ("workorder.AddOnApproved", "workorder.AddOnDeclined"):
        when = "approved_at" if kind.endswith("Approved") else "declined_at"
        yield (
            "add_ons",
            {
                "add_on_id": data["add_on_id"],
                "work_order_id": data["work_order_id"],
                "item": data["item"],
                "category": data["category"],
                "price_fen": data["price_fen"],
                when: data["decided_at"],
                "event_id": event_id,
            },
        )
    elif kind == "notification.NpsSurveySent":
        yield (
            "surveys",
            {
                "survey_id": data["survey_id"],
                "work_order_id": data["work_order_id"],
                "branch_id": data["branch_id"],
                "sent_at": at,
                "event_id": event_id,
            },
        )
    elif kind == "notification.NpsAnswered":
        yield (
            "nps_answers",
            {
                "survey_id": data["survey_id"],
                "work_order_id": data["work_order_id"],
                "customer_id": data["customer_id"],
                "branch_id": data["branch_id"],
                "advisor_id": data["advisor_id"],
                "technician_ids": data["technician_ids"],
                "score": data["score"],
                "answered_at": at,
                "event_id": event_id,
            },
        )
    elif kind == "reminder.ReminderDue":
        yield (
            "reminders_sent",
            {
                "event_id": event_id,
                "reminder_id": data["reminder_id"],
                "vehicle_id": data["vehicle_id"],
                "branch_id": data.get("preferred_branch_id"),
                "sent_at": at,
            },
        )
    elif kind == "customer-profile.CustomersMerged":
        for merged in data["merged_customer_ids"]:
            yield (
                "customer_aliases",
                {
                    "merged_customer_id": merged,
                    "surviving_customer_id": data["surviving_customer_id"],
                    "event_id": event_id,
                },
            )


async def digest(database_url: str) -> dict[str, tuple[int, str]]:
    """Per fact table: its rows and an md5 of them in key order."""
    out = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as database:
        for table, columns in FACT_TABLES.items():
            cursor = await database.execute(
                f"SELECT count(*), md5(coalesce(string_agg(row_text, '|' ORDER BY row_text), '')) "
                f"FROM (SELECT ({columns})::text AS row_text FROM {table}) AS r"
            )
            count, md5 = await cursor.fetchone()  # type: ignore[misc]
            out[table] = (count, md5)
    return out
