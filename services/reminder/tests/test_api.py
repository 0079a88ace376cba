"""reminder's HTTP API: rules per chain and per branch (checked, and re-evaluating what they reach), tasks by
role, and every operation held to its OpenAPI document."""

from __future__ import annotations

from datetime import date

from reminder_harness import BRANCH, Harness, shanghai

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.testing.openapi_check import assert_answers_as_documented
from platform_flow import wait_until


async def test_a_rule_change_re_evaluates_the_vehicles_it_reaches(harness: Harness) -> None:
    await harness.vehicle("v1", "c1")
    await harness.reading("v1", 34_000, shanghai(2025, 9, 3, 16))
    await harness.visit("wo-1", "v1", "c1", km=40_000, completed_at=shanghai(2026, 1, 1, 16))
    assert (await harness.maintenance("v1"))["due_on"] == date(2026, 4, 11)

    changed = await harness.put(
        f"/v1/branches/{BRANCH}/rules/maintenance", {"km_interval": 10_000}, role="manager"
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["maintenance"]["km_interval"] == 10_000 and changed.json()["overridden"] == [
        "maintenance"
    ]

    async def moved() -> bool:
        # 10,000 km at 50 km a day is 200 days; six months (1 July) now comes first.
        return (await harness.maintenance("v1"))["due_on"] == date(2026, 7, 1)

    await wait_until(moved)
    reminder = await harness.maintenance("v1")
    assert reminder["due_by"] == "time" and reminder["due_mileage_km"] == 50_000
    chain = (await harness.get("/v1/rules")).json()
    assert chain["maintenance"]["km_interval"] == 5000  # the chain's own setting is untouched


async def test_a_rule_that_does_not_hold_is_refused_naming_the_field_and_nothing_changes(
    harness: Harness,
) -> None:
    for body, field in (
        ({"ladder": [7, 0]}, "body.ladder"),
        ({"km_interval": 0}, "body.km_interval"),
        ({"mode": "sometimes"}, "body.mode"),
        ({"kmm_interval": 10}, "body.kmm_interval"),
    ):
        refused = await harness.put("/v1/rules/maintenance", body)
        assert refused.status_code == 422, body
        assert refused.json()["errors"][0]["field"] == field
    assert await harness.rows("SELECT * FROM rules") == []
    assert (
        await harness.put("/v1/rules/maintenance", {"km_interval": 7500}, role="manager")
    ).status_code == 403
    other = await harness.put("/v1/branches/b2/rules/maintenance", {"km_interval": 7500}, role="manager")
    assert other.status_code == 403


async def test_every_operation_answers_as_its_document_says(harness: Harness) -> None:
    owner = mint_dev_token(harness.settings, role="owner", branches=["*"], sub="openapi-owner")
    advisor = mint_dev_token(harness.settings, role="advisor", branches=[BRANCH], sub="openapi-advisor")
    await assert_answers_as_documented(
        harness.service.app, tokens=[owner, advisor], known_path_parameters={"branch_id": BRANCH}
    )
