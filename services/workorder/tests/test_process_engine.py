"""The process engine against real PostgreSQL and NATS on an injected clock: a chain's and a branch's process
definitions in versions, the rules an order's version enforces (409s naming the rule), the stages on the
board with their deadlines, and a stage past its limit reported once (WorkOrderStageOverdue) whatever fires
its deadline how often."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from workorder_harness import BRANCH, Harness, advance, contend, rows, stored

from pitlane_events.workorder import (
    BUILT_IN_PROCESS,
    ProcessRef,
    ProcessScope,
    ProcessStage,
    WorkOrderStageOverdue,
)
from pitlane_platform.scheduling.timers import Timer, TimerContext
from pitlane_workorder.domain.process import StagePassage
from pitlane_workorder.service_layer.stage_deadlines import DEADLINE, StageDeadlines

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"front bumper" * 40
CHAIN_PROCESS = "/v1/process-definition"
BRANCH_PROCESS = f"/v1/branches/{BRANCH}/process-definition"


async def put(h: Harness, path: str, body: Any, *, role: str = "owner") -> httpx.Response:
    return await h.client.put(path, json=body, headers=h.auth(role, sub="olga"))


async def define(h: Harness, path: str, **stages: dict[str, Any]) -> dict[str, Any]:
    answer = await put(h, path, {"stages": stages})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def walk_in(h: Harness, **extra: Any) -> httpx.Response:
    return await h.post(
        f"/v1/branches/{BRANCH}/work-orders",
        {
            "customer_id": "c-9",
            "vehicle_id": "v-9",
            "plate": "沪B54321",
            "mileage_km": 1,
            "complaint": "异响",
            **extra,
        },
    )


async def opened(h: Harness, **extra: Any) -> str:
    answer = await walk_in(h, **extra)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["work_order_id"])


async def detail(h: Harness, order: str) -> dict[str, Any]:
    answer = await h.get(h.order_path(order))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def card(h: Harness, order: str) -> dict[str, Any]:
    board = await h.get(f"/v1/branches/{BRANCH}/board")
    assert board.status_code == 200, board.text
    return next(
        c for column in board.json()["columns"].values() for c in column if c["work_order_id"] == order
    )


async def timers_caught_up(*harnesses: Harness) -> None:
    """Every timer due by the clock's "now" has fired, in every running instance."""
    for h in harnesses:
        await h.timers_caught_up()


async def overdue_events(h: Harness) -> list[dict[str, Any]]:
    return await stored(h, "WorkOrderStageOverdue")


# Definitions ------------------------------------------------------------------------------------------------


async def test_a_chain_definition_that_requires_a_photo_at_check_in_refuses_a_check_in_without_one(
    branch: Harness,
) -> None:
    h = branch
    definition = await define(h, CHAIN_PROCESS, check_in={"photos_required": True})
    assert (definition["scope"], definition["version"], definition["created"]) == ("chain", 1, True)
    before = await h.counts()

    refused = await walk_in(h)

    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["title"] == "Process rule broken"
    assert problem["rule"] == "check_in.photos_required"
    assert (
        "check_in.photos_required" in problem["detail"]
        and "chain's process definition v1" in problem["detail"]
    )
    assert await h.counts() == before  # nothing stored, nothing queued
    assert await rows(h, "SELECT 1 FROM work_orders") == []

    photo = await h.upload(JPEG)
    order = await opened(h, photo_hashes=[photo])
    assert (await detail(h, order))["process"] == {"scope": "chain", "version": 1}
    [opening] = await stored(h, "WorkOrderOpened", order)
    assert (opening["schema_version"], opening["data"]["process"]) == (2, {"scope": "chain", "version": 1})


