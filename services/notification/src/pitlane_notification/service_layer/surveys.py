"""The NPS survey after every visit: one per completed work order, sent after a delay unless the order was
voided first, answered once through a signed, expiring link, reminded once on the next channel.

The survey's id is derived from the work order's, and `surveys.work_order_id` is unique: a completion
delivered three times, or replayed into a rebuilt consumer, finds the survey it made the first time. The
answer's primary key is the survey: two submits at once store one answer, the second changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pitlane_events.notification import NpsAnswered, NpsSurveyProgressed, SurveyStep
from pitlane_events.types import Channel, Purpose
from pitlane_notification.domain.courtesy import channels_after
from pitlane_notification.domain.surveys import NpsGroup, SurveyPolicy, nps_group
from pitlane_notification.service_layer.delivery import ACTOR, Delivery
from pitlane_notification.service_layer.requests import MessageRequest, Related, Trigger
from pitlane_notification.service_layer.surveys_log import REMIND
from pitlane_platform.db import Unit, execute_on_driver, fetch_on_driver
from pitlane_platform.errors import ForbiddenError, NotFoundError
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import TimerContext, TimerHandlers, cancel, schedule
from pitlane_platform.security.links import claims_of, sign_claims

SEND = "notification.survey"
SURVEY_LINK_USE = "nps"
# Survey ids are derived from work order ids in this namespace: the same visit always has the same survey.
SURVEY_NAMESPACE = uuid.UUID("5b0f6f38-3c55-4c38-9d0e-2f3f6a1f4e55")


def survey_id_for(work_order_id: str) -> str:
    return str(uuid.uuid5(SURVEY_NAMESPACE, work_order_id))


@dataclass(frozen=True)
class Answered:
    survey_id: str
    score: int
    comment: str | None
    first_time: bool  # False: the survey was answered before; this submit changed nothing


@dataclass
class Surveys:
    delivery: Delivery
    policy: SurveyPolicy
    link_secret: str
    public_base_url: str

    def register(self, timers: TimerHandlers) -> None:
        timers.on(SEND)(self.send)
        timers.on(REMIND)(self.remind)

    # ---- from workorder's events -------------------------------------------------------------------------

    async def visit_completed(
        self,
        unit: Unit,
        *,
        work_order_id: str,
        customer_id: str,
        branch_id: str,
        advisor_id: str,
        technician_ids: Sequence[str],
        completed_at: datetime,
        correlation_id: uuid.UUID,
    ) -> str | None:
        """Schedule the visit's survey; None when it has one already (a copy of the completion)."""
        survey_id = survey_id_for(work_order_id)
        scheduled_for = self.policy.send_at(completed_at)
        row = await execute_on_driver(
            unit,
            "schedule survey",
            """
            INSERT INTO surveys (survey_id, work_order_id, customer_id, branch_id, advisor_id, technician_ids,
                                 status, scheduled_for, correlation_id)
            VALUES (%(s)s, %(w)s, %(c)s, %(b)s, %(a)s, %(t)s::jsonb, 'scheduled', %(at)s, %(correlation)s)
            ON CONFLICT (work_order_id) DO NOTHING
            RETURNING survey_id
            """,
            {
                "s": survey_id,
                "w": work_order_id,
                "c": customer_id,
                "b": branch_id,
                "a": advisor_id,
                "t": _json_list(technician_ids),
                "at": scheduled_for,
                "correlation": correlation_id,
            },
        )
        if row is None:
            return None
        await schedule(
            unit, SEND, survey_id, scheduled_for, {"survey_id": survey_id}, correlation_id=correlation_id
        )
        return survey_id

    async def visit_voided(self, unit: Unit, work_order_id: str, now: datetime) -> bool:
        """A voided visit asks nothing: its survey, if not sent yet, is cancelled with what was queued."""
        rows = await fetch_on_driver(
            unit,
            "cancel survey",
            """
            UPDATE surveys SET status = 'cancelled', status_reason = 'work_order_voided'
            WHERE work_order_id = %(w)s AND status = 'scheduled'
            RETURNING survey_id
            """,
            {"w": work_order_id},
        )
        if not rows:
            return False
        survey_id = rows[0][0]
        await cancel(unit, SEND, survey_id, now=now)
        await execute_on_driver(
            unit,
            "suppress survey messages",
            """
            UPDATE messages SET status = 'suppressed', status_reason = 'work_order_voided'
            WHERE survey_id = %(s)s AND status = 'queued'
            """,
            {"s": survey_id},
        )
        return True

    # ---- timers -------------------------------------------------------------------------------------------

    async def send(self, ctx: TimerContext) -> None:
        survey = await self._locked(ctx.unit, ctx.timer.payload["survey_id"])
        if survey is None or survey["status"] != "scheduled":
            return
        expires_at = self.policy.expires_at(ctx.now)
        await execute_on_driver(
            ctx.unit,
            "survey expiry",
            "UPDATE surveys SET expires_at = %(e)s WHERE survey_id = %(s)s",
            {"e": expires_at, "s": survey["survey_id"]},
        )
        queued = await self.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=Trigger.NPS_SURVEY,
                purpose=Purpose.SERVICE,
                customer_id=survey["customer_id"],
                cause=f"survey:{survey['survey_id']}",
                due_at=ctx.now,
                branch_id=survey["branch_id"],
                context={
                    "link": self.link(survey["survey_id"], expires_at),
                    "remind_after_s": self.policy.remind_after.total_seconds(),
                },
                related=Related(work_order_id=survey["work_order_id"], survey_id=survey["survey_id"]),
                correlation_id=ctx.timer.correlation_id,  # the visit's, however much later it fires
            ),
        )
        if queued is not None and queued.refusal is not None:
            await execute_on_driver(
                ctx.unit,
                "survey not sent",
                "UPDATE surveys SET status = 'cancelled', status_reason = %(r)s WHERE survey_id = %(s)s",
                {"r": queued.refusal, "s": survey["survey_id"]},
            )

    async def remind(self, ctx: TimerContext) -> None:
        """Exactly one reminder of an unanswered survey, on the next channel after the survey's own."""
        survey = await self._locked(ctx.unit, ctx.timer.payload["survey_id"])
        if survey is None or survey["status"] != "sent" or survey["reminded_at"] is not None:
            return
        if survey["expires_at"] is not None and survey["expires_at"] <= ctx.now:
            return
        sent_on = Channel(survey["channel"])
        order = (*channels_after(sent_on, self.delivery.channel_order), sent_on)
        await self.delivery.queue(
            ctx.unit,
            MessageRequest(
                trigger=Trigger.NPS_SURVEY_REMINDER,
                purpose=Purpose.SERVICE,
                customer_id=survey["customer_id"],
                cause=f"survey-reminder:{survey['survey_id']}",
                due_at=ctx.now,
                branch_id=survey["branch_id"],
                context={"link": self.link(survey["survey_id"], survey["expires_at"])},
                related=Related(work_order_id=survey["work_order_id"], survey_id=survey["survey_id"]),
                channels=order,
                correlation_id=ctx.timer.correlation_id,
            ),
        )

    # ---- the customer's link ------------------------------------------------------------------------------

    def link(self, survey_id: str, expires_at: datetime) -> str:
        token = sign_claims(
            self.link_secret, SURVEY_LINK_USE, {"s": survey_id, "exp": int(expires_at.timestamp())}
        )
        return f"{self.public_base_url}/n/s/{token}"

    def verify(self, token: str, now: datetime) -> str:
        """The survey a link names, or a 403 for a forged, altered or expired link."""
        claims = claims_of(self.link_secret, token, SURVEY_LINK_USE)
        if claims is None or not isinstance(claims.get("s"), str) or not isinstance(claims.get("exp"), int):
            raise ForbiddenError("this survey link is not valid")
        if now >= datetime.fromtimestamp(claims["exp"], UTC):
            raise ForbiddenError("this survey link has expired")
        return str(claims["s"])

    async def opened(self, unit: Unit, survey_id: str, now: datetime) -> dict[str, Any]:
        """The survey as its page shows it; the first opening is a step of the funnel."""
        survey = await self._locked(unit, survey_id)
        if survey is None or survey["status"] == "cancelled":
            raise NotFoundError(f"survey {survey_id} is not open")
        if survey["opened_at"] is None and survey["status"] in ("sent", "answered"):
            await self._step(unit, survey, SurveyStep.OPENED, now)
        answer = await fetch_on_driver(
            unit,
            "survey answer",
            "SELECT score, comment FROM survey_answers WHERE survey_id = %(s)s",
            {"s": survey_id},
            as_dicts=True,
        )
        branch = await fetch_on_driver(
            unit, "branch", "SELECT name FROM branches WHERE branch_id = %(b)s", {"b": survey["branch_id"]}
        )
        return {
            **survey,
            "answer": answer[0] if answer else None,
            "branch_name": branch[0][0] if branch else "",
        }

    async def save_draft(
        self, unit: Unit, survey_id: str, score: int | None, comment: str | None, now: datetime
    ) -> bool:
        """A half-finished answer, kept so the page resumes where the customer left; False once answered."""
        survey = await self._locked(unit, survey_id)
        if survey is None or survey["status"] not in ("scheduled", "sent"):
            return False
        await execute_on_driver(
            unit,
            "survey draft",
            "UPDATE surveys SET draft_score = %(score)s, draft_comment = %(comment)s WHERE survey_id = %(s)s",
            {"score": score, "comment": comment, "s": survey_id},
        )
        if survey["started_at"] is None and score is not None:
            await self._step(unit, survey, SurveyStep.STARTED, now)
        return True

    async def answer(
        self, unit: Unit, survey_id: str, score: int, comment: str | None, now: datetime
    ) -> Answered:
        inserted = await execute_on_driver(
            unit,
            "answer survey",
            """
            INSERT INTO survey_answers (survey_id, score, comment, answered_at)
            SELECT %(s)s, %(score)s, %(comment)s, %(at)s FROM surveys
            WHERE survey_id = %(s)s AND status IN ('scheduled', 'sent')
            ON CONFLICT (survey_id) DO NOTHING
            RETURNING survey_id
            """,
            {"s": survey_id, "score": score, "comment": comment, "at": now},
        )
        if inserted is None:
            existing = await fetch_on_driver(
                unit,
                "survey answer",
                "SELECT score, comment FROM survey_answers WHERE survey_id = %(s)s",
                {"s": survey_id},
            )
            if not existing:
                raise NotFoundError(f"survey {survey_id} is not open for answers")
            return Answered(survey_id, existing[0][0], existing[0][1], first_time=False)
        detractor = nps_group(score) is NpsGroup.DETRACTOR
        rows = await fetch_on_driver(
            unit,
            "survey answered",
            """
            UPDATE surveys SET status = 'answered', answered_at = %(at)s, detractor = %(d)s,
                started_at = coalesce(started_at, %(at)s), opened_at = coalesce(opened_at, %(at)s),
                draft_score = NULL, draft_comment = NULL, version = version + 1
            WHERE survey_id = %(s)s
            RETURNING *
            """,
            {"s": survey_id, "at": now, "d": detractor},
            as_dicts=True,
        )
        survey = rows[0]
        await cancel(unit, REMIND, survey_id, now=now)
        event = NpsAnswered(
            survey_id=survey_id,
            work_order_id=survey["work_order_id"],
            customer_id=survey["customer_id"],
            advisor_id=survey["advisor_id"],
            technician_ids=tuple(survey["technician_ids"]),
            branch_id=survey["branch_id"],
            score=score,
            comment=comment,
        )
        context = CommandContext(
            actor=ACTOR,
            chain_id=self.delivery.chain_id,
            occurred_at=now,
            branch_id=survey["branch_id"],
            correlation_id=survey["correlation_id"],
        )
        envelope = context.envelope(event, aggregate_id=survey_id, aggregate_version=survey["version"])
        await outbox.enqueue(unit, [envelope])
        await execute_on_driver(
            unit,
            "answer event",
            "UPDATE survey_answers SET event_id = %(e)s WHERE survey_id = %(s)s",
            {"e": str(envelope.event_id), "s": survey_id},
        )
        return Answered(survey_id, score, comment, first_time=True)

    async def _step(self, unit: Unit, survey: dict[str, Any], step: SurveyStep, now: datetime) -> None:
        column = "opened_at" if step is SurveyStep.OPENED else "started_at"
        rows = await fetch_on_driver(
            unit,
            "survey step",
            f"""
            UPDATE surveys SET {column} = %(at)s, version = version + 1
            WHERE survey_id = %(s)s AND {column} IS NULL
            RETURNING version
            """,
            {"s": survey["survey_id"], "at": now},
        )
        if not rows or survey["channel"] is None:
            return
        event = NpsSurveyProgressed(
            survey_id=survey["survey_id"],
            work_order_id=survey["work_order_id"],
            branch_id=survey["branch_id"],
            advisor_id=survey["advisor_id"],
            channel=Channel(survey["channel"]),
            step=step,
        )
        context = CommandContext(
            actor=ACTOR,
            chain_id=self.delivery.chain_id,
            occurred_at=now,
            branch_id=survey["branch_id"],
            correlation_id=survey["correlation_id"],
        )
        await outbox.enqueue(
            unit, [context.envelope(event, aggregate_id=survey["survey_id"], aggregate_version=rows[0][0])]
        )

    async def _locked(self, unit: Unit, survey_id: str) -> dict[str, Any] | None:
        rows = await fetch_on_driver(
            unit,
            "survey",
            "SELECT * FROM surveys WHERE survey_id = %(s)s FOR UPDATE",
            {"s": survey_id},
            as_dicts=True,
        )
        return rows[0] if rows else None


def _json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values))
