"""The NPS survey after every visit, against real PostgreSQL and NATS on an injected clock: exactly one per
completed work order, none for one voided first, answered once through a signed, expiring link, reminded
once on the next channel."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from notification_harness import BRANCH, Harness, both_waiting, table_locked

from pitlane_events.workorder import WorkOrderVoided


def survey_path(link: str) -> str:
    return urlsplit(link).path


async def sent_survey(harness: Harness, work_order_id: str, customer_id: str) -> dict:
    """A visit completed now, and its survey sent two hours later: its message."""
    await harness.visit(work_order_id, customer_id)
    harness.advance(hours=2)
    return await harness.until_message(trigger="nps_survey", work_order_id=work_order_id, status="sent")


async def test_a_completion_delivered_three_times_gives_exactly_one_survey(harness: Harness) -> None:
    await harness.customer("c1")
    opened, completed = await harness.visit("wo-1", "c1", publish=False)
    await harness.publish(opened, completed)
    # The relay's copies after the dedupe window, and a replay: the same event under other message ids.
    await harness.publish(completed, msg_id="copy-1")
    await harness.consumed("workorder", await harness.publish(completed, msg_id="copy-2"))
    thanks = await harness.until_message(trigger="work_order_completed", status="sent")
    assert thanks["work_order_id"] == "wo-1"

    harness.advance(hours=1, minutes=59)
    await harness.timers_caught_up()
    assert await harness.messages(trigger="nps_survey") == []  # not before its two hours
    harness.advance(minutes=1)
    survey_message = await harness.until_message(trigger="nps_survey", status="sent")

    surveys = await harness.rows("SELECT * FROM surveys")
    assert len(surveys) == 1 and surveys[0]["status"] == "sent"
    assert len(await harness.messages(trigger="nps_survey")) == 1
    assert len(await harness.messages(trigger="work_order_completed")) == 1
    sent = await harness.published("notification.NpsSurveySent")
    assert [e.data.survey_id for e in sent] == [surveys[0]["survey_id"]]
    assert sent[0].data.work_order_id == "wo-1" and sent[0].data.technician_ids == ("tom", "lee")
    assert survey_message["link"].startswith("https://shop.example.cn/n/s/")


async def test_a_work_order_voided_before_the_survey_goes_out_gets_none(harness: Harness) -> None:
    await harness.customer("c1")
    await harness.customer("c2", phone="+8613812340002")
    await harness.visit("wo-voided", "c1")
    await harness.visit("wo-kept", "c2")
    harness.advance(hours=1)
    await harness.emit_and_wait(
        "workorder",
        WorkOrderVoided(work_order_id="wo-voided", customer_id="c1", reason="录错了客户", manager_id="max"),
        "wo-voided",
        branch_id=BRANCH,
    )
    harness.advance(hours=1)
    # The positive signal: the other visit's survey, due at the same moment, went out.
    await harness.until_message(trigger="nps_survey", work_order_id="wo-kept", status="sent")
    assert await harness.messages(trigger="nps_survey", work_order_id="wo-voided") == []
    [voided] = await harness.rows(
        "SELECT status, status_reason FROM surveys WHERE work_order_id = 'wo-voided'"
    )
    assert voided == {"status": "cancelled", "status_reason": "work_order_voided"}
    sent = await harness.published("notification.NpsSurveySent")
    assert [e.data.work_order_id for e in sent] == ["wo-kept"]


async def test_answering_through_the_link_publishes_nps_answered_and_a_second_answer_changes_nothing(
    harness: Harness,
) -> None:
    await harness.customer("c1")
    message = await sent_survey(harness, "wo-1", "c1")
    path = survey_path(message["link"])

    page = await harness.client.get(path)
    assert page.status_code == 200 and "浦东张江店" in page.text
    picked = await harness.client.post(f"{path}/draft", data={"score": "4"})
    assert picked.status_code == 303
    resumed = await harness.client.get(path)  # the customer left and came back: the score is kept
    assert 'id="chosen">4<' in resumed.text and "<textarea" in resumed.text

    answered = await harness.client.post(path, data={"score": "4", "comment": "等太久了"})
    assert answered.status_code == 303
    thanks = await harness.client.get(path)
    assert "感谢您的评价" in thanks.text

    again = await harness.client.post(path, data={"score": "10", "comment": "改主意了"})
    assert again.status_code == 303 and "感谢您的评价" in (await harness.client.get(path)).text
    [answer] = await harness.rows("SELECT score, comment FROM survey_answers")
    assert answer == {"score": 4, "comment": "等太久了"}

    [event] = await harness.published("notification.NpsAnswered")
    assert (event.data.score, event.data.comment, event.data.work_order_id) == (4, "等太久了", "wo-1")
    assert (event.data.advisor_id, event.data.technician_ids, event.data.branch_id) == (
        "amy",
        ("tom", "lee"),
        BRANCH,
    )
    detractors = (await harness.get("/v1/surveys", params={"detractor": "true"})).json()["surveys"]
    assert [(s["work_order_id"], s["score"]) for s in detractors] == [("wo-1", 4)]
    funnel = (await harness.get("/v1/surveys/funnel")).json()["rows"]
    assert funnel == [
        {
            "branch_id": BRANCH,
            "advisor_id": "amy",
            "channel": "sms",
            "sent": 1,
            "delivered": 0,
            "opened": 1,
            "started": 1,
            "completed": 1,
            "reminded": 0,
        }
    ]


async def test_a_forged_or_expired_link_is_a_403(harness: Harness) -> None:
    await harness.customer("c1")
    message = await sent_survey(harness, "wo-1", "c1")
    path = survey_path(message["link"])
    payload, _, signature = path.removeprefix("/n/s/").partition(".")
    forged = f"/n/s/{payload}.{signature[:-2]}AA"
    for attempt in (
        await harness.client.get(forged),
        await harness.client.post(forged, data={"score": "10"}),
    ):
        assert attempt.status_code == 403 and "链接无效" in attempt.text
    harness.advance(days=7)
    expired = await harness.client.post(path, data={"score": "10"})
    assert expired.status_code == 403
    assert await harness.rows("SELECT * FROM survey_answers") == []
    assert await harness.published("notification.NpsAnswered") == []


async def test_a_survey_submitted_twice_at_once_stores_one_answer(harness: Harness) -> None:
    await harness.customer("c1")
    path = survey_path((await sent_survey(harness, "wo-1", "c1"))["link"])
    async with table_locked(harness.settings.database_url, "survey_answers") as observer:
        first = asyncio.ensure_future(harness.client.post(path, data={"score": "9"}))
        second = asyncio.ensure_future(harness.client.post(path, data={"score": "2"}))
        await both_waiting(observer, 2)  # both submits are at the database, waiting on the same row
    answers = await asyncio.gather(first, second)
    assert [a.status_code for a in answers] == [303, 303]
    stored = await harness.rows("SELECT score FROM survey_answers")
    assert len(stored) == 1 and stored[0]["score"] in (9, 2)
    [event] = await harness.published("notification.NpsAnswered")
    assert event.data.score == stored[0]["score"]


async def test_an_unanswered_survey_gets_exactly_one_reminder_on_the_next_channel(harness: Harness) -> None:
    await harness.customer("c1", wechat="oWx-c1")
    granted = await harness.post(
        "/v1/wechat/subscriptions", {"customer_id": "c1", "template_id": "PITLANE_NPS_SURVEY", "count": 1}
    )
    assert granted.status_code == 201
    message = await sent_survey(harness, "wo-1", "c1")
    assert message["channel"] == "wechat"

    harness.advance(hours=47, minutes=59)
    await harness.timers_caught_up()
    assert await harness.messages(trigger="nps_survey_reminder") == []
    harness.advance(minutes=1)
    reminder = await harness.until_message(trigger="nps_survey_reminder", status="sent")
    assert reminder["channel"] == "sms" and reminder["link"] == message["link"]

    harness.advance(days=30)
    await harness.timers_caught_up()  # then nothing more, however long the survey stays unanswered
    assert len(await harness.messages(trigger="nps_survey_reminder")) == 1
    [reminded] = await harness.published("notification.NpsSurveyReminded")
    assert reminded.data.channel == "sms"
    [survey] = await harness.rows(
        "SELECT reminded_at, reminder_channel FROM surveys WHERE work_order_id = 'wo-1'"
    )
    assert survey["reminder_channel"] == "sms"


async def test_a_survey_link_expires_after_its_validity(harness: Harness) -> None:
    await harness.customer("c1")
    message = await sent_survey(harness, "wo-1", "c1")
    harness.advance(days=6, hours=23)
    assert (await harness.client.get(survey_path(message["link"]))).status_code == 200
    harness.advance(hours=1)
    assert (await harness.client.get(survey_path(message["link"]))).status_code == 403
