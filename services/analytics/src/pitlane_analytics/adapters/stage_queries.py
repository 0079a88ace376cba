"""What the stage on-time rate reads: the timed stages visits passed, as fixed SQL on the driver."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pitlane_platform.db import Unit, fetch_on_driver

# Stages with a deadline, completed in the period, of visits (completed and not voided) in the scope; each
# with the definition version its order ran on (an order opened before this table's migration, whose version
# the facts lack until a rebuild, ran the built-in process: no definition existed before).
_TIMED_PASSAGES = """
    SELECT s.work_order_id, w.branch_id, s.stage, s.occurrence, s.add_on_id, s.entered_at, s.completed_at,
           s.due_at, coalesce(w.process_scope, 'built_in') AS process_scope,
           coalesce(w.process_version, 0) AS process_version, s.event_id
    FROM stage_passages s JOIN work_orders w ON w.work_order_id = s.work_order_id
    WHERE s.due_at IS NOT NULL AND s.completed_at >= %(start)s AND s.completed_at < %(end)s
      AND w.completed_at IS NOT NULL AND w.voided_at IS NULL
      AND (%(branch)s::text IS NULL OR w.branch_id = %(branch)s)
    ORDER BY s.completed_at, s.work_order_id, s.stage, s.occurrence
"""


async def timed_passages(
    unit: Unit, *, start: datetime, end: datetime, branch: str | None
) -> list[dict[str, Any]]:
    return await fetch_on_driver(
        unit, "timed passages", _TIMED_PASSAGES, {"start": start, "end": end, "branch": branch}, as_dicts=True
    )
