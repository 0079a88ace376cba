"""The statements that write facts, on the driver. Every write commutes with the others of its row: a
column is set by the events that know it (`coalesce`), an event id is added to the row's set once, so a row
ends the same whatever order its events arrive in and however often one is applied.

Table and column names come from the callers' constants, never from input. Unqualified table names let a
rebuild write the same statements into fresh tables under another `search_path`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pitlane_platform.db import Unit, execute_on_driver


async def merge_row(
    unit: Unit,
    table: str,
    key: tuple[str, str],
    columns: Mapping[str, Any],
    *,
    event_id: str,
    authoritative: bool,
    earliest: tuple[str, ...] = (),
) -> None:
    """Insert or update the row `key` (column, value) of a table several events write (`event_ids`). An
    authoritative event's values replace what the row holds (a completion's advisor over the opening's); the
    others only fill columns still empty; an `earliest` column keeps the earliest time given. A column given
    as None is left as it is."""
    key_column, key_value = key
    winner, loser = ("excluded", "t") if authoritative else ("t", "excluded")
    assignments = [
        f"{name} = least(t.{name}, excluded.{name})"
        if name in earliest
        else f"{name} = coalesce({winner}.{name}, {loser}.{name})"
        for name in columns
    ]
    assignments.append(
        "event_ids = CASE WHEN %(event_id)s::text = ANY(t.event_ids) THEN t.event_ids "
        "ELSE array_append(t.event_ids, %(event_id)s::text) END"
    )
    names = [key_column, *columns]
    sql = (
        f"INSERT INTO {table} AS t ({', '.join(names)}, event_ids) "
        f"VALUES ({', '.join(f'%({name})s' for name in names)}, ARRAY[%(event_id)s::text]) "
        f"ON CONFLICT ({key_column}) DO UPDATE SET {', '.join(assignments)}"
    )
    await execute_on_driver(
        unit, f"merge {table}", sql, {**columns, key_column: key_value, "event_id": event_id}
    )


async def insert_once(unit: Unit, table: str, columns: Mapping[str, Any]) -> None:
    """A row only one event writes (it names the event in `event_id`): a second delivery changes nothing."""
    names = list(columns)
    sql = (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(f'%({name})s' for name in names)}) "
        "ON CONFLICT DO NOTHING"
    )
    await execute_on_driver(unit, f"insert {table}", sql, columns)


@dataclass(frozen=True)
class Line:
    item_code: str
    name: str
    category: str
    quantity: Decimal
    revenue_fen: int
    cost_fen: int | None
    add_on_id: str | None


async def insert_lines(unit: Unit, work_order_id: str, lines: Sequence[Line], *, event_id: str) -> None:
    """A completed order's lines, numbered in the order the bill lists them."""
    await execute_on_driver(
        unit,
        "insert visit_lines",
        """
        INSERT INTO visit_lines
            (work_order_id, line_no, item_code, name, category, quantity, revenue_fen, cost_fen, add_on_id, event_id)
        SELECT %(w)s, n, code, name, category, quantity, revenue, cost, add_on, %(e)s
        FROM unnest(%(codes)s::text[], %(names)s::text[], %(categories)s::text[], %(quantities)s::numeric[],
                    %(revenues)s::bigint[], %(costs)s::bigint[], %(add_ons)s::text[])
             WITH ORDINALITY AS line(code, name, category, quantity, revenue, cost, add_on, n)
        ON CONFLICT DO NOTHING
        """,
        {
            "w": work_order_id,
            "e": event_id,
            "codes": [line.item_code for line in lines],
            "names": [line.name for line in lines],
            "categories": [line.category for line in lines],
            "quantities": [line.quantity for line in lines],
            "revenues": [line.revenue_fen for line in lines],
            "costs": [line.cost_fen for line in lines],
            "add_ons": [line.add_on_id for line in lines],
        },
    )


async def insert_audience_members(
    unit: Unit, campaign_id: str, customer_ids: Sequence[str], *, in_control_group: bool, event_id: str
) -> None:
    """One batch of a campaign's audience, each customer once (the draw is deterministic: a copy of the
    batch says the same)."""
    await execute_on_driver(
        unit,
        "insert campaign_audience_members",
        """
        INSERT INTO campaign_audience_members (campaign_id, customer_id, in_control_group, event_id)
        SELECT %(c)s, customer_id, %(control)s, %(e)s FROM unnest(%(ids)s::text[]) AS customer_id
        ON CONFLICT DO NOTHING
        """,
        {"c": campaign_id, "control": in_control_group, "e": event_id, "ids": list(customer_ids)},
    )


async def merge_customers(unit: Unit, surviving: str, merged: Sequence[str], *, event_id: str) -> None:
    """Record that `merged` are now `surviving`, resolving chains whatever order the merges arrive in: the
    survivor is itself resolved first (it may have been merged away already), and aliases that pointed at a
    merged id move on to the survivor."""
    row = await execute_on_driver(
        unit,
        "resolve survivor",
        "SELECT coalesce((SELECT surviving_customer_id FROM customer_aliases WHERE merged_customer_id = %(s)s), %(s)s)",
        {"s": surviving},
    )
    survivor = row[0] if row else surviving
    others = [customer for customer in merged if customer != survivor]
    await execute_on_driver(
        unit,
        "move aliases",
        "UPDATE customer_aliases SET surviving_customer_id = %(s)s WHERE surviving_customer_id = ANY(%(m)s::text[])",
        {"s": survivor, "m": others},
    )
    await execute_on_driver(
        unit,
        "add aliases",
        """
        INSERT INTO customer_aliases (merged_customer_id, surviving_customer_id, event_id)
        SELECT merged, %(s)s, %(e)s FROM unnest(%(m)s::text[]) AS merged
        ON CONFLICT (merged_customer_id) DO UPDATE SET surviving_customer_id = excluded.surviving_customer_id
        """,
        {"s": survivor, "m": others, "e": event_id},
    )


async def is_erased(unit: Unit, customer_id: str) -> bool:
    """Whether the customer, or the customer they were merged into, was erased."""
    row = await execute_on_driver(
        unit,
        "erased customer",
        """
        SELECT EXISTS (
            SELECT 1 FROM erased_customers e
            WHERE e.customer_id = %(c)s OR e.customer_id = (
                SELECT surviving_customer_id FROM customer_aliases WHERE merged_customer_id = %(c)s)
        )
        """,
        {"c": customer_id},
    )
    return bool(row and row[0])


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
