"""Read models of the service's own aggregates, kept in the command's transaction: the board per branch
(orders by state, time in each state, the stages each order is in with their deadlines) and the order's detail
with its full history from the event store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_workorder.domain.workorder import WorkOrder, WorkOrderState

# Fixed SQL on the driver, like every statement of this service (adapters/queries.py). A command that names
# no customer keeps the name.
_PROJECT_WORK_ORDER = """
    INSERT INTO work_orders (
        work_order_id, branch_id, state, plate, customer_id, customer_name, advisor_id, technician_ids,
        appointment_id, opened_at, state_entered_at, seconds_in_states, pending_add_ons, total_fen, version,
        stages
    ) VALUES (
        %(work_order_id)s, %(branch_id)s, %(state)s, %(plate)s, %(customer_id)s, %(customer_name)s,
        %(advisor_id)s, %(technician_ids)s, %(appointment_id)s, %(opened_at)s, %(state_entered_at)s,
        %(seconds_in_states)s, %(pending_add_ons)s, %(total_fen)s, %(version)s, %(stages)s
    )
    ON CONFLICT (work_order_id) DO UPDATE SET
        branch_id = excluded.branch_id, state = excluded.state, plate = excluded.plate,
        customer_id = excluded.customer_id,
        customer_name = coalesce(excluded.customer_name, work_orders.customer_name),
        advisor_id = excluded.advisor_id, technician_ids = excluded.technician_ids,
        appointment_id = excluded.appointment_id, opened_at = excluded.opened_at,
        state_entered_at = excluded.state_entered_at, seconds_in_states = excluded.seconds_in_states,
        pending_add_ons = excluded.pending_add_ons, total_fen = excluded.total_fen, version = excluded.version,
        stages = excluded.stages
"""


async def project_work_order(
    unit: Unit, order: WorkOrder, *, branch_id: str, customer_name: str | None = None
) -> None:
    assert order.facts.opened_at is not None
    row: dict[str, Any] = {
        "branch_id": branch_id,
        "state": order.state.value,
        "plate": order.facts.plate,
        "customer_id": order.facts.customer_id,
        "advisor_id": order.facts.advisor_id,
        "technician_ids": order.technician_ids,
        "appointment_id": order.facts.appointment_id,
        "opened_at": order.facts.opened_at,
        "state_entered_at": order.visits[-1].entered_at,
        # Only finished visits; the board adds the time of the current one up to the moment it is read.
        "seconds_in_states": {
            state.value: spent.total_seconds()
            for state, spent in order.time_in_states(order.visits[-1].entered_at).items()
            if spent
        },
        "pending_add_ons": len(order.pending_add_ons),
        "total_fen": order.settlement.event.total_fen if order.settlement else None,
        "version": order.version,
    }
    stages = [
        {
            "stage": passage.stage.value,
            "occurrence": passage.occurrence,
            "add_on_id": passage.add_on_id,
            "entered_at": passage.entered_at.isoformat(),
            "due_at": due.isoformat() if (due := order.process.due_at(passage)) else None,
            "responsible_role": order.process.rule(passage.stage).responsible_role.value,
        }
        for passage in order.open_passages
    ]
    await execute_on_driver(
        unit,
        "project work order",
        _PROJECT_WORK_ORDER,
        {
            **row,
            "work_order_id": order.id,
            "technician_ids": Jsonb(row["technician_ids"]),
            "seconds_in_states": Jsonb(row["seconds_in_states"]),
            "stages": Jsonb(stages),
            "customer_name": customer_name,
        },
    )


_BRANCH_OF_WORK_ORDER = "SELECT branch_id FROM work_orders WHERE work_order_id = %(work_order_id)s"
_BOARD = """
    SELECT * FROM work_orders WHERE branch_id = %(branch_id)s AND state <> ALL(%(finished)s)
    ORDER BY state_entered_at
"""
_HISTORY = "SELECT envelope FROM events WHERE stream_id = %(stream_id)s ORDER BY version"
FINISHED = (WorkOrderState.COMPLETED.value, WorkOrderState.VOIDED.value)


async def branch_of_work_order(unit: Unit, work_order_id: str) -> str | None:
    row = await execute_on_driver(
        unit, "branch of work order", _BRANCH_OF_WORK_ORDER, {"work_order_id": work_order_id}
    )
    return row[0] if row else None


async def board(unit: Unit, branch_id: str, now: datetime) -> dict[str, Any]:
    """Open orders by state (finished and voided ones leave the board), oldest first in each column."""
    rows = await fetch_on_driver(
        unit, "board", _BOARD, {"branch_id": branch_id, "finished": list(FINISHED)}, as_dicts=True
    )
    columns: dict[str, list[dict[str, Any]]] = {
        state.value: [] for state in WorkOrderState if state.value not in FINISHED
    }
    for row in rows:
        in_state = (now - row["state_entered_at"]).total_seconds()
        seconds = dict(row["seconds_in_states"])
        seconds[row["state"]] = seconds.get(row["state"], 0.0) + in_state
        columns[row["state"]].append(
            {
                "work_order_id": row["work_order_id"],
                "plate": row["plate"],
                "customer_id": row["customer_id"],
                "customer_name": row["customer_name"],
                "advisor_id": row["advisor_id"],
                "technician_ids": row["technician_ids"],
                "pending_add_ons": row["pending_add_ons"],
                "opened_at": row["opened_at"],
                "in_state_since": row["state_entered_at"],
                "seconds_in_state": in_state,
                "seconds_in_states": seconds,
                "stages": [_stage_on_the_board(stage, now) for stage in row["stages"]],
                "version": row["version"],
            }
        )
    return {"branch_id": branch_id, "as_of": now, "columns": columns}


def _stage_on_the_board(stage: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A stage the order is in: how long so far, and its deadline, if the order's definition sets one."""
    entered_at = datetime.fromisoformat(stage["entered_at"])
    due_at = datetime.fromisoformat(stage["due_at"]) if stage["due_at"] else None
    return {
        **stage,
        "entered_at": entered_at,
        "due_at": due_at,
        "seconds_in_stage": (now - entered_at).total_seconds(),
        "overdue": due_at is not None and now >= due_at,
    }


async def history(unit: Unit, aggregate_id: str) -> list[dict[str, Any]]:
    """Every event of the aggregate, in order, as stored: the audit trail."""
    rows = await fetch_on_driver(unit, "history", _HISTORY, {"stream_id": aggregate_id})
    return [
        {
            "version": envelope["aggregate_version"],
            "event_type": envelope["event_type"],
            "occurred_at": envelope["occurred_at"],
            "actor": envelope["actor"],
            "data": envelope["data"],
        }
        for (envelope,) in rows
    ]