async def test_a_branch_definition_replaces_the_chains_at_that_branch_and_names_its_own_rules(
    branch: Harness,
) -> None:
    h = branch
    await define(h, CHAIN_PROCESS, check_in={"photos_required": True})
    own = await define(h, BRANCH_PROCESS, inspection={"mandatory": True, "photos_required": True})
    assert (own["scope"], own["branch_id"], own["version"]) == ("branch", BRANCH, 1)
    effective = await h.get(BRANCH_PROCESS)
    assert (effective.json()["scope"], effective.json()["version"]) == ("branch", 1)

    without_inspection = await walk_in(h)
    assert without_inspection.status_code == 409, without_inspection.text
    assert without_inspection.json()["rule"] == "inspection.mandatory"
    without_photo = await walk_in(h, inspection=[{"item": "前刹车片", "status": "urgent"}])
    assert without_photo.json()["rule"] == "inspection.photos_required"

    photo = await h.upload(JPEG)
    # No photo of the car: the chain's rule is not the branch's.
    order = await opened(h, inspection=[{"item": "前刹车片", "status": "urgent", "photo_hashes": [photo]}])
    assert (await detail(h, order))["process"] == {"scope": "branch", "version": 1}


async def test_an_order_opened_under_version_1_keeps_it_after_version_2_is_published(branch: Harness) -> None:
    h = branch
    await define(h, CHAIN_PROCESS, dispatch={"time_limit_minutes": 15})
    first = await opened(h)
    second_version = await define(
        h, CHAIN_PROCESS, dispatch={"time_limit_minutes": 5}, repair={"photos_required": True}
    )
    assert second_version["version"] == 2
    second = await opened(h)

    assert (await detail(h, first))["process"] == {"scope": "chain", "version": 1}
    assert (await detail(h, second))["process"] == {"scope": "chain", "version": 2}
    # Each order's deadline is its own version's.
    opened_at = h.clock.now()
    assert (await card(h, first))["stages"][0]["due_at"] == (
        opened_at + timedelta(minutes=15)
    ).isoformat().replace("+00:00", "Z")
    assert (await card(h, second))["stages"][0]["due_at"] == (
        opened_at + timedelta(minutes=5)
    ).isoformat().replace("+00:00", "Z")
    # And its rules: version 2 wants a photo with each progress step, version 1 does not.
    for order in (first, second):
        assigned = await h.command(order, "technicians", {"technician_id": "tom"})
        assert assigned.status_code == 200, assigned.text
    assert (
        await h.command(first, "progress", {"text": "拆下前轮"}, role="technician", sub="tom")
    ).status_code == 200
    refused = await h.command(second, "progress", {"text": "拆下前轮"}, role="technician", sub="tom")
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "repair.photos_required"
    assert "chain's process definition v2" in refused.json()["detail"]
    # Version 1 stays readable as it was.
    v1 = await h.get("/v1/process-definition/versions/1")
    assert v1.json()["stages"]["repair"]["photos_required"] is False
    assert v1.json()["stages"]["dispatch"]["time_limit_minutes"] == 15


async def test_without_a_definition_orders_run_the_built_in_process_with_no_deadline(branch: Harness) -> None:
    h = branch
    built_in = await h.get(CHAIN_PROCESS)
    assert (built_in.json()["scope"], built_in.json()["version"]) == ("built_in", 0)
    assert built_in.json()["stages"]["inspection"]["mandatory"] is False
    assert not any(
        stage["photos_required"] or stage["time_limit_minutes"]
        for stage in built_in.json()["stages"].values()
    )

    order = await opened(h)

    assert (await detail(h, order))["process"] == BUILT_IN_PROCESS.model_dump(mode="json")
    [stage] = (await card(h, order))["stages"]
    assert (stage["stage"], stage["due_at"], stage["overdue"]) == ("dispatch", None, False)
    assert await rows(h, "SELECT 1 FROM timers WHERE kind = %s", DEADLINE) == []


