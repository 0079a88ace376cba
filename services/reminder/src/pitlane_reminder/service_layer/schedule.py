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
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
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
from pitlane_platform.scheduling.timers import NewTimer, TimerContext, TimerHandlers, schedule_many
from pitlane_reminder.adapters import queries
from pitlane_reminder.adapters.queries import PendingSteps
from pitlane_reminder.domain.ladder import Ladder, steps_to_schedule
from pitlane_reminder.domain.mileage import MileageEstimate, Projection, Reading, estimate
from pitlane_reminder.domain.rules import (
    Due,
    declined_work_due,
    inspection_due,
    maintenance_due,
    renewal_due,
    win_back_due,
)
from pitlane_reminder.service_layer.rules import EffectiveRules, RuleKind, effective_rules, effective_rules_at
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
class Changes:
    """What one evaluation changes, gathered to be written in a few statements (Schedule._write)."""

    now: datetime
    today: date  # on the chain's clock
    correlation_id: uuid.UUID | None  # the cause's (an event's): its events and timers keep it
    reminders: list[dict[str, Any]] = field(default_factory=list)  # whole rows, saved as they are
    events: list[ReminderScheduled | ReminderRescheduled | ReminderCancelled] = field(default_factory=list)
    steps: list[PendingSteps] = field(default_factory=list)
    timers: dict[str, list[NewTimer]] = field(default_factory=lambda: defaultdict(list))

    def save(
        self, row: dict[str, Any], event: ReminderScheduled | ReminderRescheduled | ReminderCancelled
    ) -> None:
        self.reminders.append(row)
        self.events.append(event)


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

    def _changes(self, correlation_id: uuid.UUID | None) -> Changes:
        now = self.clock.now()
        return Changes(now=now, today=now.astimezone(self.timezone).date(), correlation_id=correlation_id)

    # ---- facts → reminders -----------------------------------------------------------------------------

    async def mileage_estimate(self, unit: Unit, vehicle_id: str) -> MileageEstimate:
        """The estimate from every reading, kept on the vehicle's row (readings it sets aside are marked,
        with the reason)."""
        rows = await queries.readings(unit, vehicle_id)
        readings = {
            row["id"]: Reading(at=row["recorded_at"], km=row["km"], correction=row["correction"])
            for row in rows
        }
        result = estimate(list(readings.values()))
        reasons = {reading: aside.reason for aside in result.set_aside for reading in [aside.reading]}
        await queries.set_aside(unit, {row_id: reasons.get(reading) for row_id, reading in readings.items()})
        await queries.set_estimate(unit, vehicle_id, result.projection, basis=result.explain(self.timezone))
        return result

    async def evaluate(
        self, unit: Unit, vehicle_id: str, *, reason: str, correlation_id: uuid.UUID | None = None
    ) -> None:
        """A fact of the vehicle changed: its mileage estimate and its reminders are worked out again; what
        that changes carries `correlation_id`, the changing fact's."""
        if await queries.vehicle(unit, vehicle_id, lock=True) is None:
            return
        await self.mileage_estimate(unit, vehicle_id)
        await self.evaluate_many(unit, [vehicle_id], reason=reason, correlation_id=correlation_id)

    async def evaluate_many(
        self,
        unit: Unit,
        vehicle_ids: Sequence[str],
        *,
        reason: str,
        correlation_id: uuid.UUID | None = None,
    ) -> None:
        """Work these vehicles' reminders out again from their facts (the estimate as kept on their rows)
        and their branches' rules: a handful of statements whatever their number, so a rule change goes
        through a million vehicles in chunks."""
        vehicles = [
            row for row in await queries.vehicles_to_evaluate(unit, vehicle_ids) if row["customer_id"]
        ]
        ids = [vehicle["vehicle_id"] for vehicle in vehicles]
        rules = await effective_rules_at(unit, {vehicle["last_branch_id"] for vehicle in vehicles})
        policies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for policy in await queries.policies(unit, ids):
            policies[policy["vehicle_id"]].append(policy)
        reminders: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in await queries.reminders_of(unit, ids):
            reminders[row["vehicle_id"]].append(row)
        used = await queries.used_offsets(
            unit, [row["reminder_id"] for rows in reminders.values() for row in rows]
        )
        changes = self._changes(correlation_id)
        for vehicle in vehicles:
            existing = reminders[vehicle["vehicle_id"]]
            if vehicle["erased_at"] is not None or vehicle["sold_at"] is not None:
                cancellation = (
                    ReminderCancellation.CUSTOMER_ERASED
                    if vehicle["erased_at"] is not None
                    else ReminderCancellation.VEHICLE_SOLD
                )
                for row in existing:
                    if row["status"] == "scheduled":
                        self._cancel(changes, row, cancellation)
                continue
            at_branch = rules[vehicle["last_branch_id"]]
            wanted_now = self._wanted(
                vehicle, at_branch, policies[vehicle["vehicle_id"]], today=changes.today
            )
            by_key = {(row["kind"], row["subject"]): row for row in existing}
            for wanted in wanted_now:
                self._keep(
                    changes, vehicle, by_key.get((wanted.kind.value, wanted.subject)), wanted, used, reason
                )
            if at_branch.win_back.enabled and vehicle["last_visit_at"] is not None:
                self._win_back_after(changes, vehicle, at_branch.win_back.after_days)
            # A rule turned off, a policy gone: its reminders are withdrawn (declined work is not evaluated
            # here).
            keys = {(wanted.kind.value, wanted.subject) for wanted in wanted_now}
            for row in existing:
                if (
                    row["status"] == "scheduled"
                    and row["kind"] in EVALUATED_KINDS
                    and (row["kind"], row["subject"]) not in keys
                ):
                    self._cancel(changes, row, ReminderCancellation.SUPERSEDED)
        await self._write(unit, changes)

    def _wanted(
        self,
        vehicle: dict[str, Any],
        rules: EffectiveRules,
        policies: Sequence[dict[str, Any]],
        *,
        today: date,
    ) -> list[Wanted]:
        wanted = []
        if rules.maintenance.enabled and vehicle["last_service_on"] is not None:
            settings = rules.maintenance
            due = maintenance_due(
                settings.rule,
                last_service_on=vehicle["last_service_on"],
                last_service_km=vehicle["last_service_km"],
                mileage=_projection(vehicle),
                anchor_on=vehicle["first_service_on"] or vehicle["purchase_date"],
                tz=self.timezone,
            )
            cycle = f"service:{vehicle['last_service_on'].isoformat()}"
            wanted.append(Wanted(RuleKind.MAINTENANCE, "", cycle, due, settings.steps))
        if rules.insurance_renewal.enabled:
            settings_r = rules.insurance_renewal
            for policy in policies:
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
                        settings_r.steps,
                    )
                )
        if rules.annual_inspection.enabled and vehicle["registration_date"] is not None:
            settings_i = rules.annual_inspection
            deadline = inspection_due(vehicle["registration_date"], today=today)
            basis = f"the annual inspection of a car registered on {vehicle['registration_date']} is due by {deadline}"
            due = Due(
                due_on=deadline - timedelta(days=settings_i.lead_days),
                due_mileage_km=None,
                reason="time",
                basis=basis,
            )
            wanted.append(
                Wanted(RuleKind.ANNUAL_INSPECTION, "", f"deadline:{deadline}", due, settings_i.steps)
            )
        return wanted

    def _keep(
        self,
        changes: Changes,
        vehicle: dict[str, Any],
        existing: dict[str, Any] | None,
        wanted: Wanted,
        used: set[tuple[str, str, int]],
        reason: str,
    ) -> None:
        """The reminder as `wanted` says, with its rungs not used yet: new (ReminderScheduled), moved or
        in a new cycle (ReminderRescheduled), or as it was."""
        ladder = _ladder_text(wanted.ladder)
        row = {
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
            "ladder": ladder,
            "status": "scheduled",
            "status_reason": None,
            "snoozed_until": None,
            "closed_at": None,
        }
        if existing is None:
            reminder_id = reminder_id_for(vehicle["vehicle_id"], wanted.kind, wanted.subject)
            event: ReminderScheduled | ReminderRescheduled = ReminderScheduled(
                reminder_id=reminder_id,
                rule_id=f"{wanted.kind.value}",
                kind=self._event_kind(wanted),
                vehicle_id=vehicle["vehicle_id"],
                customer_id=vehicle["customer_id"],
                due_on=wanted.due.due_on,
                due_mileage_km=wanted.due.due_mileage_km,
            )
            changes.save({**row, "reminder_id": reminder_id, "version": 1, "created_at": changes.now}, event)
        else:
            if (
                existing["status"] != "scheduled"
                and existing["cycle"] == wanted.cycle
                and existing["status_reason"] not in REOPENABLE
            ):
                return  # closed ("done elsewhere") or cancelled for this cycle: a new fact does not reopen it
            unchanged = existing["status"] == "scheduled" and all(
                existing[column] == row[column]
                for column in ("ladder", "cycle", "due_on", "due_mileage_km", "due_by", "customer_id")
            )
            if unchanged:
                return
            reminder_id = existing["reminder_id"]
            event = ReminderRescheduled(
                reminder_id=reminder_id,
                due_on=wanted.due.due_on,
                due_mileage_km=wanted.due.due_mileage_km,
                reason=reason
                if existing["cycle"] == wanted.cycle
                else f"{reason}; a new cycle: {wanted.due.basis}",
            )
            changes.save({**existing, **row, "version": existing["version"] + 1}, event)
        sent = {offset for rid, cycle, offset in used if rid == reminder_id and cycle == wanted.cycle}
        steps = steps_to_schedule(wanted.ladder, wanted.due.due_on, sent=sent, today=changes.today)
        changes.steps.append(PendingSteps(reminder_id, vehicle["vehicle_id"], wanted.cycle, steps))
        for _, day in steps:
            timer = self._day_timer(vehicle["vehicle_id"], day, now=changes.now, today=changes.today)
            changes.timers[DAY_TIMER].append(timer)

    def _day_timer(self, vehicle_id: str, day: date, *, now: datetime, today: date) -> NewTimer:
        """The timer that fires a vehicle's rungs of a day, at the hour rungs go out."""
        if day <= today:
            # Today's timer may have fired already: a rung added today gets a timer of its own, at the hour
            # rungs go out (or now, if that hour has passed).
            due_at = max(now, _send_instant(today, self.send_at, self.timezone))
            key = f"{vehicle_id}:{day.isoformat()}:{due_at.isoformat()}"
        else:
            due_at = _send_instant(day, self.send_at, self.timezone)
            key = f"{vehicle_id}:{day.isoformat()}"
        return NewTimer(key, due_at, {"vehicle_id": vehicle_id, "day": day.isoformat()})

    async def schedule_day(self, unit: Unit, vehicle_id: str, day: date) -> None:
        now = self.clock.now()
        timer = self._day_timer(vehicle_id, day, now=now, today=now.astimezone(self.timezone).date())
        await schedule_many(unit, DAY_TIMER, [timer])

    def _win_back_after(self, changes: Changes, vehicle: dict[str, Any], after_days: int) -> None:
        """A call for the advisor if the car does not come back within `after_days` of its last visit (one
        timer per visit; a later visit makes the earlier ones find nothing to do)."""
        visit_on = vehicle["last_visit_at"].astimezone(self.timezone).date()
        due = win_back_due(visit_on, after_days=after_days)
        due_at = datetime.combine(due, self.send_at, tzinfo=self.timezone).astimezone(UTC)
        payload = {"vehicle_id": vehicle["vehicle_id"], "visit_on": visit_on.isoformat()}
        key = f"{vehicle['vehicle_id']}:{visit_on.isoformat()}"
        changes.timers[WIN_BACK_TIMER].append(NewTimer(key, due_at, payload))

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
            correlation_id=ctx.timer.correlation_id,  # the visit's that scheduled it
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
        correlation_id: uuid.UUID | None,
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
            existing = {
                (row["kind"], row["subject"]): row for row in await queries.reminders_of(unit, [vehicle_id])
            }
            basis = f"{item} was declined on {declined_on.isoformat()}"
            wanted = Wanted(
                RuleKind.DECLINED_WORK,
                add_on_id,
                f"declined:{add_on_id}",
                Due(due_on=due_on, due_mileage_km=None, reason="time", basis=basis),
                Ladder((0,)),
            )
            known = existing.get((wanted.kind.value, wanted.subject))
            used = await queries.used_offsets(unit, [known["reminder_id"]] if known else [])
            changes = self._changes(correlation_id)
            self._keep(changes, vehicle, known, wanted, used, reason="an add-on was declined")
            await self._write(unit, changes)
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
            await self.tasks.create_later(unit, task, appears_at, correlation_id=correlation_id)

    async def cancel_all(
        self,
        unit: Unit,
        vehicle_id: str,
        reason: ReminderCancellation,
        *,
        correlation_id: uuid.UUID | None = None,
    ) -> int:
        changes = self._changes(correlation_id)
        for existing in await queries.reminders_of(unit, [vehicle_id]):
            if existing["status"] == "scheduled":
                self._cancel(changes, existing, reason)
        await self._write(unit, changes)
        return len(changes.reminders)

    def _cancel(self, changes: Changes, existing: dict[str, Any], reason: ReminderCancellation) -> None:
        cancelled = {
            **existing,
            "status": "cancelled",
            "status_reason": reason.value,
            "closed_at": changes.now,
            "version": existing["version"] + 1,
        }
        changes.save(cancelled, ReminderCancelled(reminder_id=existing["reminder_id"], reason=reason))
        changes.steps.append(
            PendingSteps(existing["reminder_id"], existing["vehicle_id"], existing["cycle"], [])
        )

    async def _write(self, unit: Unit, changes: Changes) -> None:
        """What an evaluation changed, in a few statements: the reminders, their rungs, their timers, and
        their events through the outbox."""
        await queries.save_reminders(unit, changes.reminders)
        await queries.replace_pending_steps(unit, changes.steps)
        for kind, timers in changes.timers.items():
            await schedule_many(unit, kind, timers, correlation_id=changes.correlation_id)
        await outbox.enqueue(
            unit,
            [
                self.context(row["branch_id"], changes.now, changes.correlation_id).envelope(
                    event, aggregate_id=row["reminder_id"], aggregate_version=row["version"]
                )
                for row, event in zip(changes.reminders, changes.events, strict=True)
            ],
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
            # The rung's correlation: the fact's that last scheduled the vehicle's day (a visit's, say).
            context = self.context(step["branch_id"], ctx.now, ctx.timer.correlation_id)
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
                await self.tasks.renewal_task(ctx.unit, step, vehicle, ctx.now, ctx.timer.correlation_id)

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

    def context(
        self, branch_id: str | None, at: datetime, correlation_id: uuid.UUID | None = None
    ) -> CommandContext:
        return CommandContext(
            actor=ACTOR,
            chain_id=self.chain_id,
            occurred_at=at,
            branch_id=branch_id,
            correlation_id=correlation_id,
        )


def _projection(vehicle: dict[str, Any]) -> Projection:
    """The mileage estimate as kept on the vehicle's row (Schedule.mileage_estimate keeps it there)."""
    last = (
        Reading(at=vehicle["last_reading_at"], km=vehicle["last_reading_km"])
        if vehicle["last_reading_at"] is not None
        else None
    )
    return Projection(
        last=last, km_per_day=vehicle["km_per_day"], odometer_replaced_at=vehicle["odometer_replaced_at"]
    )


@lru_cache(maxsize=1024)
def _send_instant(day: date, send_at: time, timezone: ZoneInfo) -> datetime:
    """When rungs go out on `day` (a local date), in UTC: worked out once per day, not once per vehicle."""
    return datetime.combine(day, send_at, tzinfo=timezone).astimezone(UTC)


@lru_cache(maxsize=256)  # a handful of ladders, a million reminders
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
