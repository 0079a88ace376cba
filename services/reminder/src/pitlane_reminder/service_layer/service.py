"""The reminder service's use cases in one place: the schedule, the tasks, a rule change re-evaluating what
it affects, and the customer's answers from a reminder's link (done elsewhere, remind me later)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pitlane_events.reminder import ReminderCancellation, ReminderCancelled, ReminderRescheduled
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, Unit, fetch_on_driver
from pitlane_platform.errors import ConflictError, ForbiddenError, NotFoundError
from pitlane_platform.messaging import outbox
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, schedule
from pitlane_platform.security.links import REMINDER_ANSWER, claims_of
from pitlane_reminder.adapters import queries
from pitlane_reminder.adapters.queries import PendingSteps
from pitlane_reminder.service_layer.rules import RuleKind
from pitlane_reminder.service_layer.schedule import Schedule
from pitlane_reminder.service_layer.tasks import Tasks

REEVALUATE = "reminder.reevaluate"
REEVALUATE_CHUNK = 500  # vehicles per transaction: a few statements each (Schedule.evaluate_many)
SNOOZE = timedelta(days=14)


@dataclass
class Reminder:
    driver: DriverPool
    clock: Clock
    schedule: Schedule
    tasks: Tasks
    link_secret: str
    reevaluate_chunk: int = REEVALUATE_CHUNK

    def timer_handlers(self) -> TimerHandlers:
        timers = TimerHandlers()
        self.schedule.register(timers)
        self.tasks.register(timers)
        timers.on(REEVALUATE)(self._reevaluate_chunk)
        return timers

    # ---- a rule changed ---------------------------------------------------------------------------------

    async def rule_changed(self, unit: Unit, kind: RuleKind, branch_id: str | None, version: int) -> None:
        """Re-evaluate every vehicle the change reaches (the branch's, or all), in chunks on durable timers
        that start when the change commits."""
        change = f"{kind.value}:{branch_id or '*'}:{version}"
        await schedule(
            unit,
            REEVALUATE,
            change,
            self.clock.now(),
            {"branch_id": branch_id, "after": "", "change": change},
        )

    async def _reevaluate_chunk(self, ctx: TimerContext) -> None:
        payload = ctx.timer.payload
        rows = await fetch_on_driver(
            ctx.unit,
            "vehicles to re-evaluate",
            """
            SELECT vehicle_id FROM vehicles
            WHERE vehicle_id > %(after)s AND (%(branch)s::text IS NULL OR last_branch_id = %(branch)s)
            ORDER BY vehicle_id LIMIT %(n)s
            """,
            {"after": payload["after"], "branch": payload["branch_id"], "n": self.reevaluate_chunk},
        )
        await self.schedule.evaluate_many(
            ctx.unit, [vehicle_id for (vehicle_id,) in rows], reason="the chain's rules changed"
        )
        if len(rows) == self.reevaluate_chunk:
            last = rows[-1][0]
            await schedule(
                ctx.unit, REEVALUATE, f"{payload['change']}:{last}", ctx.now, {**payload, "after": last}
            )

    # ---- the customer's answers --------------------------------------------------------------------------

    def verify(self, token: str, now: datetime) -> str:
        """The reminder a link names, or a 403 for a forged, altered or expired link."""
        claims = claims_of(self.link_secret, token, REMINDER_ANSWER)
        if claims is None or not isinstance(claims.get("r"), str) or not isinstance(claims.get("exp"), int):
            raise ForbiddenError("this reminder link is not valid")
        if now >= datetime.fromtimestamp(claims["exp"], UTC):
            raise ForbiddenError("this reminder link has expired")
        return str(claims["r"])

    async def answered_reminder(self, unit: Unit, reminder_id: str) -> dict[str, Any]:
        reminder = await queries.reminder_by_id(unit, reminder_id, lock=True)
        if reminder is None:
            raise NotFoundError(f"no reminder {reminder_id}")
        return reminder

    async def done_elsewhere(self, unit: Unit, reminder_id: str, mileage_km: int | None) -> dict[str, Any]:
        """The work was done elsewhere: the cycle is closed. A service starts the next maintenance cycle from
        today (and the mileage the customer gave, when given)."""
        reminder = await self.answered_reminder(unit, reminder_id)
        if reminder["status"] != "scheduled":
            raise ConflictError("this reminder is closed already")
        now = self.clock.now()
        today = self.schedule.today()
        if reminder["kind"] == RuleKind.MAINTENANCE.value:
            if mileage_km is not None:
                await queries.add_reading(
                    unit,
                    reminder["vehicle_id"],
                    at=now,
                    km=mileage_km,
                    correction=False,
                    event_id=f"customer:{reminder_id}:{today.isoformat()}",
                )
            if mileage_km is None:
                # Not given: the odometer as projected today, so the next cycle counts from about now (the
                # old service's km would make it due at once); unknown without an estimate.
                estimate = await self.schedule.mileage_estimate(unit, reminder["vehicle_id"])
                mileage_km = estimate.projection.projected_km(now)
            await queries.set_last_service(unit, reminder["vehicle_id"], on=today, km=mileage_km)
            await self.schedule.evaluate(
                unit, reminder["vehicle_id"], reason="done elsewhere, as the customer said"
            )
        else:
            version = await queries.update_reminder(
                unit, reminder_id, status="closed", status_reason="done_elsewhere", closed_at=now
            )
            await queries.replace_pending_steps(
                unit, [PendingSteps(reminder_id, reminder["vehicle_id"], reminder["cycle"], [])]
            )
            event = ReminderCancelled(reminder_id=reminder_id, reason=ReminderCancellation.SERVICED)
            await outbox.enqueue(
                unit,
                [
                    self.schedule.context(reminder["branch_id"], now).envelope(
                        event, aggregate_id=reminder_id, aggregate_version=version
                    )
                ],
            )
        return await self.answered_reminder(unit, reminder_id)

    async def later(self, unit: Unit, reminder_id: str) -> date:
        """Remind me later: the rest of the cycle's ladder waits; one rung comes after the snooze."""
        reminder = await self.answered_reminder(unit, reminder_id)
        if reminder["status"] != "scheduled":
            raise ConflictError("this reminder is closed already")
        until = self.schedule.today() + SNOOZE
        version = await queries.update_reminder(unit, reminder_id, snoozed_until=until)
        # The rung after the snooze is named by its distance from the due date, past the rungs already used.
        used = await queries.used_offsets(unit, [reminder_id])
        offset = (until - reminder["due_on"]).days
        while (reminder_id, reminder["cycle"], offset) in used:
            offset += 1
        rung = (max(-365, min(offset, 365)), until)
        await queries.replace_pending_steps(
            unit, [PendingSteps(reminder_id, reminder["vehicle_id"], reminder["cycle"], [rung])]
        )
        await self.schedule.schedule_day(unit, reminder["vehicle_id"], until)
        event = ReminderRescheduled(
            reminder_id=reminder_id,
            due_on=reminder["due_on"],
            due_mileage_km=reminder["due_mileage_km"],
            reason=f"the customer asked to be reminded later, after {until.isoformat()}",
        )
        now = self.clock.now()
        await outbox.enqueue(
            unit,
            [
                self.schedule.context(reminder["branch_id"], now).envelope(
                    event, aggregate_id=reminder_id, aggregate_version=version
                )
            ],
        )
        return until
