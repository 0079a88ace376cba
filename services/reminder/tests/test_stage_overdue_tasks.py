"""A stage of a work order past its limit (workorder's WorkOrderStageOverdue) becomes one task for the stage's
responsible role at the branch, however often the event arrives, against real PostgreSQL and NATS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from reminder_harness import BRANCH, START, Harness

from pitlane_events import Envelope, new_event_id
from pitlane_events.types import StaffRole, TimeSlot
from pitlane_events.workorder import (
    AppointmentBooked,
    BookingChannel,
    ProcessRef,
    ProcessScope,
    ProcessStage,
    StaffMemberAdded,
    WorkOrderStageOverdue,
)

START_OF_STAGE = START


def overdue(
    stage: ProcessStage,
    role: StaffRole,
    staff_id: str | None,
    *,
    work_order_id: str = "wo-1",
    limit: int = 15,
) -> WorkOrderStageOverdue:
    return WorkOrderStageOverdue(
        work_order_id=work_order_id,
        stage=stage,
        occurrence=1,
        entered_at=START_OF_STAGE,
        due_at=START_OF_STAGE + timedelta(minutes=limit),
        time_limit_minutes=limit,
        responsible_role=role,
        responsible_staff_id=staff_id,
        customer_id="c1",
        vehicle_id="v1",
        process=ProcessRef(scope=ProcessScope.CHAIN, version=2),
    )


async def open_tasks(harness: Harness, **params: Any) -> list[dict[str, Any]]:
    answer = await harness.get("/v1/tasks", params={"status": "open", **params})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["tasks"])


async def test_a_late_dispatch_delivered_twice_and_published_again_makes_one_task_for_the_orders_advisor(
    harness: Harness,
) -> None:
    late = harness.envelope(
        "workorder", overdue(ProcessStage.DISPATCH, StaffRole.ADVISOR, "amy"), "passage-1", branch_id=BRANCH
    )
    # The same message delivered twice (past the stream's dedupe), and the event published again under an id of
    # its own (a producer that reported the passage twice): the inbox, then the task's source, hold.
    await harness.publish(late, msg_id="first delivery")
    await harness.publish(late, msg_id="second delivery")
    again = Envelope.model_validate({**late.model_dump(), "event_id": new_event_id()})
    await harness.consumed("workorder", await harness.publish(again))

    [task] = await open_tasks(harness)
    assert (task["kind"], task["advisor_id"], task["branch_id"]) == ("stage_overdue", "amy", BRANCH)
    assert (task["stage"], task["responsible_role"], task["work_order_id"]) == ("dispatch", "advisor", "wo-1")
    assert task["due_at"].replace("Z", "+00:00") == late.occurred_at.isoformat()
    assert task["note"] == "dispatch #1 over its 15 min limit"
    [created] = await harness.published("reminder.FollowUpTaskCreated")
    assert created.schema_version == 2
    assert (created.data.kind, created.data.stage, created.data.responsible_role) == (
        "stage_overdue",
        ProcessStage.DISPATCH,
        StaffRole.ADVISOR,
    )
    # The advisor's own list has it; the role filter finds it.
    mine = (await harness.get("/v1/tasks", role="advisor", sub="amy")).json()["tasks"]
    assert [t["task_id"] for t in mine] == [task["task_id"]]
    assert await open_tasks(harness, responsible_role="technician") == []


async def test_a_managers_stage_goes_to_the_branch_manager_and_a_technicians_to_the_technician(
    harness: Harness,
) -> None:
    manager = StaffMemberAdded(staff_id="max", display_name="陈经理", role=StaffRole.MANAGER)
    await harness.emit_and_wait("workorder", manager, f"staff-{BRANCH}", branch_id=BRANCH)
    await harness.emit_and_wait(
        "workorder",
        overdue(ProcessStage.QUALITY_CHECK, StaffRole.MANAGER, None, limit=20),
        "passage-qc",
        branch_id=BRANCH,
    )
    await harness.emit_and_wait(
        "workorder",
        overdue(ProcessStage.REPAIR, StaffRole.TECHNICIAN, "tom", limit=120),
        "passage-repair",
        branch_id=BRANCH,
    )

    tasks = {task["stage"]: task for task in await open_tasks(harness)}
    assert (tasks["quality_check"]["advisor_id"], tasks["quality_check"]["responsible_role"]) == (
        "max",
        "manager",
    )
    assert (tasks["repair"]["advisor_id"], tasks["repair"]["responsible_role"]) == ("tom", "technician")
    # The technician sees and closes their own.
    theirs = (await harness.get("/v1/tasks", role="technician", sub="tom")).json()["tasks"]
    assert [t["stage"] for t in theirs] == ["repair"]
    done = await harness.post(
        f"/v1/tasks/{tasks['repair']['task_id']}/completion",
        {"outcome": "resolved"},
        role="technician",
        sub="tom",
    )
    assert done.status_code == 200, done.text
    not_theirs = await harness.post(
        f"/v1/tasks/{tasks['quality_check']['task_id']}/completion",
        {"outcome": "resolved"},
        role="technician",
        sub="tom",
    )
    assert not_theirs.status_code == 403

    # A booking by the customer closes calls to them, not the chase of a late QC.
    booked = AppointmentBooked(
        appointment_id="ap-1",
        channel=BookingChannel.PHONE,
        customer_id="c1",
        vehicle_id="v1",
        plate="沪A12345",
        slot=TimeSlot(
            start=START_OF_STAGE + timedelta(days=3), end=START_OF_STAGE + timedelta(days=3, hours=1)
        ),
        service_requested="复查",
    )
    await harness.emit_and_wait("workorder", booked, "ap-1", branch_id=BRANCH)
    assert [task["stage"] for task in await open_tasks(harness)] == ["quality_check"]
