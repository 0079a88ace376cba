"""Advisors' follow-up tasks against real servers on an injected clock: an insurance renewal on its day and
closed by a booking, a detractor's call within 24 hours for the branch's manager, a declined add-on two weeks
on; lists by branch, advisor and status, overdue ones for the manager; two replicas firing 10,000 due
reminders each once."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from reminder_harness import BRANCH, Harness, running, shanghai

from pitlane_events.customer_profile import InsuranceCoverage, VehicleInsuranceUpdated
from pitlane_events.notification import NpsAnswered
from pitlane_events.types import LineCategory, StaffRole, TimeSlot
from pitlane_events.workorder import (
    AddOnDeclined,
    AppointmentBooked,
    BookingChannel,
    DecidedBy,
    DecisionMethod,
    StaffMemberAdded,
)
from pitlane_platform.clock import FixedClock
from platform_flow import wait_until


async def open_tasks(harness: Harness, **filters: str) -> list[dict]:
    answer = await harness.get("/v1/tasks", params={"status": "open", **filters})
    assert answer.status_code == 200, answer.text
    return answer.json()["tasks"]


async def test_insurance_expiring_15_march_makes_a_task_on_13_february_and_a_booking_closes_it(
    harness: Harness,
) -> None:
    harness.clock.set(shanghai(2026, 12, 1, 9))
    await harness.vehicle("v1", "c1")
    await harness.visit("wo-1", "v1", "c1", km=40_000, completed_at=shanghai(2026, 11, 30, 16))
    policy = VehicleInsuranceUpdated(
        vehicle_id="v1",
        coverage=InsuranceCoverage.COMMERCIAL,
        insurer="平安保险",
        expires_on=date(2027, 3, 15),
    )
    await harness.emit_and_wait("customer-profile", policy, "v1")
    [renewal] = [r for r in await harness.reminders("v1") if r["kind"] == "insurance_renewal"]
    assert renewal["due_on"] == date(2027, 2, 13)

    await harness.at(shanghai(2027, 2, 12, 23, 59))
    assert await open_tasks(harness) == []
    await harness.at(shanghai(2027, 2, 13, 10))
    [task] = await open_tasks(harness)
    assert (task["kind"], task["advisor_id"], task["branch_id"], task["vehicle_id"]) == (
        "reminder",
        "amy",
        BRANCH,
        "v1",
    )
    assert task["reminder_id"] == renewal["reminder_id"] and "2027-03-15" in task["note"]
    [due] = await harness.due(renewal["reminder_id"])
    assert due.data.kind == "insurance_renewal"  # and the customer's message

    booked = AppointmentBooked(
        appointment_id="ap-1",
        channel=BookingChannel.PHONE,
        customer_id="c1",
        vehicle_id="v1",
        plate="沪A12345",
        slot=TimeSlot(start=shanghai(2027, 2, 20, 10), end=shanghai(2027, 2, 20, 11)),
        service_requested="续保咨询",
    )
    await harness.emit_and_wait("workorder", booked, "ap-1", branch_id=BRANCH)
    assert await open_tasks(harness) == []
    [closed] = (await harness.get("/v1/tasks", params={"status": "done"})).json()["tasks"]
    assert (closed["outcome"], closed["auto_closed_reason"]) == ("booked", "customer_booked")
    [completed] = await harness.published("reminder.FollowUpTaskCompleted")
    assert completed.data.auto_closed_reason == "customer_booked" and completed.data.outcome == "booked"


async def test_an_nps_answer_of_3_makes_a_recovery_task_due_within_24_hours_for_the_branch_manager(
    harness: Harness,
) -> None:
    manager = StaffMemberAdded(staff_id="max", display_name="陈经理", role=StaffRole.MANAGER)
    await harness.emit_and_wait("workorder", manager, f"staff-{BRANCH}", branch_id=BRANCH)
    for survey_id, score in (("s-happy", 9), ("s-unhappy", 3)):
        answered = NpsAnswered(
            survey_id=survey_id,
            work_order_id=f"wo-{survey_id}",
            customer_id="c1",
            advisor_id="amy",
            technician_ids=("tom",),
            branch_id=BRANCH,
            score=score,
            comment="等了两个小时" if score < 7 else None,
        )
        envelope = await harness.emit_and_wait("notification", answered, survey_id, branch_id=BRANCH)
    [task] = await open_tasks(harness)  # the promoter's answer makes none
    assert (task["kind"], task["advisor_id"], task["survey_id"]) == ("nps_detractor", "max", "s-unhappy")
    assert datetime.fromisoformat(task["due_at"]) == envelope.occurred_at + timedelta(hours=24)
    assert task["note"] == "NPS 3"  # the customer's words stay with notification (and go with its erasure)
    harness.advance(hours=25)
    overdue = (await harness.get("/v1/tasks", params={"overdue": "true"}, role="manager", sub="max")).json()[
        "tasks"
    ]
    assert [t["task_id"] for t in overdue] == [task["task_id"]]
    assert (await harness.get("/v1/tasks", role="advisor", sub="amy")).json()[
        "tasks"
    ] == []  # not amy's to call

    done = await harness.post(
        f"/v1/tasks/{task['task_id']}/completion",
        {"outcome": "resolved", "note": "已致歉并赠送保养券"},
        role="manager",
        sub="max",
    )
    assert done.status_code == 200 and done.json()["status"] == "done"
    again = await harness.post(
        f"/v1/tasks/{task['task_id']}/completion", {"outcome": "resolved"}, role="manager", sub="max"
    )
    assert again.status_code == 409
    [created] = await harness.published("reminder.FollowUpTaskCreated")
    assert created.data.kind == "nps_detractor" and created.data.survey_id == "s-unhappy"


async def test_a_declined_add_on_becomes_a_task_and_a_message_14_days_later(harness: Harness) -> None:
    await harness.vehicle("v1", "c1")
    await harness.visit("wo-1", "v1", "c1", km=40_000, completed_at=shanghai(2026, 1, 1, 16))
    declined = AddOnDeclined(
        work_order_id="wo-1",
        add_on_id="ao-1",
        item="更换前刹车片",
        category=LineCategory.PARTS,
        price_fen=48000,
        estimate_revision_seen=2,
        decided_by=DecidedBy.CUSTOMER,
        method=DecisionMethod.SIGNED_LINK,
        decided_at=shanghai(2026, 1, 1, 14),
    )
    await harness.emit_and_wait("workorder", declined, "wo-1", branch_id=BRANCH)
    await harness.at(shanghai(2026, 1, 15, 9, 59))
    assert await open_tasks(harness) == []
    await harness.at(shanghai(2026, 1, 15, 10))
    [task] = await open_tasks(harness)
    assert (task["kind"], task["add_on_id"], task["advisor_id"]) == ("declined_add_on", "ao-1", "amy")
    [due] = [e for e in await harness.due() if e.data.kind == "declined_work"]
    assert due.data.due_on == date(2026, 1, 15)


async def test_two_scheduler_replicas_over_10000_due_reminders_fire_each_exactly_once(
    database_url: str, nats_url: str
) -> None:
    clock = FixedClock(shanghai(2026, 6, 1, 9))
    count = 10_000
    async with running(database_url, nats_url, clock=clock, timer_concurrency=8) as first:
        # 10,000 cars, each with a reminder whose rung is due today at 10:00, set up as the schedule leaves them.
        await first.rows(
            """
            WITH made AS (
                INSERT INTO vehicles (vehicle_id, customer_id, plate, last_branch_id)
                SELECT 'v' || n, 'c' || n, NULL, 'b1' FROM generate_series(1, %(count)s) AS n
                RETURNING vehicle_id, customer_id
            ), reminded AS (
                INSERT INTO reminders (reminder_id, vehicle_id, customer_id, kind, subject, cycle, branch_id, due_on,
                                       due_by, basis, ladder, status, version, created_at)
                SELECT 'r-' || vehicle_id, vehicle_id, customer_id, 'maintenance', '', 'service:2025-12-01', 'b1',
                       DATE '2026-06-01', 'time', '6 months after the service on 2025-12-01', '0', 'scheduled', 1,
                       now()
                FROM made RETURNING reminder_id, vehicle_id
            ), stepped AS (
                INSERT INTO reminder_steps (reminder_id, cycle, offset_days, vehicle_id, due_on)
                SELECT reminder_id, 'service:2025-12-01', 0, vehicle_id, DATE '2026-06-01' FROM reminded
                RETURNING vehicle_id
            )
            INSERT INTO timers (kind, key, due_at, payload)
            SELECT 'reminder.day', vehicle_id || ':2026-06-01', %(at)s,
                   jsonb_build_object('vehicle_id', vehicle_id, 'day', '2026-06-01')
            FROM stepped RETURNING 1
            """,
            count=count,
            at=shanghai(2026, 6, 1, 10),
        )
        async with running(database_url, nats_url, clock=clock, timer_concurrency=8) as second:
            clock.set(shanghai(2026, 6, 1, 10))

            async def all_fired() -> bool:
                rows = await first.rows("SELECT count(*) AS n FROM reminder_steps WHERE sent_at IS NOT NULL")
                return rows[0]["n"] == count

            await wait_until(all_fired, timeout=600)
            fired = [h.runtime.timer_runner.status.fired for h in (first, second)]  # type: ignore[union-attr]
        queued = await first.rows(
            "SELECT count(*) AS events, count(DISTINCT aggregate_id) AS reminders FROM outbox WHERE subject LIKE 'reminder.%%.ReminderDue.%%'"
        )
    assert queued == [{"events": count, "reminders": count}]  # each reminder due exactly once
    assert sum(fired) == count and all(fired), fired  # both replicas took part


async def test_a_car_not_back_within_the_win_back_days_makes_a_call_for_its_advisor(harness: Harness) -> None:
    assert (await harness.put("/v1/rules/win_back", {"enabled": True, "after_days": 60})).status_code == 200
    await harness.vehicle("v-gone", "c1")
    await harness.vehicle("v-back", "c2", plate="沪B22222")
    await harness.visit("wo-1", "v-gone", "c1", km=40_000, completed_at=shanghai(2026, 1, 1, 16))
    await harness.visit("wo-2", "v-back", "c2", km=20_000, completed_at=shanghai(2026, 1, 1, 17))
    harness.clock.set(shanghai(2026, 2, 10, 12))
    await harness.visit(
        "wo-3", "v-back", "c2", km=21_000, completed_at=shanghai(2026, 2, 10, 11)
    )  # it came back
    await harness.at(shanghai(2026, 3, 2, 9, 59))
    assert await open_tasks(harness) == []
    await harness.at(shanghai(2026, 3, 2, 10))
    [task] = await open_tasks(harness)
    assert (task["vehicle_id"], task["advisor_id"], task["kind"]) == ("v-gone", "amy", "reminder")
    assert task["note"] == "win-back: no visit since 2026-01-01"