async def test_a_definition_that_skips_qc_or_times_an_instant_stage_is_a_422_naming_the_setting(
    branch: Harness,
) -> None:
    h = branch
    cases = [
        ({"quality_check": {"mandatory": False}}, "body.stages.quality_check.mandatory"),
        ({"check_in": {"time_limit_minutes": 5}}, "body.stages.check_in.time_limit_minutes"),
        ({"settlement": {"photos_required": True}}, "body.stages.settlement.photos_required"),
        ({"dispatch": {"time_limit_minutes": 0}}, "body.stages.dispatch.time_limit_minutes"),
        ({"repair": {"responsible_role": "driver"}}, "body.stages.repair.responsible_role"),
    ]
    for stages, field in cases:
        answer = await put(h, CHAIN_PROCESS, {"stages": stages})
        assert answer.status_code == 422, answer.text
        assert [error["field"] for error in answer.json()["errors"]] == [field]
    assert await rows(h, "SELECT 1 FROM process_definitions") == []
    # Only the owner defines the chain's; a manager the branch's.
    assert (await put(h, CHAIN_PROCESS, {}, role="manager")).status_code == 403
    assert (await put(h, BRANCH_PROCESS, {}, role="advisor")).status_code == 403


async def test_the_same_definition_put_twice_is_one_version(branch: Harness) -> None:
    h = branch
    first = await define(h, BRANCH_PROCESS, dispatch={"time_limit_minutes": 15})
    again = await define(h, BRANCH_PROCESS, dispatch={"time_limit_minutes": 15})
    assert (first["version"], first["created"]) == (1, True)
    assert (again["version"], again["created"]) == (1, False)
    changed = await define(h, BRANCH_PROCESS, dispatch={"time_limit_minutes": 20})
    assert (changed["version"], changed["created"]) == (2, True)


async def test_two_definitions_published_at_once_take_one_version_each(branch: Harness) -> None:
    """Guard: the scope's lock (adapters/process_definitions.publish). Without it both read "no version yet"
    and both insert version 1: one of them fails on the primary key."""
    h = branch
    answers = await contend(
        h,
        "process_definitions",
        put(h, CHAIN_PROCESS, {"stages": {"dispatch": {"time_limit_minutes": 10}}}),
        put(h, CHAIN_PROCESS, {"stages": {"dispatch": {"time_limit_minutes": 20}}}),
    )
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    assert sorted(answer.json()["version"] for answer in answers) == [1, 2]
    stored_versions = await rows(
        h, "SELECT version, stages->'dispatch'->>'time_limit_minutes' FROM process_definitions"
    )
    assert sorted(stored_versions) == sorted(
        (answer.json()["version"], str(answer.json()["stages"]["dispatch"]["time_limit_minutes"]))
        for answer in answers
    )


# Stages, deadlines and overdue ------------------------------------------------------------------------------


async def test_the_board_shows_time_in_stage_and_the_deadline(branch: Harness) -> None:
    h = branch
    await define(
        h, BRANCH_PROCESS, dispatch={"time_limit_minutes": 15}, add_on_approval={"time_limit_minutes": 30}
    )
    order = await opened(h)
    opened_at = h.clock.now()
    advance(h, minutes=10)

    [dispatch] = (await card(h, order))["stages"]
    assert dispatch["stage"] == "dispatch" and dispatch["responsible_role"] == "advisor"
    assert dispatch["seconds_in_stage"] == 600.0
    assert datetime.fromisoformat(dispatch["due_at"]) == opened_at + timedelta(minutes=15)
    assert dispatch["overdue"] is False
    advance(h, minutes=5)
    assert (await card(h, order))["stages"][0]["overdue"] is True

    await h.command(order, "technicians", {"technician_id": "tom"})
    proposal = await h.command(
        order,
        "add-ons",
        {"item": "更换刹车片", "category": "parts", "price_fen": 48_000, "reason": "剩余2mm"},
        role="technician",
        sub="tom",
    )
    stages = {stage["stage"]: stage for stage in (await card(h, order))["stages"]}
    assert set(stages) == {"repair", "add_on_approval"}  # side by side
    assert stages["add_on_approval"]["add_on_id"] == proposal.json()["add_on_id"]
    assert datetime.fromisoformat(stages["add_on_approval"]["due_at"]) == h.clock.now() + timedelta(
        minutes=30
    )
    assert stages["repair"]["due_at"] is None


