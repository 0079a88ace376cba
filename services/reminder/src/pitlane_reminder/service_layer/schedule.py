"""A vehicle's reminders: worked out from the facts the events brought (the last service, the mileage
estimate, the policies, the registration) and the branch's rules, and their ladders on the platform's
durable timers.

`evaluate` is the one way a vehicle's reminders change: every event that changes a fact calls it, and so
does a rule change. It keeps one reminder per vehicle, kind and subject: a new due point in the same cycle
moves the rungs not sent yet; a new cycle (a service, a renewed policy) starts the ladder again; both are
ReminderRescheduled, never a second reminder. The rungs fire on one timer per vehicle and day, so what is
due together for one vehicle goes out together (one ReminderDue per reminder, one transaction, one instant:
notification sends them as one message).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_events import Actor
from pitlane_events.reminder import (
    FollowUpKind,
    ReminderCancellation,
    ReminderCancelled,
    ReminderDue,
    ReminderKind,
    ReminderRescheduled,
    ReminderScheduled,
)
from pitlane_platform.clock import Clock
from pitlane_platform.db import Unit
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, schedule
from pitlane_reminder.adapters import queries
from pitlane_reminder.domain.ladder import Ladder, steps_to_schedule
from pitlane_reminder.domain.mileage import MileageEstimate, Reading, estimate
from pitlane_reminder.domain.rules import (
    Due,
    declined_work_due,
    inspection_due,
    maintenance_due,
    renewal_due,
    win_back_due,
)
from pitlane_reminder.service_layer.rules import EffectiveRules, RuleKind, effective_rules
from pitlane_reminder.service_layer.tasks import UNASSIGNED, NewTask, Tasks

DAY_TIMER = "reminder.day"
WIN_BACK_TIMER = "reminder.win-back"
ACTOR = Actor.service("reminder")
# Reminder ids are derived from (vehicle, kind, subject): the same reminder whoever works it out.
REMINDER_NAMESPACE = uuid.UUID("7c1f2a9e-5d54-4b8e-9b3c-1e2d3c4b5a69")
MESSAGING_CHANNELS = ("sms", "wechat", "email")
# The kinds `evaluate` works out from a vehicle's facts (declined work comes from its own event).
EVALUATED_KINDS = frozenset({"maintenance", "insurance_renewal", "annual_inspection"})
# A reminder cancelled for these reasons comes back when its rule wants it again (consent given back, the
# rule turned on again); one closed as done, or cancelled otherwise, stays so for its cycle.
REOPENABLE = frozenset({"consent_withdrawn", "superseded"})

_EVENT_KIND = {
    RuleKind.INSURANCE_RENEWAL: ReminderKind.INSURANCE_RENEWAL,
    RuleKind.ANNUAL_INSPECTION: ReminderKind.ANNUAL_INSPECTION,
    RuleKind.DECLINED_WORK: ReminderKind.DECLINED_WORK,
}


def reminder_id_for(vehicle_id: str, kind: RuleKind, subject: str) -> str:
    return str(uuid.uuid5(REMINDER_NAMESPACE, f"{vehicle_id}|{kind.value}|{subject}"))


@dataclass(frozen=True)
class Wanted:
    """What a rule says one reminder should be now."""

    kind: RuleKind
    subject: str
    cycle: str
    due: Due
    ladder: Ladder


@dataclass
class Schedule:
    clock: Clock
    chain_id: str
    timezone: ZoneInfo
    tasks: Tasks
    send_at: time = time(10, 0)  # the hour of the day rungs fire, on the chain's clock
    # No rung to one customer closer than this to the last one sent (the contact-frequency limit).
    min_gap: timedelta = timedelta(days=3)

    def register(self, timers: TimerHandlers) -> None:
        timers.on(DAY_TIMER)(self.fire_day)
        timers.on(WIN_BACK_TIMER)(self.win_back)

    def today(self) -> date:
        return self.clock.now().astimezone(self.timezone).date()

    # ---- facts → reminders -----------------------------------------------------------------------------

    async def mileage_estimate(self, unit: Unit, vehicle_id: str) -> MileageEstimate:
        """The estimate from every reading (readings it sets aside are marked, with the reason)."""
        rows = await queries.readings(unit, vehicle_id)
        readings = {
            row["id"]: Reading(at=row["recorded_at"], km=row["km"], correction=row["correction"])
            for row in rows
        }
        result = estimate(list(readings.values()))
        reasons = {reading: aside.reason for aside in result.set_aside for reading in [aside.reading]}
        await queries.set_aside(unit, {row_id: reasons.get(reading) for row_id, reading in readings.items()})
        last = result.last
        await queries.upsert_vehicle(
            unit,
            vehicle_id,
            last_reading_at=last.at if last else None,
            last_reading_km=last.km if last else None,
            km_per_day=result.km_per_day,
            estimate_basis=result.explain(self.timezone),
        )
        return result

    async def evaluate(self, unit: Unit, vehicle_id: str, *, reason: str) -> None:
        """Work the vehicle's reminders out again from its facts and its branch's rules."""
        vehicle = await queries.vehicle(unit, vehicle_id, lock=True)
        if vehicle is None or vehicle["customer_id"] is None:
            return
        if vehicle["erased_at"] is not None or vehicle["sold_at"] is not None:
            cancellation = (
                ReminderCancellation.CUSTOMER_ERASED
                if vehicle["erased_at"] is not None
                else ReminderCancellation.VEHICLE_SOLD
            )
            await self.cancel_all(unit, vehicle_id, cancellation)
            return
        rules = await effective_rules(unit, vehicle["last_branch_id"])
        wanted_now = await self._wanted(unit, vehicle, rules)
        for wanted in wanted_now:
            await self._keep(unit, vehicle, wanted, reason=reason)
        if rules.win_back.enabled and vehicle["last_visit_at"] is not None:
            await self._win_back_after(unit, vehicle, rules.win_back.after_days)
        # A rule turned off, a policy gone: its reminders are withdrawn (declined work is not evaluated here).
        keys = {(wanted.kind.value, wanted.subject) for wanted in wanted_now}
        for existing in await queries.open_reminders(unit, vehicle_id):
            if existing["kind"] in EVALUATED_KINDS and (existing["kind"], existing["subject"]) not in keys:
                await self._cancel(unit, existing, ReminderCancellation.SUPERSEDED)

    async def _wanted(self, unit: Unit, vehicle: dict[str, Any], rules: EffectiveRules) -> list[Wanted]:
        wanted = []
        if rules.maintenance.enabled and vehicle["last_service_on"] is not None:
            settings = rules.maintenance
            due = maintenance_due(
                settings.rule(),
                last_service_on=vehicle["last_service_on"],
                last_service_km=vehicle["last_service_km"],
                estimate=await self.mileage_estimate(unit, vehicle["vehicle_id"]),
                anchor_on=vehicle["first_service_on"] or vehicle["purchase_date"],
                tz=self.timezone,
            )
            cycle = f"service:{vehicle['last_service_on'].isoformat()}"
            wanted.append(Wanted(RuleKind.MAINTENANCE, "", cycle, due, settings.steps()))
        if rules.insurance_renewal.enabled:
            settings_r = rules.insurance_renewal
            for policy in await queries.policies(unit, vehicle["vehicle_id"]):
                expires: date = policy["expires_on"]
                due_on = renewal_due(expires, lead_days=settings_r.lead_days)
                basis = f"{policy['coverage']} insurance with {policy['insurer']} expires on {expires.isoformat()}"
                due = Due(due_on=due_on, due_mileage_km=None, reason="time", basis=basis)
                wanted.append(
                    Wanted(
                        RuleKind.INSURANCE_RENEWAL,
                        policy["coverage"],
                        f"expiry:{expires}",
                        due,
                        settings_r.steps(),
                    )
                )
        if rules.annual_inspection.enabled and vehicle["registration_date"] is not None:
            settings_i = rules.annual_inspection
            deadline = inspection_due(vehicle["registration_date"], today=self.today())
            basis = f"the annual inspection of a car registered on {vehicle['registration_date']} is due by {deadline}"
            due = Due(
                due_on=deadline - timedelta(days=settings_i.lead_days),
                due_mileage_km=None,
                reason="time",
                basis=basis,
            )
            wanted.append(
                Wanted(RuleKind.ANNUAL_INSPECTION, "", f"deadline:{deadline}", due, settings_i.steps())
            )
        return wanted

    async def _keep(self, unit: Unit, vehicle: dict[str, Any], wanted: Wanted, *, reason: str) -> None:
        existing = await queries.reminder(unit, vehicle["vehicle_id"], wanted.kind.value, wanted.subject)
        now = self.clock.now()
        context = self.context(vehicle["last_branch_id"], now)
        if existing is None:
            reminder_id = reminder_id_for(vehicle["vehicle_id"], wanted.kind, wanted.subject)
            await queries.insert_reminder(
                unit,
                {
                    "reminder_id": reminder_id,
                    "vehicle_id": vehicle["vehicle_id"],
                    "customer_id": vehicle["customer_id"],
                    "kind": wanted.kind.value,
                    "subject": wanted.subject,
                    "cycle": wanted.cycle,
                    "branch_id": vehicle["last_branch_id"],
                    "due_on": wanted.due.due_on,
                    "due_mileage_km": wanted.due.due_mileage_km,
                    "due_by": wanted.due.reason,
                    "basis": wanted.due.basis,
                    "ladder": _ladder_text(wanted.ladder),
                    "created_at": now,
                },
            )
            event = ReminderScheduled(
                reminder_id=reminder_id,
                rule_id=f"{wanted.kind.value}",
                kind=self._event_kind(wanted),
                vehicle_id=vehicle["vehicle_id"],
                customer_id=vehicle["customer_id"],
                due_on=wanted.due.due_on,
                due_mileage_km=wanted.due.due_mileage_km,
            )
            await outbox.enqueue(
                unit, [context.envelope(event, aggregate_id=reminder_id, aggregate_version=1)]
            )
            await self._ladder(unit, reminder_id, vehicle["vehicle_id"], wanted, sent=set())
            return
        if (
            existing["status"] != "scheduled"
            and existing["cycle"] == wanted.cycle
            and existing["status_reason"] not in REOPENABLE
        ):
            return  # closed ("done elsewhere") or cancelled for this cycle: a new fact does not reopen it
        ladder = _ladder_text(wanted.ladder)
        unchanged = (
            existing["status"] == "scheduled"
            and existing["ladder"] == ladder
            and existing["cycle"] == wanted.cycle
            and existing["due_on"] == wanted.due.due_on
            and existing["due_mileage_km"] == wanted.due.due_mileage_km
            and existing["due_by"] == wanted.due.reason
            and existing["customer_id"] == vehicle["customer_id"]
        )
        if unchanged:
            return
        version = await queries.update_reminder(
            unit,
            existing["reminder_id"],
            cycle=wanted.cycle,
            due_on=wanted.due.due_on,
            due_mileage_km=wanted.due.due_mileage_km,
            due_by=wanted.due.reason,
            basis=wanted.due.basis,
            ladder=ladder,
            customer_id=vehicle["customer_id"],
            branch_id=vehicle["last_branch_id"],
            status="scheduled",
            status_reason=None,
            snoozed_until=None,
        )
        rescheduled = ReminderRescheduled(
            reminder_id=existing["reminder_id"],
            due_on=wanted.due.due_on,
            due_mileage_km=wanted.due.due_mileage_km,
            reason=reason
            if existing["cycle"] == wanted.cycle
            else f"{reason}; a new cycle: {wanted.due.basis}",
        )
        await outbox.enqueue(
            unit,
            [context.envelope(rescheduled, aggregate_id=existing["reminder_id"], aggregate_version=version)],
        )
        sent = await queries.sent_offsets(unit, existing["reminder_id"], wanted.cycle)
        await self._ladder(unit, existing["reminder_id"], vehicle["vehicle_id"], wanted, sent=sent)

    async def _ladder(
        self, unit: Unit, reminder_id: str, vehicle_id: str, wanted: Wanted, *, sent: set[int]
    ) -> None:
        """The cycle's rungs not sent yet, each on its vehicle's timer of that day."""
        steps = steps_to_schedule(wanted.ladder, wanted.due.due_on, sent=sent, today=self.today())
        await queries.replace_pending_steps(unit, reminder_id, vehicle_id, wanted.cycle, steps)
        for _, day in steps:
            await self.schedule_day(unit, vehicle_id, day)

    async def schedule_day(self, unit: Unit, vehicle_id: str, day: date) -> None:
        due_at = datetime.combine(day, self.send_at, tzinfo=self.timezone).astimezone(UTC)
        if day <= self.today():
            # Today's timer may have fired already: a rung added today gets a timer of its own, at the hour
            # rungs go out (or now, if that hour has passed).
            due_at = max(self.clock.now(), datetime.combine(self.today(), self.send_at, tzinfo=self.timezone))
            key = f"{vehicle_id}:{day.isoformat()}:{due_at.isoformat()}"
        else:
            key = f"{vehicle_id}:{day.isoformat()}"
        await schedule(unit, DAY_TIMER, key, due_at, {"vehicle_id": vehicle_id, "day": day.isoformat()})

    async def _win_back_after(self, unit: Unit, vehicle: dict[str, Any], after_days: int) -> None:
        """A call for the advisor if the car does not come back within `after_days` of its last visit (one
        timer per visit; a later visit makes the earlier ones find nothing to do)."""
        visit_on = vehicle["last_visit_at"].astimezone(self.timezone).date()
        due = win_back_due(visit_on, after_days=after_days)
        due_at = datetime.combine(due, self.send_at, tzinfo=self.timezone).astimezone(UTC)
        payload = {"vehicle_id": vehicle["vehicle_id"], "visit_on": visit_on.isoformat()}
        await schedule(
            unit, WIN_BACK_TIMER, f"{vehicle['vehicle_id']}:{visit_on.isoformat()}", due_at, payload
        )

    async def win_back(self, ctx: TimerContext) -> None:
        vehicle = await queries.vehicle(ctx.unit, ctx.timer.payload["vehicle_id"], lock=True)
        visit_on = date.fromisoformat(ctx.timer.payload["visit_on"])
        if vehicle is None or vehicle["erased_at"] is not None or vehicle["sold_at"] is not None:
            return
        if vehicle["last_visit_at"].astimezone(self.timezone).date() != visit_on:
            return  # it came back since
        if not (await effective_rules(ctx.unit, vehicle["last_branch_id"])).win_back.enabled:
            return
        await self.tasks.create(
            ctx.unit,
            NewTask(
                kind=FollowUpKind.REMINDER,
                source=f"win-back:{vehicle['vehicle_id']}:{visit_on.isoformat()}",
                branch_id=vehicle["last_branch_id"] or "",
                advisor_id=vehicle["last_advisor_id"] or UNASSIGNED,
                customer_id=vehicle["customer_id"],
                vehicle_id=vehicle["vehicle_id"],
                due_at=ctx.now + timedelta(days=7),
                note=f"win-back: no visit since {visit_on.isoformat()}",
            ),
        )

    async def declined(
        self,
        unit: Unit,
        *,
        vehicle_id: str,
        add_on_id: str,
        item: str,
        declined_at: datetime,
        work_order_id: str,
        branch_id: str,
        advisor_id: str,
        customer_id: str,
    ) -> None:
        """A declined add-on, followed up after the rule's days: a message to the customer and a call for
        the advisor who proposed it."""
        settings = (await effective_rules(unit, branch_id)).declined_work
        if not settings.enabled:
            return
        declined_on = declined_at.astimezone(self.timezone).date()
        due_on = declined_work_due(declined_on, after_days=settings.after_days)
        if settings.message:
            await queries.upsert_vehicle(unit, vehicle_id, customer_id=customer_id)
            vehicle = await queries.vehicle(unit, vehicle_id, lock=True)
            assert vehicle is not None
            basis = f"{item} was declined on {declined_on.isoformat()}"
            wanted = Wanted(
                RuleKind.DECLINED_WORK,
                add_on_id,
                f"declined:{add_on_id}",
                Due(due_on=due_on, due_mileage_km=None, reason="time", basis=basis),
                Ladder((0,)),
            )
            await self._keep(unit, vehicle, wanted, reason="an add-on was declined")
        if settings.task:
            appears_at = datetime.combine(due_on, self.send_at, tzinfo=self.timezone).astimezone(UTC)
            task = NewTask(
                kind=FollowUpKind.DECLINED_ADD_ON,
                source=f"declined:{add_on_id}",
                branch_id=branch_id,
                advisor_id=advisor_id,
                customer_id=customer_id,
                vehicle_id=vehicle_id,
                due_at=appears_at + timedelta(days=2),
                work_order_id=work_order_id,
                add_on_id=add_on_id,
                note=f"declined on {declined_on.isoformat()}: {item}",
            )
            await self.tasks.create_later(unit, task, appears_at)

    async def cancel_all(self, unit: Unit, vehicle_id: str, reason: ReminderCancellation) -> int:
        cancelled = await queries.open_reminders(unit, vehicle_id)
        for existing in cancelled:
            await self._cancel(unit, existing, reason)
        return len(cancelled)

    async def _cancel(self, unit: Unit, existing: dict[str, Any], reason: ReminderCancellation) -> None:
        now = self.clock.now()
        version = await queries.update_reminder(
            unit, existing["reminder_id"], status="cancelled", status_reason=reason.value, closed_at=now
        )
        await queries.replace_pending_steps(
            unit, existing["reminder_id"], existing["vehicle_id"], existing["cycle"], []
        )
        event = ReminderCancelled(reminder_id=existing["reminder_id"], reason=reason)
        context = self.context(existing["branch_id"], now)
        await outbox.enqueue(
            unit, [context.envelope(event, aggregate_id=existing["reminder_id"], aggregate_version=version)]
        )

    # ---- the day's rungs --------------------------------------------------------------------------------

    async def fire_day(self, ctx: TimerContext) -> None:
        vehicle_id = ctx.timer.payload["vehicle_id"]
        day = date.fromisoformat(ctx.timer.payload["day"])
        # The vehicle first, as `evaluate` locks it: the two never wait on each other the other way round.
        vehicle = await queries.vehicle(ctx.unit, vehicle_id, lock=True)
        steps = await queries.due_steps(ctx.unit, vehicle_id, day)
        if not steps:
            return
        suppressed = await self._suppressed(ctx.unit, vehicle, ctx.now)
        if suppressed is not None:
            await queries.mark_steps(ctx.unit, steps, at=ctx.now, skip_reason=suppressed)
            return
        today = ctx.now.astimezone(self.timezone).date()
        snoozed = [
            step for step in steps if step["snoozed_until"] is not None and step["snoozed_until"] > today
        ]
        if snoozed:
            await queries.mark_steps(ctx.unit, snoozed, at=ctx.now, skip_reason="snoozed")
        assert vehicle is not None
        rules = await effective_rules(ctx.unit, vehicle["last_branch_id"])
        off = [step for step in steps if step not in snoozed and not getattr(rules, step["kind"]).enabled]
        if off:
            await queries.mark_steps(ctx.unit, off, at=ctx.now, skip_reason="rule_disabled")
        sending = _latest_rung_per_reminder(
            [step for step in steps if step not in snoozed and step not in off]
        )
        stale = [step for step in steps if step not in snoozed and step not in off and step not in sending]
        if stale:
            await queries.mark_steps(ctx.unit, stale, at=ctx.now, skip_reason="caught up by a later rung")
        if not sending:
            return
        await queries.mark_steps(ctx.unit, sending, at=ctx.now, skip_reason=None)
        for step in sending:
            context = self.context(step["branch_id"], ctx.now)
            version = await queries.update_reminder(ctx.unit, step["reminder_id"])
            settings = getattr(rules, step["kind"])
            due = ReminderDue(
                channel=settings.channel,
                template=settings.template,
                reminder_id=step["reminder_id"],
                kind=_EVENT_KIND.get(RuleKind(step["kind"])) or _maintenance_kind(step),
                vehicle_id=vehicle_id,
                customer_id=step["customer_id"],
                preferred_branch_id=step["branch_id"],
                due_on=step["reminder_due_on"],
                due_mileage_km=step["due_mileage_km"],
            )
            await outbox.enqueue(
                ctx.unit, [context.envelope(due, aggregate_id=step["reminder_id"], aggregate_version=version)]
            )
            if step["kind"] == RuleKind.INSURANCE_RENEWAL.value:
                await self.tasks.renewal_task(ctx.unit, step, vehicle, ctx.now)

    async def _suppressed(self, unit: Unit, vehicle: dict[str, Any] | None, now: datetime) -> str | None:
        """Why nothing may go to this vehicle's owner now, or None."""
        if vehicle is None or vehicle["erased_at"] is not None:
            return "customer_erased"
        if vehicle["sold_at"] is not None:
            return "vehicle_sold"
        if vehicle["open_bookings"]:
            return "open_booking"
        if vehicle["open_work_orders"]:
            return "open_work_order"
        if await queries.service_channels_withdrawn(unit, vehicle["customer_id"], MESSAGING_CHANNELS):
            return "no_consent"
        last = await queries.last_sent_to(unit, vehicle["customer_id"])
        if last is not None and now - last < self.min_gap:
            return "frequency_limit"
        return None

    def _event_kind(self, wanted: Wanted) -> ReminderKind:
        if wanted.kind is RuleKind.MAINTENANCE:
            return (
                ReminderKind.SERVICE_DUE_BY_MILEAGE
                if wanted.due.reason == "mileage"
                else ReminderKind.SERVICE_DUE_BY_DATE
            )
        return _EVENT_KIND[wanted.kind]

    def context(self, branch_id: str | None, at: datetime) -> CommandContext:
        return CommandContext(actor=ACTOR, chain_id=self.chain_id, occurred_at=at, branch_id=branch_id)


def _ladder_text(ladder: Ladder) -> str:
    return ",".join(str(offset) for offset in ladder.offsets_days)


def _maintenance_kind(step: dict[str, Any]) -> ReminderKind:
    return (
        ReminderKind.SERVICE_DUE_BY_MILEAGE
        if step["due_by"] == "mileage"
        else ReminderKind.SERVICE_DUE_BY_DATE
    )


def _latest_rung_per_reminder(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A vehicle found behind (a restart, an outage) sends each reminder's latest due rung, not all of them."""
    latest: dict[str, dict[str, Any]] = {}
    for step in steps:
        current = latest.get(step["reminder_id"])
        if current is None or step["offset_days"] > current["offset_days"]:
            latest[step["reminder_id"]] = step
    return list(latest.values())
