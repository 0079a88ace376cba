"""notification's HTTP API and what staff see: templates checked before they are saved and previewed with
their SMS segments, the message log and `pitlane messages`, quiet hours per branch, roles, and every
operation held to its OpenAPI document."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from notification_harness import BRANCH, Harness, running, shanghai
from typer.testing import CliRunner

from pitlane_notification.domain import sms
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.cli import app as cli
from pitlane_platform.testing.openapi_check import assert_answers_as_documented, served_on_loopback


async def test_a_template_that_does_not_render_is_refused_naming_the_field_and_nothing_is_saved(
    harness: Harness,
) -> None:
    path = "/v1/templates/nps_survey/sms/zh-CN"
    misspelt = await harness.put(path, {"body": "请评价{{ brnach_name }}：{{ link }}"})
    assert misspelt.status_code == 422
    problem = misspelt.json()
    assert problem["errors"][0]["field"] == "body.body" and "brnach_name" in problem["errors"][0]["message"]
    escape = await harness.put(path, {"body": "{{ link.__class__.__mro__ }}"})
    assert escape.status_code == 422  # the sandbox: no reaching into Python from a template
    assert await harness.rows("SELECT * FROM templates") == []

    saved = await harness.put(
        path,
        {
            "body": "{{ branch_name }}邀您评价本次服务：{{ link }}",
            "provider_template": "SMS_478530001",
            "provider_parameters": {"shop": "{{ branch_name }}", "url": "{{ link }}"},
        },
    )
    assert saved.status_code == 200, saved.text
    listed = (await harness.get("/v1/templates")).json()["templates"]
    [own] = [t for t in listed if (t["key"], t["channel"], t["locale"]) == ("nps_survey", "sms", "zh-CN")]
    assert own["built_in"] is False and own["provider_template"] == "SMS_478530001"
    assert own["updated_by"] == "olivia"


async def test_only_the_owner_edits_templates(harness: Harness) -> None:
    refused = await harness.put("/v1/templates/nps_survey/sms/zh-CN", {"body": "{{ link }}"}, role="manager")
    assert refused.status_code == 403
    anonymous = await harness.client.put("/v1/templates/nps_survey/sms/zh-CN", json={"body": "{{ link }}"})
    assert anonymous.status_code == 401


async def test_a_preview_counts_the_sms_segments_with_the_signature(harness: Harness) -> None:
    short = await harness.post(
        "/v1/templates/preview",
        {"key": "nps_survey", "channel": "sms", "variables": {"link": "https://s.cn/x"}},
    )
    assert short.status_code == 200, short.text
    body = short.json()
    assert body["sms_segments"] == 1 and "https://s.cn/x" in body["body"]
    assert body["characters"] == len(f"【{harness.settings.sms_sign_name}】{body['body']}")

    long_text = "很" * 130
    draft = {"body": "{{ progress }}", "provider_template": "SMS_1"}
    long = await harness.post(
        "/v1/templates/preview",
        {
            "key": "work_order_progress",
            "channel": "sms",
            "draft": draft,
            "variables": {"progress": long_text},
        },
    )
    signed = f"【{harness.settings.sms_sign_name}】{long_text}"
    assert long.json()["sms_segments"] == 3 == sms.segments(signed)  # 136 characters: 67 + 67 + 2
    marketing = await harness.post(
        "/v1/templates/preview", {"key": "campaign", "channel": "sms", "purpose": "marketing"}
    )
    assert marketing.json()["body"].endswith("回T退订")


async def test_quiet_hours_of_a_branch_hold_its_messages_until_they_end(harness: Harness) -> None:
    changed = await harness.put(
        f"/v1/branches/{BRANCH}/quiet-hours", {"starts": "20:00", "ends": "09:30"}, role="manager"
    )
    assert changed.status_code == 200 and changed.json()["default"] is False
    harness.clock.set(shanghai(1, 20, 30))
    await harness.customer("c1")
    await harness.progress("wo-1", "c1", "已找到异响来源")
    queued = await harness.until_message(trigger="work_order_progress")
    assert queued["due_at"] == shanghai(2, 9, 30)
    other_branch = await harness.put(
        "/v1/branches/b2/quiet-hours", {"starts": "20:00", "ends": "09:30"}, role="manager"
    )
    assert other_branch.status_code == 403


async def test_the_message_log_hides_texts_from_analysts_and_other_branches(harness: Harness) -> None:
    await harness.customer("c1")
    await harness.visit("wo-1", "c1")
    await harness.until_message(trigger="work_order_completed", status="sent")
    owner = (await harness.get("/v1/messages")).json()["messages"]
    assert owner[0]["address"] == "+8613812345678" and "沪A12345" in owner[0]["body"]
    analyst = (await harness.get("/v1/messages", role="analyst")).json()["messages"]
    assert len(analyst) == 1
    assert {analyst[0][k] for k in ("address", "subject", "body", "link")} == {None}
    elsewhere = (await harness.get("/v1/messages", role="advisor", branches=("b2",))).json()["messages"]
    assert elsewhere == []
    assert (
        await harness.get(f"/v1/messages/{owner[0]['message_id']}", role="advisor", branches=("b2",))
    ).status_code == 404


async def test_pitlane_messages_prints_what_the_recording_provider_kept(harness: Harness) -> None:
    await harness.customer("c1", name="李娜")
    await harness.visit("wo-1", "c1")
    await harness.until_message(trigger="work_order_completed", status="sent")
    async with served_on_loopback(harness.service.app) as url:
        env = {"PITLANE_JWT_SECRET": harness.settings.jwt_secret.get_secret_value()}
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["messages", "--url", url, "--address", "13812345678"], env=env
        )
    assert result.exit_code == 0, result.output
    assert "sms to 13812345678: 李娜您好" in result.output and "1 message(s)" in result.output


async def test_every_operation_answers_as_its_document_says(harness: Harness) -> None:
    owner = mint_dev_token(harness.settings, role="owner", branches=["*"], sub="openapi-owner")
    advisor = mint_dev_token(harness.settings, role="advisor", branches=[BRANCH], sub="openapi-advisor")
    await assert_answers_as_documented(
        harness.service.app, tokens=[owner, advisor], known_path_parameters={"branch_id": BRANCH}
    )


async def test_a_request_with_a_nul_in_its_path_is_refused_and_still_on_the_audit_trail(
    harness: Harness,
) -> None:
    refused = await harness.get("/v1/messages/ab%00cd")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "path.message_id"
    await harness.service.runtime.audit.flush()  # the note with a NUL would once fail its whole batch
    rows = await harness.rows("SELECT route, resource_ids, status FROM audit_log")
    assert rows == [
        {"route": "/v1/messages/{message_id}", "resource_ids": {"message_id": "ab\\x00cd"}, "status": 422}
    ]


async def test_a_process_whose_due_timers_nobody_fires_is_not_ready(database_url: str, nats_url: str) -> None:
    async with running(database_url, nats_url, run_background=False) as api_only:  # no timer runner here
        assert (await api_only.client.get("/ready")).status_code == 200
        await api_only.rows(
            """
            INSERT INTO timers (kind, key, due_at, payload)
            VALUES ('notification.deliver', 'm-1', %(due)s, '{"batch_key": "none"}') RETURNING 1
            """,
            due=api_only.clock.now() - timedelta(minutes=6),
        )
        answer = await api_only.client.get("/ready")
        assert answer.status_code == 503 and answer.json()["failing_checks"] == ["timers"]
    async with running(database_url, nats_url) as with_runner:  # a process that runs them takes it
        await with_runner.timers_caught_up()
        assert (await with_runner.client.get("/ready")).status_code == 200
