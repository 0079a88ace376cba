"""The stage on-time rate from a scripted history: visits under two versions of the chain's process and a
branch's own, one under the built-in process (opened with a v1 event, before definitions), one voided, stages
completed on both sides of the period's end in Shanghai. The figures are worked out from the script in plain
Python and held against the answer, for the chain and a branch, delivered in order and twice, shuffled."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import pytest
from analytics_harness import Harness, shanghai

from pitlane_events import Envelope
from pitlane_events.workorder import (
    ProcessRef,
    ProcessScope,
    StageRecord,
    WorkOrderOpened,
    WorkOrderOpenedV1,
    WorkOrderVoided,
)
from pitlane_platform.testing.shop import work_order_completed, work_order_opened

FROM, TO = date(2026, 3, 1), date(2026, 4, 1)
PERIOD = {"from": FROM.isoformat(), "to": TO.isoformat()}
STAGES = (
    "check_in",
    "inspection",
    "dispatch",
    "repair",
    "add_on_approval",
    "quality_check",
    "settlement",
    "hand_over",
)
CHAIN_1 = ProcessRef(scope=ProcessScope.CHAIN, version=1)
CHAIN_2 = ProcessRef(scope=ProcessScope.CHAIN, version=2)
B2_OWN = ProcessRef(scope=ProcessScope.BRANCH, version=1)


@dataclass(frozen=True)
class Passage:
    stage: str
    entered: int  # minutes after the order was opened
    completed: int
    limit: int | None  # the definition's time limit in minutes; None: none
    occurrence: int = 1


@dataclass(frozen=True)
class Visit:
    work_order: str
    branch: str
    process: ProcessRef | None  # None: opened before definitions (a v1 opening event)
    opened_at: datetime
    passages: tuple[Passage, ...]
    voided: bool = False

    @property
    def completed_at(self) -> datetime:
        return self.opened_at + timedelta(minutes=max(p.completed for p in self.passages) + 5)


VISITS = (
    Visit(
        "wA",
        "b1",
        CHAIN_1,
        shanghai(2026, 3, 3, 9),
        (
            Passage("check_in", 0, 0, None),
            Passage("dispatch", 0, 10, 15),
            Passage("repair", 10, 60, None),
            Passage("add_on_approval", 20, 55, 30),  # 35 minutes: late
            Passage("quality_check", 60, 75, 20),
            Passage("settlement", 75, 80, None),
        ),
    ),
    Visit(
        "wB",
        "b1",
        CHAIN_2,
        shanghai(2026, 3, 10, 14),
        (
            Passage("dispatch", 0, 20, 15),  # late
            Passage("quality_check", 30, 50, 20),  # exactly at its deadline: late
            Passage("quality_check", 60, 65, 20, occurrence=2),
        ),
    ),
    Visit("wC", "b2", B2_OWN, shanghai(2026, 3, 12, 10), (Passage("dispatch", 0, 5, 10),)),
    # Voided after it was handed back: no visit, its stages count for nothing.
    Visit("wD", "b1", CHAIN_1, shanghai(2026, 3, 15, 10), (Passage("dispatch", 0, 30, 15),), voided=True),
    # Dispatched at 23:30 on 31 March in Shanghai: March's.
    Visit("wE", "b1", CHAIN_1, shanghai(2026, 3, 31, 23, 20), (Passage("dispatch", 0, 10, 15),)),
    # Dispatched at 00:30 on 1 April: April's.
    Visit("wF", "b1", CHAIN_1, shanghai(2026, 3, 31, 23, 50), (Passage("dispatch", 0, 40, 15),)),
    # The built-in process: no time limits, nothing to count.
    Visit("wG", "b1", None, shanghai(2026, 3, 20, 10), (Passage("dispatch", 0, 90, None),)),
)


def events(harness: Harness) -> list[Envelope[Any]]:
    out: list[Envelope[Any]] = []
    for visit in VISITS:
        customer, vehicle = f"c-{visit.work_order}", f"v-{visit.work_order}"
        opened = work_order_opened(visit.work_order, customer, vehicle)
        opening = (
            WorkOrderOpenedV1.model_validate(opened.model_dump(exclude={"process", "work_categories"}))
            if visit.process is None
            else WorkOrderOpened.model_validate({**opened.model_dump(), "process": visit.process})
        )
        out.append(harness.event_at(visit.opened_at, opening, visit.work_order, branch_id=visit.branch))
        completed = work_order_completed(
            visit.work_order, customer, vehicle, branch_id=visit.branch, completed_at=visit.completed_at
        ).model_copy(
            update={
                "opened_at": visit.opened_at,
                "stages": tuple(
                    StageRecord(
                        stage=p.stage,
                        occurrence=p.occurrence,
                        entered_at=visit.opened_at + timedelta(minutes=p.entered),
                        completed_at=visit.opened_at + timedelta(minutes=p.completed),
                        due_at=None
                        if p.limit is None
                        else visit.opened_at + timedelta(minutes=p.entered + p.limit),
                    )
                    for p in visit.passages
                ),
            }
        )
        out.append(harness.event_at(visit.completed_at, completed, visit.work_order, branch_id=visit.branch))
        if visit.voided:
            voided = WorkOrderVoided(
                work_order_id=visit.work_order, customer_id=customer, reason="录错", manager_id="max"
            )
            out.append(
                harness.event_at(
                    visit.completed_at + timedelta(hours=1), voided, visit.work_order, branch_id=visit.branch
                )
            )
    return out


# ---- the figures, from the script ------------------------------------------------------------------------------


def counted(branch: str | None) -> list[tuple[Visit, Passage]]:
    start, end = shanghai(2026, 3, 1, 0), shanghai(2026, 4, 1, 0)
    return [
        (visit, passage)
        for visit in VISITS
        for passage in visit.passages
        if passage.limit is not None
        and not visit.voided
        and (branch is None or visit.branch == branch)
        and start <= visit.opened_at + timedelta(minutes=passage.completed) < end
    ]


def figures(group: list[Passage]) -> dict[str, Any]:
    on_time = len([p for p in group if p.limit is not None and p.completed - p.entered < p.limit])
    seconds = sorted(Fraction((p.completed - p.entered) * 60) for p in group)
    middle = len(seconds) // 2
    median = seconds[middle] if len(seconds) % 2 else (seconds[middle - 1] + seconds[middle]) / 2
    return {
        "on_time": {
            "numerator": on_time,
            "denominator": len(group),
            "value": (Decimal(on_time) / Decimal(len(group))).quantize(Decimal("0.0001"), ROUND_HALF_EVEN),
        },
        "median_seconds_in_stage": (Decimal(median.numerator) / Decimal(median.denominator)).quantize(
            Decimal("0.1"), ROUND_HALF_EVEN
        ),
    }


def expected(branch: str | None) -> tuple[dict[str, Any], dict[tuple[str, int, str], Any]]:
    per_stage: dict[str, list[Passage]] = defaultdict(list)
    per_definition: dict[tuple[str, int, str], list[Passage]] = defaultdict(list)
    for visit, passage in counted(branch):
        assert visit.process is not None
        per_stage[passage.stage].append(passage)
        per_definition[(visit.process.scope.value, visit.process.version, passage.stage)].append(passage)
    return (
        {stage: figures(group) for stage, group in per_stage.items()},
        {key: figures(group) for key, group in per_definition.items()},
    )


def as_read(view: dict[str, Any]) -> dict[str, Any]:
    rate = view["on_time"]
    median = view["median_seconds_in_stage"]
    return {
        "on_time": {**rate, "value": None if rate["value"] is None else Decimal(rate["value"])},
        "median_seconds_in_stage": None if median is None else Decimal(median),
    }


DELIVERIES = {"in order, once": (1, None), "twice, shuffled across aggregates": (2, random.Random(20261207))}


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_the_stage_on_time_rate_matches_the_figures_worked_out_from_the_script(
    harness: Harness, delivery: str
) -> None:
    copies, shuffle = DELIVERIES[delivery]
    await harness.deliver(events(harness), copies=copies, shuffle=shuffle)

    for branch in (None, "b1", "b2"):
        answer = await harness.kpi(
            "/v1/kpis/stage-on-time", **PERIOD, **({"branch_id": branch} if branch else {})
        )
        per_stage, per_definition = expected(branch)
        assert [view["stage"] for view in answer["stages"]] == [s for s in STAGES if s in per_stage]
        assert {view["stage"]: as_read(view) for view in answer["stages"]} == per_stage
        assert {
            (view["process_scope"], view["process_version"], view["stage"]): as_read(view)
            for view in answer["by_definition"]
        } == per_definition
        rows = counted(branch)
        assert len(answer["passages"]) == len(rows)
        # One WorkOrderCompleted wrote each visit's stages, however often it was delivered.
        assert answer["events"] == len({visit.work_order for visit, _ in rows})

    chain = await harness.kpi("/v1/kpis/stage-on-time", **PERIOD)
    dispatch = next(view for view in chain["stages"] if view["stage"] == "dispatch")
    # wA and wE on time, wB late, wC (b2's own definition) on time; wD voided, wF April's, wG untimed.
    assert (dispatch["on_time"]["numerator"], dispatch["on_time"]["denominator"]) == (3, 4)
    late_qc = next(
        row for row in chain["passages"] if row["work_order_id"] == "wB" and row["occurrence"] == 1
    )
    assert (late_qc["on_time"], late_qc["seconds_in_stage"]) == (False, "1200.0")  # its whole limit: late


async def test_the_drill_down_is_the_timed_stages_as_csv_and_a_segment_of_it_is_refused(
    harness: Harness,
) -> None:
    await harness.deliver(events(harness))

    response = await harness.get(
        "/v1/kpis/stage-on-time", params={**PERIOD, "branch_id": "b2", "format": "csv"}
    )

    assert response.status_code == 200, response.text
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="stage-on-time_b2_2026-03-01_2026-04-01.csv"'
    )
    [row] = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert (row["work_order_id"], row["stage"], row["process_scope"], row["process_version"]) == (
        "wC",
        "dispatch",
        "branch",
        "1",
    )
    assert (row["seconds_in_stage"], row["on_time"]) == ("300.0", "true")
    segment = await harness.post(
        "/v1/segments", {"name": "准时", "kpi": "stage-on-time", "from": PERIOD["from"], "to": PERIOD["to"]}
    )
    assert segment.status_code == 422, segment.text
    assert [error["field"] for error in segment.json()["errors"]] == ["body.kpi"]
