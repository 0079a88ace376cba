"""Follow-up tasks: listed by branch, assignee, status and role (overdue ones for the branch manager),
completed with an outcome, handed to someone else. Advisors and technicians see and close their own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pitlane_events.reminder import FollowUpOutcome
from pitlane_events.types import StaffRole
from pitlane_events.workorder import ProcessStage
from pitlane_platform.auth import Principal, Role, require_branch_access
from pitlane_platform.db import fetch_on_driver
from pitlane_platform.errors import ForbiddenError, NotFoundError
from pitlane_reminder.entrypoints.http.common import Context, FrontDesk, TaskHolder, actor_of, branch_filter

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

Id = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
# Who sees and closes only the tasks given to them.
OWN_TASKS_ONLY = frozenset({Role.ADVISOR, Role.TECHNICIAN})


class Task(BaseModel):
    task_id: str
    kind: str
    branch_id: str
    advisor_id: str
    customer_id: str
    vehicle_id: str | None
    due_at: datetime
    overdue: bool
    status: Literal["open", "done"]
    outcome: str | None
    auto_closed_reason: str | None
    note: str | None
    work_order_id: str | None
    survey_id: str | None
    reminder_id: str | None
    add_on_id: str | None
    stage: ProcessStage | None = Field(description="for stage_overdue: the late stage of work_order_id")
    responsible_role: StaffRole | None = Field(description="for stage_overdue: the role that answers for it")
    created_at: datetime
    completed_at: datetime | None


class TaskList(BaseModel):
    tasks: list[Task]


class Completion(BaseModel):
    outcome: FollowUpOutcome
    note: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class Assignment(BaseModel):
    advisor_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$")]


@router.get("")
async def list_tasks(
    context: Context,
    principal: TaskHolder,
    branch_id: Id | None = None,
    advisor_id: Id | None = None,
    status: Literal["open", "done"] | None = None,
    overdue: bool | None = None,
    responsible_role: StaffRole | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TaskList:
    """Soonest due first. Advisors and technicians see their own tasks; managers and owners their
    branches'."""
    if principal.role in OWN_TASKS_ONLY:
        advisor_id = principal.user_id
    now = context.service.clock.now()
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "list tasks",
            """
            SELECT *, (status = 'open' AND due_at < %(now)s) AS overdue FROM tasks
            WHERE (%(branch)s::text IS NULL OR branch_id = %(branch)s)
              AND (%(branches)s::text[] IS NULL OR branch_id = ANY(%(branches)s))
              AND (%(advisor)s::text IS NULL OR advisor_id = %(advisor)s)
              AND (%(status)s::text IS NULL OR status = %(status)s)
              AND (%(overdue)s::boolean IS NULL OR (status = 'open' AND due_at < %(now)s) = %(overdue)s)
              AND (%(role)s::text IS NULL OR responsible_role = %(role)s)
            ORDER BY due_at, task_id LIMIT %(limit)s
            """,
            {
                "now": now,
                "branch": branch_id,
                "branches": branch_filter(principal),
                "advisor": advisor_id,
                "status": status,
                "overdue": overdue,
                "role": responsible_role.value if responsible_role else None,
                "limit": limit,
            },
            as_dicts=True,
        )
    return TaskList(tasks=[Task.model_validate(row) for row in rows])


async def _visible(context: Context, principal: Principal, task_id: str) -> None:
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "task",
            "SELECT branch_id, advisor_id FROM tasks WHERE task_id = %(t)s",
            {"t": task_id},
            as_dicts=True,
        )
    if not rows:
        raise NotFoundError(f"no task {task_id}")
    require_branch_access(principal, rows[0]["branch_id"])
    if principal.role in OWN_TASKS_ONLY and rows[0]["advisor_id"] != principal.user_id:
        raise ForbiddenError(f"task {task_id} is someone else's")


@router.post("/{task_id}/completion")
async def complete_task(task_id: str, body: Completion, context: Context, principal: TaskHolder) -> Task:
    await _visible(context, principal, task_id)
    async with context.service.driver.transaction() as unit:
        done = await context.service.tasks.complete(
            unit, task_id, body.outcome, body.note, by=actor_of(principal)
        )
    return Task.model_validate({**done, "overdue": False})


@router.post("/{task_id}/assignment")
async def assign_task(task_id: str, body: Assignment, context: Context, principal: FrontDesk) -> Task:
    """Hand the task to another advisor (managers and owners; an advisor hands on only their own)."""
    await _visible(context, principal, task_id)
    now = context.service.clock.now()
    async with context.service.driver.transaction() as unit:
        task = await context.service.tasks.assign(unit, task_id, body.advisor_id, by=actor_of(principal))
    return Task.model_validate({**task, "overdue": task["due_at"] < now})
