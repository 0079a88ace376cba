"""A visit's correlation id (issue 17, docs/observability.md) in reminder: the maintenance reminder a
completion reschedules carries the completion's correlation, and so does the ReminderDue its day timer fires
months later; a fact of another correlation moves it in that one."""

from __future__ import annotations

from datetime import date

from reminder_harness import Harness, shanghai

from pitlane_events import new_event_id


async def test_the_reminder_a_visit_moves_and_the_rung_fired_months_later_keep_the_visits_correlation(
    harness: Harness,
) -> None:
    changed = await harness.put("/v1/rules/maintenance", {"ladder": [0]})
    assert changed.status_code == 200, changed.text
    await harness.vehicle("v1", "c1")
    await harness.reading("v1", 34_000, shanghai(2025, 9, 3, 16))
    first_visit, second_visit = new_event_id(), new_event_id()
    for work_order_id, km, completed_at, visit in (
        ("wo-1", 40_000, shanghai(2026, 1, 1, 16), first_visit),
        ("wo-2", 43_000, shanghai(2026, 3, 1, 16), second_visit),
    ):
        harness.clock.set(completed_at)
        envelopes = harness.visit_events(work_order_id, "v1", "c1", km=km, completed_at=completed_at)
        await harness.consumed(
            "workorder",
            await harness.publish(*(e.model_copy(update={"correlation_id": visit}) for e in envelopes)),
        )
    moved = await harness.maintenance("v1")
    due_on = moved["due_on"]
    await harness.at(shanghai(due_on.year, due_on.month, due_on.day, 10))

    [scheduled] = await harness.published("reminder.ReminderScheduled")
    [rescheduled] = await harness.published("reminder.ReminderRescheduled")
    [due] = await harness.due()
    assert moved["due_on"] > date(2026, 5, 1)
    assert (scheduled.correlation_id, rescheduled.correlation_id) == (first_visit, second_visit)
    assert due.correlation_id == second_visit  # the visit that last laid the rung's timer
