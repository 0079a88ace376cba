"""Stage deadlines on the platform's durable timers (ADR 15): a stage the order's definition gives a time limit
gets a timer at its deadline, scheduled in the transaction of the command that began the stage and cancelled
in the one that ended it. A timer that fires finds the stage still open and publishes WorkOrderStageOverdue,
once: on the passage's own stream at version 1, so neither a second runner, nor a timer fired again, nor
a handler retried after a lost commit can publish it twice (the event store's unique version). The order's
own stream is left alone: a deadline passing changes nothing an advisor's next command depends on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pitlane_events import Actor
from pitlane_events.types import StaffRole
from pitlane_events.workorder import WorkOrderStageOverdue
from pitlane_platform.db import Unit
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, cancel, schedule
from pitlane_workorder.adapters import process_definitions
from pitlane_workorder.domain.process import StagePassage
from pitlane_workorder.domain.workorder import WorkOrder
from pitlane_workorder.service_layer.unit_of_work import UnitOfWork

DEADLINE = "workorder.stage-deadline"
ACTOR = Actor.service("workorder")


async def follow(
    unit: Unit, order: WorkOrder, before: Sequence[StagePassage], branch_id: str, now: datetime
) -> None:
    """After a command: a deadline for each timed stage it began, none left for a stage it ended (or for every
    stage, once the order is completed or voided)."""
    after = order.open_passages
    for passage in after:
        if passage not in before and (due_at := order.process.due_at(passage)) is not None:
            await schedule(
                unit,
                DEADLINE,
                passage.id(order.id),
                due_at,
                {
                    "branch_id": branch_id,
                    "work_order_id": order.id,
                    "stage": passage.stage.value,
                    "occurrence": passage.occurrence,
                },
            )
    for passage in before:
        if passage not in after and order.process.due_at(passage) is not None:
            await cancel(unit, DEADLINE, passage.id(order.id), now=now)


@dataclass
class StageDeadlines:
    chain_id: str

    def register(self, timers: TimerHandlers) -> None:
        timers.on(DEADLINE)(self.on_deadline)

    async def on_deadline(self, ctx: TimerContext) -> None:
        payload = ctx.timer.payload
        branch_id = payload["branch_id"]
        order = await UnitOfWork(ctx.unit).load(WorkOrder, payload["work_order_id"])
        order.definition, _ = await process_definitions.version(ctx.unit, order.facts.process, branch_id)
        passage = next(
            (
                open_passage
                for open_passage in order.open_passages
                if open_passage.stage.value == payload["stage"]
                and open_passage.occurrence == payload["occurrence"]
            ),
            None,
        )
        if passage is None:
            return  # ended (or the order voided) by a command that committed as the timer was taken
        stream_id = passage.id(order.id)
        if await eventstore.stream_version(ctx.unit, stream_id) > 0:
            return  # reported already
        rule = order.process.rule(passage.stage)
        due_at = order.process.due_at(passage)
        assert rule.time_limit is not None and due_at is not None  # only timed stages get a deadline
        overdue = WorkOrderStageOverdue(
            work_order_id=order.id,
            stage=passage.stage,
            occurrence=passage.occurrence,
            add_on_id=passage.add_on_id,
            entered_at=passage.entered_at,
            due_at=due_at,
            time_limit_minutes=int(rule.time_limit.total_seconds() // 60),
            responsible_role=rule.responsible_role,
            responsible_staff_id=_responsible_staff(order, rule.responsible_role),
            customer_id=order.facts.customer_id,
            vehicle_id=order.facts.vehicle_id,
            process=order.facts.process,
        )
        context = CommandContext(
            actor=ACTOR,
            chain_id=self.chain_id,
            occurred_at=ctx.now,
            branch_id=branch_id,
            correlation_id=order.correlation_id,  # a step of the order's visit
        )
        await eventstore.append(ctx.unit, stream_id, 0, [overdue], context)


def _responsible_staff(order: WorkOrder, role: StaffRole) -> str | None:
    """Who holds the stage's role on this order: its advisor, or the technician dispatched last; a manager is
    the branch's, not the order's."""
    if role is StaffRole.ADVISOR:
        return order.facts.advisor_id
    if role is StaffRole.TECHNICIAN and order.technician_ids:
        return order.technician_ids[-1]
    return None
