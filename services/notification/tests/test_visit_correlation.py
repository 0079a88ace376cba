"""A visit's correlation id (issue 17, docs/observability.md) survives notification: the thanks sent on a
completion, the NPS survey a durable timer sends two hours later, and the answer the customer gives through
its link all carry the completion's correlation, not one of their own."""

from __future__ import annotations

from urllib.parse import urlsplit

from notification_harness import Harness

from pitlane_events import new_event_id


async def test_the_thanks_the_survey_sent_hours_later_and_its_answer_keep_the_visits_correlation(
    harness: Harness,
) -> None:
    await harness.customer("c1")
    visit = new_event_id()
    opened, completed = (
        envelope.model_copy(update={"correlation_id": visit})
        for envelope in await harness.visit("wo-1", "c1", publish=False)
    )
    await harness.consumed("workorder", await harness.publish(opened, completed))
    await harness.until_message(trigger="work_order_completed", status="sent")
    harness.advance(hours=2)
    survey = await harness.until_message(trigger="nps_survey", status="sent")
    path = urlsplit(survey["link"]).path
    answered = await harness.client.post(path, data={"score": "9", "comment": "很好"})
    assert answered.status_code == 303, answered.text

    sent = await harness.published("notification.NotificationSent")
    assert sorted(e.data.template for e in sent) == ["nps_survey", "work_order_completed"]
    [survey_sent] = await harness.published("notification.NpsSurveySent")
    [answer] = await harness.published("notification.NpsAnswered")
    caused = [*sent, survey_sent, answer]
    assert [e.correlation_id for e in caused] == [visit] * len(caused)


async def test_a_reaction_to_another_visit_keeps_that_visits_correlation(harness: Harness) -> None:
    await harness.customer("c1")
    await harness.customer("c2", phone="+8613812340002")
    first, second = new_event_id(), new_event_id()
    for work_order_id, customer_id, correlation in (("wo-1", "c1", first), ("wo-2", "c2", second)):
        envelopes = await harness.visit(work_order_id, customer_id, publish=False)
        await harness.consumed(
            "workorder",
            await harness.publish(*(e.model_copy(update={"correlation_id": correlation}) for e in envelopes)),
        )
    harness.advance(hours=2)
    await harness.until_message(trigger="nps_survey", work_order_id="wo-1", status="sent")
    await harness.until_message(trigger="nps_survey", work_order_id="wo-2", status="sent")
    surveys = await harness.published("notification.NpsSurveySent")
    assert sorted((e.data.work_order_id, e.correlation_id) for e in surveys) == [
        ("wo-1", first),
        ("wo-2", second),
    ]
