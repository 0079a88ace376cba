"""The committed JSON Schemas are a promise to readers: the code may not break them.

Breaking change → the test names the event, version and field, and the fix is a new version with an
upcaster. A compatible difference → "run `make schemas`" to commit the regenerated file.
"""

from __future__ import annotations

import json

import pytest

import pitlane_events  # noqa: F401  (registers every event)
from pitlane_events.compat import breaking
from pitlane_events.schemas import (
    SCHEMA_DIR,
    Schema,
    committed_schemas,
    compare_file,
    generated_schemas,
    render,
)

COMMITTED = committed_schemas(SCHEMA_DIR)
GENERATED = generated_schemas()


def problem_with(relative_path: str, committed_text: str, generated: Schema | None) -> str | None:
    """Why the committed schema at `relative_path` no longer holds, or None if it does."""
    if generated is None:
        return f"{relative_path}: no registered model generates it any more; its readers are left without one"
    if committed_text == render(generated):
        return None
    findings = compare_file(relative_path, json.loads(committed_text), generated)
    if broken := breaking(findings):
        listing = "\n".join(f"  {finding}" for finding in broken)
        return f"the code breaks readers of the committed schema (add a version + upcaster):\n{listing}"
    return f"{relative_path} differs from the code compatibly; run `make schemas` and commit it"


@pytest.mark.parametrize("relative_path", sorted(COMMITTED), ids=str)
def test_committed_schema_still_holds(relative_path: str) -> None:
    problem = problem_with(relative_path, COMMITTED[relative_path], GENERATED.get(relative_path))
    assert problem is None, problem


@pytest.mark.parametrize("relative_path", sorted(GENERATED), ids=str)
def test_every_registered_event_has_a_committed_schema(relative_path: str) -> None:
    assert relative_path in COMMITTED, f"no committed schema for {relative_path}; run `make schemas`"


# The test above must be able to fail: feed it a committed schema the code has drifted from.

COMPLETED = "workorder/WorkOrderCompleted.v1.json"


def test_breaking_drift_fails_naming_the_event_and_field() -> None:
    drifted = json.loads(COMMITTED[COMPLETED])
    drifted["properties"]["total_fen"]["type"] = "string"  # the code now says integer

    problem = problem_with(COMPLETED, render(drifted), GENERATED[COMPLETED])

    assert problem is not None
    assert "workorder.WorkOrderCompleted v1 $.total_fen: type changed" in problem


def test_compatible_drift_asks_to_regenerate() -> None:
    drifted = json.loads(COMMITTED[COMPLETED])
    drifted["properties"]["total_fen"]["description"] = "An older wording."

    problem = problem_with(COMPLETED, render(drifted), GENERATED[COMPLETED])

    assert problem is not None
    assert "run `make schemas`" in problem


def test_schema_without_a_model_fails() -> None:
    problem = problem_with("workorder/WorkOrderReopened.v1.json", "{}\n", None)

    assert problem is not None
    assert "WorkOrderReopened" in problem
