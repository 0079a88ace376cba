"""The statements that write facts, on the driver, many rows at once. Every write commutes with the others of
its row: a column is set by the events that know it (`coalesce`), an event id is added to the row's set once,
so a row ends the same whatever order its events arrive in and however often one is applied.

Rows travel as one JSON document per statement (`jsonb_to_recordset`, typed by the table's own columns):
psycopg would otherwise adapt a list parameter element by element in Python. Table and column names come
from the table definitions, never from input. Unqualified table names let a rebuild write the same
statements into fresh tables under another `search_path`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from pitlane_analytics.adapters.tables import erased_customers
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver, json_rows


@dataclass(frozen=True)
class Merge:
    """What one event knows of a row several events write: its key, its columns (None: not known here)."""

    key: str
    columns: Mapping[str, Any]
    event_id: str


async def merge_rows(
    unit: Unit,
    table: Table,
    rows: Sequence[Merge],
    *,
    authoritative: bool,
    earliest: tuple[str, ...] = (),
) -> None:
    """Insert or update rows of a table several events write (`event_ids`), the rows given all naming the same
    columns. An authoritative event's values replace what the row holds (a completion's advisor over the
    opening's); the others only fill columns still empty; an `earliest` column keeps the earliest time given.
    A column given as None is left as it is."""
    if not rows:
        return
    key_column = _key_column(table)
    names = list(rows[0].columns)
    winner, loser = ("excluded", "t") if authoritative else ("t", "excluded")
    assignments = [
        f"{name} = least(t.{name}, excluded.{name})"
        if name in earliest
        else f"{name} = coalesce({winner}.{name}, {loser}.{name})"
        for name in names
    ]
    assignments.append(
        "event_ids = CASE WHEN excluded.event_ids[1] = ANY(t.event_ids) THEN t.event_ids "
        "ELSE t.event_ids || excluded.event_ids END"
    )
    columns = [key_column, *names]
    sql = (
        f"INSERT INTO {table.name} AS t ({', '.join(columns)}, event_ids) "
        f"SELECT {', '.join(columns)}, ARRAY[event_id] FROM jsonb_to_recordset(%(rows)s) "
        f"AS r({_typed(table, columns)}, event_id text) "
        f"ON CONFLICT ({key_column}) DO UPDATE SET {', '.join(assignments)}"
    )
    # One statement may not update a row twice: a key met again in the batch waits for the next round.
    for round_ in _rounds(rows):
        documents = [{key_column: row.key, **row.columns, "event_id": row.event_id} for row in round_]
        await execute_on_driver(unit, f"merge {table.name}", sql, {"rows": json_rows(documents)})


async def insert_rows(
    unit: Unit, table: Table, rows: Sequence[Mapping[str, Any]], *, unless_erased: str | None = None
) -> None:
    """Rows only one event writes each (it names the event in `event_id`): a second delivery changes nothing.
    `unless_erased`: the column naming a customer whose erasure (theirs, or their survivor's) keeps the row
    out."""
    if not rows:
        return
    names = list(rows[0])
    keep = (
        ""
        if unless_erased is None
        else f" WHERE NOT EXISTS (SELECT FROM {erased_customers.name} e WHERE e.customer_id = r.{unless_erased} "
        "OR e.customer_id = (SELECT surviving_customer_id FROM customer_aliases "
        f"WHERE merged_customer_id = r.{unless_erased}))"
    )
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT {', '.join(names)} FROM jsonb_to_recordset(%(rows)s) AS r({_typed(table, names)}){keep} "
        "ON CONFLICT DO NOTHING"
    )
    await execute_on_driver(unit, f"insert {table.name}", sql, {"rows": json_rows(list(rows))})


def _rounds(rows: Sequence[Merge]) -> list[list[Merge]]:
    rounds: list[list[Merge]] = []
    seen: dict[str, int] = {}
    for row in rows:
        index = seen.get(row.key, 0)
        seen[row.key] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(row)
    return rounds


@cache
def _key_column(table: Table) -> str:
    (key,) = table.primary_key.columns
    return str(key.name)


def _typed(table: Table, names: Sequence[str]) -> str:
    return ", ".join(f"{name} {_column_type(table, name)}" for name in names)


@cache
def _column_type(table: Table, name: str) -> str:
    return str(table.c[name].type.compile(dialect=postgresql.dialect()))


@dataclass(frozen=True)
class CustomerMerge:
    """One merge: `merged` are now `surviving` (as the event `event_id` says)."""

    surviving: str
    merged: Sequence[str]
    event_id: str


async def merge_customers(unit: Unit, merges: Sequence[CustomerMerge]) -> None:
    """Record the merges, in their order, resolving chains whatever order they arrive in: each survivor is
    itself resolved first (it may have been merged away already), and aliases that pointed at a merged id
    move on to the survivor. The aliases the merges can reach are read once, resolved here merge by merge,
    and the changed ones written in one statement."""
    if not merges:
        return
    named = sorted({merge.surviving for merge in merges} | {m for merge in merges for m in merge.merged})
    merged = sorted({m for merge in merges for m in merge.merged})
    aliases: dict[str, tuple[str, str]] = {
        row[0]: (row[1], row[2])
        for row in await fetch_on_driver(
            unit,
            "aliases of merges",
            # Two lookups, not an OR: the OR compared every alias with every id named.
            "SELECT merged_customer_id, surviving_customer_id, event_id FROM customer_aliases "
            "WHERE merged_customer_id = ANY(%(named)s::text[]) "
            "UNION SELECT a.merged_customer_id, a.surviving_customer_id, a.event_id FROM customer_aliases a "
            "JOIN unnest(%(merged)s::text[]) AS m(id) ON a.surviving_customer_id = m.id",
            {"named": named, "merged": merged},
        )
    }
    pointing: dict[str, set[str]] = defaultdict(set)  # survivor → the aliases that point at it
    for alias, (surviving, _) in aliases.items():
        pointing[surviving].add(alias)
    changed: set[str] = set()
    for merge in merges:
        survivor = aliases[merge.surviving][0] if merge.surviving in aliases else merge.surviving
        for customer in merge.merged:
            if customer == survivor:
                continue
            moving = pointing.pop(customer, set()) | {customer}
            for alias in moving:
                if alias in aliases:
                    pointing[aliases[alias][0]].discard(alias)
                # An alias already recorded keeps the event that first recorded it.
                aliases[alias] = (survivor, aliases[alias][1] if alias in aliases else merge.event_id)
            pointing[survivor] |= moving
            changed |= moving
    rows = [
        {
            "merged_customer_id": alias,
            "surviving_customer_id": aliases[alias][0],
            "event_id": aliases[alias][1],
        }
        for alias in sorted(changed)
    ]
    await execute_on_driver(
        unit,
        "write aliases",
        """
        INSERT INTO customer_aliases (merged_customer_id, surviving_customer_id, event_id)
        SELECT merged_customer_id, surviving_customer_id, event_id
        FROM jsonb_to_recordset(%(rows)s) AS r(merged_customer_id text, surviving_customer_id text, event_id text)
        ON CONFLICT (merged_customer_id) DO UPDATE SET surviving_customer_id = excluded.surviving_customer_id
        """,
        {"rows": json_rows(rows)},
    )


async def delete_answers_of(unit: Unit, customer_id: str) -> None:
    """The NPS answers of a customer and of everyone merged into them."""
    await execute_on_driver(
        unit,
        "erase answers",
        """
        DELETE FROM nps_answers WHERE customer_id = %(c)s
           OR customer_id IN (SELECT merged_customer_id FROM customer_aliases WHERE surviving_customer_id = %(c)s)
        """,
        {"c": customer_id},
    )


async def advance_watermark(unit: Unit, source_service: str, occurred_at: datetime) -> None:
    await execute_on_driver(
        unit,
        "advance watermark",
        """
        INSERT INTO source_watermarks AS w (source_service, newest_event_at) VALUES (%(s)s, %(at)s)
        ON CONFLICT (source_service) DO UPDATE SET newest_event_at = greatest(w.newest_event_at, excluded.newest_event_at)
        """,
        {"s": source_service, "at": occurred_at},
    )
