"""What dispatch suggestions read, as fixed SQL on the driver: each technician's skills, the orders each is
working on, and their time on shift today."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_workorder.domain.workorder import WORKING

_TECHNICIANS = """
    SELECT s.staff_id, coalesce(k.skills, '[]'::jsonb) AS skills FROM staff s
    LEFT JOIN technician_skills k ON k.branch_id = s.branch_id AND k.staff_id = s.staff_id
    WHERE s.branch_id = %(branch_id)s AND s.role = 'technician'
    ORDER BY s.staff_id
"""
_OPEN_ORDERS = """
    SELECT technician.id, count(*) FROM work_orders,
        jsonb_array_elements_text(work_orders.technician_ids) AS technician(id)
    WHERE branch_id = %(branch_id)s AND state = ANY(%(working)s)
    GROUP BY technician.id
"""
_SET_SKILLS = """
    INSERT INTO technician_skills (branch_id, staff_id, skills, updated_at)
    VALUES (%(branch_id)s, %(staff_id)s, %(skills)s, %(at)s)
    ON CONFLICT (branch_id, staff_id) DO UPDATE SET skills = excluded.skills, updated_at = excluded.updated_at
"""
_SKILLS = "SELECT skills FROM technician_skills WHERE branch_id = %(branch_id)s AND staff_id = %(staff_id)s"


async def technicians(unit: Unit, branch_id: str) -> list[dict[str, Any]]:
    """The branch's technicians with their skills (none recorded: none)."""
    return await fetch_on_driver(unit, "technicians", _TECHNICIANS, {"branch_id": branch_id}, as_dicts=True)


async def open_orders(unit: Unit, branch_id: str) -> dict[str, int]:
    """Per technician, the branch's orders they are working on (dispatched, in progress, awaiting approval)."""
    rows = await fetch_on_driver(
        unit, "open orders", _OPEN_ORDERS, {"branch_id": branch_id, "working": [s.value for s in WORKING]}
    )
    return {technician_id: count for technician_id, count in rows}


async def set_skills(unit: Unit, branch_id: str, staff_id: str, skills: list[str], at: datetime) -> None:
    await execute_on_driver(
        unit,
        "set skills",
        _SET_SKILLS,
        {"branch_id": branch_id, "staff_id": staff_id, "skills": Jsonb(skills), "at": at},
    )


async def skills(unit: Unit, branch_id: str, staff_id: str) -> list[str]:
    row = await execute_on_driver(unit, "skills", _SKILLS, {"branch_id": branch_id, "staff_id": staff_id})
    return list(row[0]) if row else []
