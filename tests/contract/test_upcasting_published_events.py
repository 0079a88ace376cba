"""The published events that went to a second version: every stored v1 payload is read as v2, saying what
the past was under the new shape (golden v1 payloads, as producers wrote them)."""

from __future__ import annotations

import json
from pathlib import Path

from pitlane_events import decode_json
from pitlane_events.reminder import FollowUpKind, FollowUpTaskCreated
from pitlane_events.workorder import BUILT_IN_PROCESS, WorkOrderOpened

GOLDEN = Path(__file__).parent / "golden"


def golden(relative_path: str) -> dict:
    return json.loads((GOLDEN / relative_path).read_text(encoding="utf-8"))


def test_an_order_opened_before_process_definitions_ran_the_built_in_process() -> None:
    body = golden("workorder/WorkOrderOpened.v1.json")

    envelope = decode_json(body)

    assert envelope.schema_version == 2
    assert isinstance(envelope.data, WorkOrderOpened)
    assert envelope.data.process == BUILT_IN_PROCESS
    assert envelope.data.work_categories == ()
    assert envelope.data.model_dump(exclude={"process", "work_categories"}) == WorkOrderOpened.model_validate(
        {**body["data"], "process": BUILT_IN_PROCESS}
    ).model_dump(exclude={"process", "work_categories"})


def test_a_task_made_before_stage_overdue_tasks_is_a_customer_follow_up_for_no_role() -> None:
    body = golden("reminder/FollowUpTaskCreated.v1.json")

    envelope = decode_json(body)

    assert envelope.schema_version == 2
    assert isinstance(envelope.data, FollowUpTaskCreated)
    assert envelope.data.kind is FollowUpKind.DECLINED_ADD_ON
    assert envelope.data.responsible_role is None
    assert envelope.data.stage is None
    assert envelope.data.task_id == body["data"]["task_id"]
