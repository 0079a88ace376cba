"""KPI digests by e-mail: subscriptions, and sending each one on the platform's durable timers.

Each subscription has one pending timer, for its next send; its key is the subscription and the first day of
the period that send covers. The handler sends that period's digest, logs the attempt and schedules the next
send — in the timer's transaction, so the next timer exists once this one is marked fired. The timers fire
each one once across replicas and survive restarts.

A period is sent once (the idempotency key is the subscription and the period's first day): a "sent" attempt
is committed as soon as the server took the message, and a timer that fires again for a sent period (a crash
after that commit, before the timer's) sends nothing. A crash between the server taking the message and that
commit sends it again with the same Message-ID, which the receiving side drops.

A refusal that may pass later (4xx, a timeout, an unreachable server) is logged as "retried" and raised, so
the timers retry it with their back-off; its last attempt, and a final refusal (5xx to the recipient or the
content), is logged as "failed" and the digest moves on to its next period.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pitlane_analytics.adapters import digest_store
from pitlane_analytics.domain.digest_schedule import Cadence, DigestPeriod, DigestSchedule
from pitlane_analytics.domain.periods import Period
from pitlane_analytics.service_layer.digest_render import Language, render_digest
from pitlane_analytics.service_layer.kpis import Kpis, Scope
from pitlane_platform.clock import Clock
from pitlane_platform.db import DriverPool, Unit
from pitlane_platform.mail import Mail, Mailer, MailNotSent
from pitlane_platform.scheduling import timers
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, TimerRunner

log = logging.getLogger(__name__)

TIMER_KIND = "analytics.digest"
# The timer runner gives up after this many attempts; the handler ends the last one itself, logging it as
# failed, so the next period is still scheduled.
SEND_ATTEMPTS = TimerRunner.max_attempts


class DigestNotSentYet(Exception):
    """The server refused for now: the timer retries the send with its back-off."""


@dataclass(frozen=True)
class NewSubscription:
    email: str
    branch_id: str | None
    cadence: Cadence
    send_time: time
    language: Language
    weekday: int | None = None
    month_day: int | None = None


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    email: str
    branch_id: str | None
    cadence: Cadence
    weekday: int | None
    month_day: int | None
    send_time: time
    timezone: str
    language: Language
    created_by: str
    created_at: datetime
    next_send_at: datetime  # on the schedule; a send being retried goes out later


@dataclass(frozen=True)
class Delivery:
    period_start: date
    period_end: date
    attempt: int
    attempted_at: datetime
    outcome: str
    reason: str | None
    message_id: str | None


class Digests:
    def __init__(
        self,
        driver: DriverPool,
        kpis: Kpis,
        mailer: Mailer,
        *,
        clock: Clock,
        timezone: ZoneInfo,
        dashboard_url: str,
    ) -> None:
        self._driver = driver
        self._kpis = kpis
        self._mailer = mailer
        self._clock = clock
        # The chain's zone: the KPIs' periods are its dates (KPI.md: one definition for every branch), and a
        # digest of the chain, or of a branch whose zone workorder has not told us, goes out on its clock.
        self._timezone = timezone
        self._dashboard_url = dashboard_url

    def register(self, handlers: TimerHandlers) -> None:
        handlers.on(TIMER_KIND)(self.send_due)

    # ---- subscriptions ---------------------------------------------------------------------------------------

    async def subscribe(self, new: NewSubscription, *, created_by: str) -> Subscription:
        """Raises ValueError when the schedule's fields do not go together (a weekday for a daily digest)."""
        now = self._clock.now()
        row: dict[str, Any] = {
            "subscription_id": str(uuid.uuid4()),
            "email": new.email,
            "branch_id": new.branch_id,
            "cadence": new.cadence.value,
            "weekday": new.weekday,
            "month_day": new.month_day,
            "send_time": new.send_time,
            "timezone": self._timezone.key,  # the branch's, below, when workorder gave it one
            "language": new.language,
            "created_by": created_by,
            "created_at": now,
        }
        async with self._driver.transaction() as unit:
            if new.branch_id is not None:
                row["timezone"] = await digest_store.branch_timezone(unit, new.branch_id) or row["timezone"]
            schedule = _schedule(row)
            await digest_store.insert_subscription(unit, row)
            await self._schedule_next(unit, row["subscription_id"], schedule, after=now)
        return self._view(row)

    async def subscriptions(self, *, branches: frozenset[str] | None) -> list[Subscription]:
        async with self._driver.transaction() as unit:
            rows = await digest_store.subscriptions(unit, branches=branches)
        return [self._view(row) for row in rows]

    async def subscription(self, subscription_id: str) -> Subscription | None:
        async with self._driver.transaction() as unit:
            row = await digest_store.subscription(unit, subscription_id)
        return None if row is None else self._view(row)

    async def unsubscribe(self, subscription_id: str) -> None:
        """Deletes the subscription and withdraws its pending send; its delivery log stays."""
        now = self._clock.now()
        async with self._driver.transaction() as unit:
            await digest_store.mark_deleted(unit, subscription_id, now=now)
            await timers.cancel_prefixed(unit, TIMER_KIND, f"{subscription_id}:", now=now)

    async def deliveries(self, subscription_id: str) -> list[Delivery]:
        async with self._driver.transaction() as unit:
            rows = await digest_store.deliveries(unit, subscription_id)
        return [Delivery(**row) for row in rows]

    def _view(self, row: dict[str, Any]) -> Subscription:
        schedule = _schedule(row)
        next_day = schedule.next_send_day(self._clock.now())
        return Subscription(
            **{**row, "cadence": Cadence(row["cadence"])}, next_send_at=schedule.send_instant(next_day)
        )

    # ---- sending ---------------------------------------------------------------------------------------------

    async def send_due(self, ctx: TimerContext) -> None:
        """The timer handler: send the period's digest unless it was sent, then schedule the next send."""
        subscription_id = ctx.timer.payload["subscription_id"]
        send_day = date.fromisoformat(ctx.timer.payload["send_day"])
        row = await digest_store.subscription(ctx.unit, subscription_id)
        if row is None:
            return  # deleted while this send was being taken: the delete cancelled the rest
        schedule = _schedule(row)
        period = schedule.period_sent_on(send_day)
        if not await digest_store.was_sent(ctx.unit, subscription_id, period.start):
            await self._send(row, schedule, period, attempt=ctx.timer.attempts + 1, now=ctx.now)
        # After the send this timer was for (not after now): a digest late by days catches up period by period.
        await self._schedule_next(ctx.unit, subscription_id, schedule, after=schedule.send_instant(send_day))

    async def _send(
        self,
        row: dict[str, Any],
        schedule: DigestSchedule,
        period: DigestPeriod,
        *,
        attempt: int,
        now: datetime,
    ) -> None:
        mail = await self._compose(row, schedule, period)
        attempted = {"subscription_id": row["subscription_id"], "period": period, "now": now}
        try:
            message_id = await self._mailer.send(mail)
        except MailNotSent as refusal:
            if refusal.retryable and attempt < SEND_ATTEMPTS:
                await self._log(**attempted, outcome="retried", reason=refusal.reason)
                raise DigestNotSentYet(refusal.reason) from None
            await self._log(**attempted, outcome="failed", reason=refusal.reason)
            log.warning(
                "digest not sent: %s",
                refusal.reason,
                extra={"subscription_id": row["subscription_id"], "period_start": period.start.isoformat()},
            )
            return
        await self._log(**attempted, outcome="sent", message_id=message_id)

    async def _compose(self, row: dict[str, Any], schedule: DigestSchedule, period: DigestPeriod) -> Mail:
        # Sent at the branch's local time (`schedule`), about the period's dates on the chain's calendar.
        zone, branch_id = self._timezone, row["branch_id"]
        async with self._kpis.snapshot() as unit:  # both periods read from the same facts
            current = await self._kpis.headline(
                unit, Scope(Period(period.start, period.end, zone), branch_id)
            )
            previous = await self._kpis.headline(
                unit, Scope(Period(period.previous_start, period.start, zone), branch_id)
            )
        content = render_digest(
            cadence=schedule.cadence,
            branch_id=branch_id,
            period=period,
            timezone=zone,
            language=row["language"],
            current=current,
            previous=previous,
            dashboard_url=self._dashboard_url,
        )
        return Mail(
            # The same on every attempt for the period: a copy sent twice carries one Message-ID.
            message_id=f"digest-{row['subscription_id']}-{period.start:%Y%m%d}",
            to=row["email"],
            subject=content.subject,
            text=content.text,
            html=content.html,
        )

    async def _log(
        self,
        *,
        subscription_id: str,
        period: DigestPeriod,
        now: datetime,
        outcome: str,
        reason: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """On a transaction of its own: the attempt stays logged whatever becomes of the timer's transaction
        (a retried send rolls it back), and a sent period is known to be sent at once."""
        async with self._driver.transaction() as unit:
            await digest_store.record_delivery(
                unit,
                {
                    "subscription_id": subscription_id,
                    "period_start": period.start,
                    "period_end": period.end,
                    "attempted_at": now,
                    "outcome": outcome,
                    "reason": reason,
                    "message_id": message_id,
                },
            )

    async def _schedule_next(
        self, unit: Unit, subscription_id: str, schedule: DigestSchedule, *, after: datetime
    ) -> None:
        day = schedule.next_send_day(after)
        await timers.schedule(
            unit,
            TIMER_KIND,
            f"{subscription_id}:{schedule.period_sent_on(day).start.isoformat()}",
            schedule.send_instant(day),
            {"subscription_id": subscription_id, "send_day": day.isoformat()},
        )


def _schedule(row: dict[str, Any]) -> DigestSchedule:
    return DigestSchedule(
        cadence=Cadence(row["cadence"]),
        send_time=row["send_time"],
        timezone=ZoneInfo(row["timezone"]),
        weekday=row["weekday"],
        month_day=row["month_day"],
    )
