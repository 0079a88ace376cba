"""Follow-up tasks for advisors: a call to make, by when, and how it ended; and for whoever holds a role at a
branch, a late stage of a work order to chase. One task per source (a survey, a declined add-on, a
reminder's cycle, a stage's passage): a redelivered event or a timer firing again makes no second task.
A booking by the customer closes their open tasks about contacting them (outcome `booked`, auto-closed)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_events import Actor
from pitlane_events.reminder import (
    FollowUpKind,
    FollowUpOutcome,
    FollowUpTaskAssigned,
    FollowUpTaskCompleted,
    FollowUpTaskCreated,
)
from pitlane_events.types import StaffRole
from pitlane_events.workorder import ProcessStage
from pitlane_platform.clock import Clock
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_platform.errors import ConflictError, NotFoundError
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, schedule

TASK_TIMER = "reminder.task"
ACTOR = Actor.service("reminder")
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class NewTask:
    kind: FollowUpKind
    source: str
    branch_id: str
    advisor_id: str
    customer_id: str
    due_at: datetime
    vehicle_id: str | None = None
    work_order_id: str | None = None
    survey_id: str | None = None
    reminder_id: str | None = None
    add_on_id: str | None = None
    note: str | None = None
    stage: ProcessStage | None = None
    responsible_role: StaffRole | None = None


@dataclass
class Tasks:
    clock: Clock
    chain_id: str
    timezone: ZoneInfo

    def register(self, timers: TimerHandlers) -> None:
        timers.on(TASK_TIMER)(self._create_when_due)

    async def create(
        self, unit: Unit, task: NewTask, *, actor: Actor = ACTOR, correlation_id: uuid.UUID | None = None
    ) -> str | None:
        """The task, once per source; None when its source made one before. `correlation_id`: its cause's
        (an event's, a timer's), which its FollowUpTaskCreated carries."""
        task_id = str(uuid.uuid4())
        row = await execute_on_driver(
            unit,
            "create task",
            """
            INSERT INTO tasks (task_id, kind, branch_id, advisor_id, customer_id, vehicle_id, source, due_at, status,
                               note, work_order_id, survey_id, reminder_id, add_on_id, stage, responsible_role,
                               version, created_at)
            VALUES (%(task_id)s, %(kind)s, %(branch_id)s, %(advisor_id)s, %(customer_id)s, %(vehicle_id)s,
                    %(source)s, %(due_at)s, 'open', %(note)s, %(work_order_id)s, %(survey_id)s, %(reminder_id)s,
                    %(add_on_id)s, %(stage)s, %(responsible_role)s, 1, %(now)s)
            ON CONFLICT (source) DO NOTHING
            RETURNING task_id
            """,
            {
                **task.__dict__,
                "kind": task.kind.value,
                "stage": task.stage.value if task.stage else None,
                "responsible_role": task.responsible_role.value if task.responsible_role else None,
                "task_id": task_id,
                "now": self.clock.now(),
            },
        )
        if row is None:
            return None
        event = FollowUpTaskCreated(
            task_id=task_id,
            kind=task.kind,
            advisor_id=task.advisor_id,
            customer_id=task.customer_id,
            vehicle_id=task.vehicle_id,
            due_on=task.due_at.astimezone(self.timezone).date(),
            work_order_id=task.work_order_id,
            add_on_id=task.add_on_id,
            survey_id=task.survey_id,
            reminder_id=task.reminder_id,
            note=task.note,
            stage=task.stage,
            responsible_role=task.responsible_role,
        )
        await outbox.enqueue(
            unit,
            [
                self._context(task.branch_id, actor, correlation_id).envelope(
                    event, aggregate_id=task_id, aggregate_version=1
                )
            ],
        )
        return task_id

    async def create_later(
        self, unit: Unit, task: NewTask, appears_at: datetime, *, correlation_id: uuid.UUID | None = None
    ) -> None:
        """The task appears at `appears_at` (a declined add-on's follow-up, 14 days later): a durable timer,
        which keeps the correlation of its cause."""
        payload = {**task.__dict__, "kind": task.kind.value, "due_at": task.due_at.isoformat()}
        await schedule(unit, TASK_TIMER, task.source, appears_at, payload, correlation_id=correlation_id)

    async def _create_when_due(self, ctx: TimerContext) -> None:
        payload = dict(ctx.timer.payload)
        payload["kind"] = FollowUpKind(payload["kind"])
        payload["due_at"] = datetime.fromisoformat(payload["due_at"])
        await self.create(ctx.unit, NewTask(**payload), correlation_id=ctx.timer.correlation_id)

    async def renewal_task(
        self,
        unit: Unit,
        step: dict[str, Any],
        vehicle: dict[str, Any],
        now: datetime,
        correlation_id: uuid.UUID | None,
    ) -> None:
        """Insurance renewal: the advisor who last served the car calls the customer, within the week."""
        await self.create(
            unit,
            NewTask(
                kind=FollowUpKind.REMINDER,
                source=f"renewal:{step['reminder_id']}:{step['cycle']}",
                branch_id=vehicle["last_branch_id"] or "",
                advisor_id=vehicle["last_advisor_id"] or UNASSIGNED,
                customer_id=step["customer_id"],
                vehicle_id=vehicle["vehicle_id"],
                due_at=now + timedelta(days=7),
                reminder_id=step["reminder_id"],
                note=step["basis"],
            ),
            correlation_id=correlation_id,
        )

    async def complete(
        self,
        unit: Unit,
        task_id: str,
        outcome: FollowUpOutcome,
        note: str | None,
        *,
        by: Actor,
        auto_closed: str | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        task = await self._locked(unit, task_id)
        if task["status"] != "open":
            raise ConflictError(f"task {task_id} is done already ({task['outcome']})")
        rows = await fetch_on_driver(
            unit,
            "complete task",
            """
            UPDATE tasks SET status = 'done', outcome = %(o)s, note = coalesce(%(n)s, note), auto_closed_reason = %(a)s,
                completed_at = %(at)s, version = version + 1
            WHERE task_id = %(t)s RETURNING *
            """,
            {"t": task_id, "o": outcome.value, "n": note, "a": auto_closed, "at": self.clock.now()},
            as_dicts=True,
        )
        done = rows[0]
        event = FollowUpTaskCompleted(
            task_id=task_id,
            advisor_id=by.id if by.kind == "user" else done["advisor_id"],
            outcome=outcome,
            note=note or auto_closed,
            auto_closed_reason=auto_closed,
        )
        envelope = self._context(done["branch_id"], by, correlation_id).envelope(
            event, aggregate_id=task_id, aggregate_version=done["version"]
        )
        await outbox.enqueue(unit, [envelope])
        return done

    async def assign(self, unit: Unit, task_id: str, advisor_id: str, *, by: Actor) -> dict[str, Any]:
        task = await self._locked(unit, task_id)
        if task["status"] != "open":
            raise ConflictError(f"task {task_id} is done already")
        rows = await fetch_on_driver(
            unit,
            "assign task",
            "UPDATE tasks SET advisor_id = %(a)s, version = version + 1 WHERE task_id = %(t)s RETURNING *",
            {"t": task_id, "a": advisor_id},
            as_dicts=True,
        )
        event = FollowUpTaskAssigned(
            task_id=task_id, advisor_id=advisor_id, previous_advisor_id=task["advisor_id"]
        )
        envelope = self._context(task["branch_id"], by).envelope(
            event, aggregate_id=task_id, aggregate_version=rows[0]["version"]
        )
        await outbox.enqueue(unit, [envelope])
        return rows[0]

    async def close_for_booking(
        self, unit: Unit, customer_id: str, vehicle_id: str | None, *, correlation_id: uuid.UUID | None
    ) -> int:
        """The customer booked: their open tasks (about this vehicle, or about no vehicle) are done; a late stage
        of a work order is no call to them, and stays."""
        rows = await fetch_on_driver(
            unit,
            "open tasks of customer",
            """
            SELECT task_id FROM tasks
            WHERE customer_id = %(c)s AND status = 'open' AND (vehicle_id IS NULL OR %(v)s::text IS NULL OR vehicle_id = %(v)s)
              AND kind <> 'stage_overdue'
            ORDER BY task_id
            """,
            {"c": customer_id, "v": vehicle_id},
        )
        for (task_id,) in rows:
            await self.complete(
                unit,
                task_id,
                FollowUpOutcome.BOOKED,
                None,
                by=ACTOR,
                auto_closed="customer_booked",
                correlation_id=correlation_id,
            )
        return len(rows)

    async def _locked(self, unit: Unit, task_id: str) -> dict[str, Any]:
        rows = await fetch_on_driver(
            unit,
            "task",
            "SELECT * FROM tasks WHERE task_id = %(t)s FOR UPDATE",
            {"t": task_id},
            as_dicts=True,
        )
        if not rows:
            raise NotFoundError(f"no task {task_id}")
        return rows[0]

    def _context(
        self, branch_id: str | None, actor: Actor, correlation_id: uuid.UUID | None = None
    ) -> CommandContext:
        return CommandContext(
            actor=actor,
            chain_id=self.chain_id,
            occurred_at=self.clock.now(),
            branch_id=branch_id or None,
            correlation_id=correlation_id,
        )