async def test_a_stage_past_its_limit_is_reported_once_across_two_runners_and_a_refire(
    branch: Harness,
) -> None:
    h = branch
    await define(h, BRANCH_PROCESS, dispatch={"time_limit_minutes": 15})
    on_time = await opened(h)
    late = await opened(h)
    opened_at = h.clock.now()
    advance(h, minutes=14)
    assert (await h.command(on_time, "technicians", {"technician_id": "tom"})).status_code == 200

    async with h.replica() as second:
        advance(h, minutes=1)  # 15 minutes: the late order's dispatch is due now
        await timers_caught_up(h, second)
        advance(h, minutes=60)
        await timers_caught_up(h, second)

    [overdue] = await overdue_events(h)
    event = WorkOrderStageOverdue.model_validate(overdue["data"])
    assert event.work_order_id == late
    assert (event.stage, event.occurrence, event.time_limit_minutes) == (ProcessStage.DISPATCH, 1, 15)
    assert (event.entered_at, event.due_at) == (opened_at, opened_at + timedelta(minutes=15))
    assert (event.responsible_role.value, event.responsible_staff_id) == ("advisor", "amy")
    assert event.process == ProcessRef(scope=ProcessScope.BRANCH, version=1)
    assert overdue["occurred_at"] == (opened_at + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    assert overdue["aggregate_version"] == 1 and overdue["aggregate_id"] != late
    # The order's own stream is untouched: the advisor's If-Match still holds.
    assert (await detail(h, late))["version"] == 1

    # The deadline's handler run again for the same passage (a timer fired twice): nothing more.
    passage = StagePassage(ProcessStage.DISPATCH, 1, opened_at)
    payload = {"branch_id": BRANCH, "work_order_id": late, "stage": "dispatch", "occurrence": 1}
    timer = Timer(0, DEADLINE, passage.id(late), opened_at + timedelta(minutes=15), payload, 0)
    async with h.service.runtime.driver.transaction() as unit:
        await StageDeadlines(chain_id=h.settings.chain_id).on_deadline(
            TimerContext(timer, unit, h.clock.now())
        )
    assert len(await overdue_events(h)) == 1
    published = await h.published(at_least=1)
    assert [e.data.work_order_id for e in published if isinstance(e.data, WorkOrderStageOverdue)] == [late]


# Dispatch suggestions ------------------------------------------------------------------------------------------


async def suggestions(h: Harness, order: str) -> dict[str, Any]:
    answer = await h.get(h.order_path(order, "dispatch-suggestions"))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def ranked(suggestion: dict[str, Any]) -> list[tuple[str, int, int, int | None]]:
    return [
        (t["technician_id"], t["skills_matched"], t["open_orders"], t["minutes_left_on_shift"])
        for t in suggestion["technicians"]
    ]


async def test_dispatch_suggestions_rank_by_shift_skill_load_and_time_left_and_the_choice_records_them(
    branch: Harness,
) -> None:
    h = branch
    added = await h.post(
        f"/v1/branches/{BRANCH}/staff",
        {"staff_id": "kim", "display_name": "金师傅", "role": "technician"},
        role="manager",
        sub="max",
    )
    assert added.status_code == 201, added.text
    for staff_id, skills in (("tom", ["labour", "parts"]), ("lee", ["labour"]), ("kim", ["parts", "labour"])):
        answer = await put(
            h, f"/v1/branches/{BRANCH}/staff/{staff_id}/skills", {"skills": skills}, role="manager"
        )
        assert answer.status_code == 200, answer.text
    # Monday: tom works the morning, lee the day; kim has no shift (the branch keeps shifts: not at work).
    shifts = [
        {"staff_id": "tom", "starts_at": "08:00", "ends_at": "12:00", "breaks": []},
        {"staff_id": "lee", "starts_at": "08:00", "ends_at": "18:00", "breaks": []},
    ]
    rostered = await put(h, f"/v1/branches/{BRANCH}/shifts/2026-11-16", {"shifts": shifts}, role="manager")
    assert rostered.status_code == 204, rostered.text
    advance(h, hours=1)  # 09:00 in Shanghai

    first = await opened(h, work_categories=["labour"])
    shown = await suggestions(h, first)
    # Equal skills and load: whoever has the longer shift left first; kim, the best skilled, is not at work.
    assert ranked(shown) == [("lee", 1, 0, 540), ("tom", 1, 0, 180), ("kim", 1, 0, 0)]
    assert shown["work_needed"] == ["labour"]

    # The advisor still chooses: tom, second in the ranking, which is recorded with the choice.
    chosen = await h.command(
        first, "technicians", {"technician_id": "tom", "suggestion_token": shown["suggestion_token"]}
    )
    assert chosen.status_code == 200, chosen.text
    [assigned] = await stored(h, "TechnicianAssigned", first)
    recorded = assigned["data"]["suggestion"]
    assert [t["technician_id"] for t in recorded["ranking"]] == ["lee", "tom", "kim"]
    assert recorded["work_needed"] == ["labour"]
    assert datetime.fromisoformat(recorded["suggested_at"]) == h.clock.now()

    parts_job = await opened(h, work_categories=["parts"])
    # Skills before load: tom can do parts and has one order in hand; lee cannot.
    assert ranked(await suggestions(h, parts_job))[:2] == [("tom", 1, 1, 180), ("lee", 0, 0, 540)]
    labour_job = await opened(h, work_categories=["labour"])
    labour_shown = await suggestions(h, labour_job)
    # Load before time left: lee has none in hand.
    assert ranked(labour_shown)[:2] == [("lee", 1, 0, 540), ("tom", 1, 1, 180)]

    # A suggestion is this order's, and fresh.
    wrong_order = await h.command(
        parts_job,
        "technicians",
        {"technician_id": "tom", "suggestion_token": labour_shown["suggestion_token"]},
    )
    assert wrong_order.status_code == 422, wrong_order.text
    assert [e["field"] for e in wrong_order.json()["errors"]] == ["body.suggestion_token"]
    advance(h, minutes=61)
    stale = await h.command(
        labour_job,
        "technicians",
        {"technician_id": "lee", "suggestion_token": labour_shown["suggestion_token"]},
    )
    assert stale.status_code == 422, stale.text
    assert await stored(h, "TechnicianAssigned", labour_job) == []
    without = await h.command(labour_job, "technicians", {"technician_id": "lee"})
    assert without.status_code == 200, without.text
    [plain] = await stored(h, "TechnicianAssigned", labour_job)
    assert plain["data"]["suggestion"] is None


async def test_on_a_day_without_shifts_at_a_branch_that_keeps_them_nobody_is_at_work(branch: Harness) -> None:
    h = branch
    monday = [{"staff_id": "tom", "starts_at": "08:00", "ends_at": "12:00", "breaks": []}]
    rostered = await put(h, f"/v1/branches/{BRANCH}/shifts/2026-11-16", {"shifts": monday}, role="manager")
    assert rostered.status_code == 204, rostered.text
    advance(h, hours=25)  # Tuesday 09:00 in Shanghai: nobody has a shift today

    shown = await suggestions(h, await opened(h, work_categories=["labour"]))

    assert shown["technicians"], shown
    # Known not to be at work (0 minutes left), not unknown (null) as at a branch planning by bays alone.
    assert [t["minutes_left_on_shift"] for t in shown["technicians"]] == [0] * len(shown["technicians"]), (
        shown
    )


async def test_only_technicians_carry_skills(branch: Harness) -> None:
    h = branch
    advisor = await put(h, f"/v1/branches/{BRANCH}/staff/amy/skills", {"skills": ["labour"]}, role="manager")
    assert advisor.status_code == 422, advisor.text
    assert [e["field"] for e in advisor.json()["errors"]] == ["path.staff_id"]
    nobody = await put(h, f"/v1/branches/{BRANCH}/staff/zed/skills", {"skills": ["labour"]}, role="manager")
    assert nobody.status_code == 404, nobody.text
    assert (await h.get(f"/v1/branches/{BRANCH}/staff/tom/skills")).json() == {
        "staff_id": "tom",
        "skills": [],
    }


async def test_a_visit_records_every_stage_with_its_deadline_and_a_late_second_qc_is_reported_for_the_manager(
    branch: Harness,
) -> None:
    h = branch
    await define(
        h,
        BRANCH_PROCESS,
        dispatch={"time_limit_minutes": 15},
        add_on_approval={"time_limit_minutes": 30},
        quality_check={"time_limit_minutes": 20, "responsible_role": "manager"},
    )
    t0 = h.clock.now()
    order = await opened(h, inspection=[{"item": "左前轮胎", "status": "ok"}])

    async def at(minutes: int, command: str, body: Any = None, role: str = "advisor") -> httpx.Response:
        h.clock.set(t0 + timedelta(minutes=minutes))
        answer = await h.command(
            order, command, body, role=role, sub="tom" if role == "technician" else "max"
        )
        assert answer.status_code == 200, answer.text
        return answer

    await at(10, "technicians", {"technician_id": "tom"})
    await at(20, "progress", {"text": "拆检"}, "technician")
    proposal = (
        await at(
            25,
            "add-ons",
            {"item": "刹车片", "category": "parts", "price_fen": 48_000, "reason": "2mm"},
            "technician",
        )
    ).json()
    decision = {
        "decision": "approved",
        "method": "in_person",
        "estimate_revision_seen": proposal["estimate_revision"],
    }
    await at(40, f"add-ons/{proposal['add_on_id']}/decision", decision)
    await at(60, "progress", {"text": "完工", "work_done": True}, "technician")
    await at(70, "quality-check", {"passed": False, "reasons": ["异响仍在"]}, "manager")
    await at(90, "progress", {"text": "返工完成", "work_done": True}, "technician")
    h.clock.set(t0 + timedelta(minutes=110))  # the second QC's deadline
    await h.timers_caught_up()
    [overdue] = await overdue_events(h)
    assert overdue["data"]["stage"] == "quality_check" and overdue["data"]["occurrence"] == 2
    assert (overdue["data"]["responsible_role"], overdue["data"]["responsible_staff_id"]) == ("manager", None)
    await at(115, "quality-check", {"passed": True}, "manager")
    line = {
        "item_code": "LAB",
        "name": "工时",
        "category": "labour",
        "quantity": "1",
        "unit_price_fen": 10_000,
        "line_total_fen": 10_000,
    }
    await at(
        120,
        "settlement",
        {"line_items": [line], "payments": [{"method": "cash", "amount_fen": 10_000}], "total_fen": 10_000},
    )
    await at(125, "completion")

    [completed] = await stored(h, "WorkOrderCompleted", order)

    def minutes(value: str | None) -> float | None:
        return None if value is None else (datetime.fromisoformat(value) - t0).total_seconds() / 60

    passed = [
        (
            s["stage"],
            s["occurrence"],
            minutes(s["entered_at"]),
            minutes(s["completed_at"]),
            minutes(s["due_at"]),
        )
        for s in completed["data"]["stages"]
    ]
    assert passed == [
        ("check_in", 1, 0, 0, None),
        ("inspection", 1, 0, 0, None),
        ("dispatch", 1, 0, 10, 15),
        ("repair", 1, 10, 60, None),
        ("add_on_approval", 1, 25, 40, 55),
        ("quality_check", 1, 60, 70, 80),
        ("repair", 2, 70, 90, None),
        ("quality_check", 2, 90, 115, 110),
        ("settlement", 1, 115, 120, None),
        ("hand_over", 1, 120, 125, None),
    ]
    assert completed["data"]["stages"][4]["add_on_id"] == proposal["add_on_id"]
    # Only the late QC was reported; the others ended before their deadlines and their timers went with them.
    assert len(await overdue_events(h)) == 1
    assert (
        await rows(
            h, "SELECT 1 FROM timers WHERE kind = %s AND fired_at IS NULL AND cancelled_at IS NULL", DEADLINE
        )
        == []
    )
