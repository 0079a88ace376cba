"""What the message pipeline tells a survey about its messages: the survey went out (NpsSurveySent, and its
one reminder is scheduled), its reminder went out (NpsSurveyReminded), or it could not be delivered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pitlane_events.notification import NpsSurveyReminded, NpsSurveySent
from pitlane_events.types import Channel
from pitlane_notification.service_layer.requests import Related, Trigger
from pitlane_platform.db import Unit, fetch_on_driver
from pitlane_platform.messaging import outbox
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.scheduling.timers import schedule

REMIND = "notification.survey-reminder"


def related_of(row: Mapping[str, Any]) -> Related:
    return Related(
        work_order_id=row.get("work_order_id"),
        appointment_id=row.get("appointment_id"),
        reminder_id=row.get("reminder_id"),
        campaign_id=row.get("campaign_id"),
        survey_id=row.get("survey_id"),
    )


async def message_sent(
    unit: Unit, row: Mapping[str, Any], *, channel: Channel, at: datetime, context: CommandContext
) -> None:
    if row.get("survey_id") is None:
        return
    trigger = Trigger(row["trigger"])
    if trigger is Trigger.NPS_SURVEY:
        updated = await fetch_on_driver(
            unit,
            "survey sent",
            """
            UPDATE surveys SET status = 'sent', channel = %(channel)s, sent_at = %(at)s, version = version + 1
            WHERE survey_id = %(survey_id)s AND status = 'scheduled'
            RETURNING *
            """,
            {"survey_id": row["survey_id"], "channel": channel.value, "at": at},
            as_dicts=True,
        )
        if not updated:
            return
        survey = updated[0]
        event = NpsSurveySent(
            survey_id=survey["survey_id"],
            work_order_id=survey["work_order_id"],
            customer_id=survey["customer_id"],
            advisor_id=survey["advisor_id"],
            technician_ids=tuple(survey["technician_ids"]),
            branch_id=survey["branch_id"],
            channel=channel,
            expires_at=survey["expires_at"],
        )
        await outbox.enqueue(
            unit,
            [context.envelope(event, aggregate_id=survey["survey_id"], aggregate_version=survey["version"])],
        )
        remind_after = timedelta(seconds=float(row["context"]["remind_after_s"]))
        await schedule(
            unit,
            REMIND,
            survey["survey_id"],
            at + remind_after,
            {"survey_id": survey["survey_id"]},
            correlation_id=context.correlation_id,
        )
    elif trigger is Trigger.NPS_SURVEY_REMINDER:
        updated = await fetch_on_driver(
            unit,
            "survey reminded",
            """
            UPDATE surveys SET reminded_at = %(at)s, reminder_channel = %(channel)s, version = version + 1
            WHERE survey_id = %(survey_id)s AND reminded_at IS NULL
            RETURNING *
            """,
            {"survey_id": row["survey_id"], "channel": channel.value, "at": at},
            as_dicts=True,
        )
        if not updated:
            return
        survey = updated[0]
        reminded = NpsSurveyReminded(
            survey_id=survey["survey_id"],
            work_order_id=survey["work_order_id"],
            branch_id=survey["branch_id"],
            channel=channel,
        )
        await outbox.enqueue(
            unit,
            [
                context.envelope(
                    reminded, aggregate_id=survey["survey_id"], aggregate_version=survey["version"]
                )
            ],
        )


async def message_failed(unit: Unit, row: Mapping[str, Any], *, reason: str) -> None:
    """A survey whose message could not go out on any channel is over: it was never sent."""
    if row.get("survey_id") is None or row.get("trigger") != Trigger.NPS_SURVEY.value:
        return
    await fetch_on_driver(
        unit,
        "survey undeliverable",
        """
        UPDATE surveys SET status = 'cancelled', status_reason = %(reason)s
        WHERE survey_id = %(survey_id)s AND status = 'scheduled'
        RETURNING survey_id
        """,
        {"survey_id": row["survey_id"], "reason": f"undeliverable: {reason}"[:500]},
    )
