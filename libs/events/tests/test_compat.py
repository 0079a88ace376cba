"""The compatibility checker, exercised on a real committed schema with one deliberate change each."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from pitlane_events.compat import Finding, breaking, compare
from pitlane_events.schemas import SCHEMA_DIR

SUBJECT = "workorder.WorkOrderCompleted v1"
COMMITTED: dict[str, Any] = json.loads(
    (SCHEMA_DIR / "workorder/WorkOrderCompleted.v1.json").read_text("utf-8")
)


def changed(edit: Callable[[dict[str, Any]], None]) -> list[Finding]:
    """Findings when the code's schema is the committed one with `edit` applied."""
    generated = copy.deepcopy(COMMITTED)
    edit(generated)
    return compare(COMMITTED, generated, subject=SUBJECT)


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [str(finding) for finding in findings]
    return findings[0]


def test_identical_schemas_have_no_findings() -> None:
    assert compare(COMMITTED, copy.deepcopy(COMMITTED), subject=SUBJECT) == []


def test_changing_a_fields_type_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["total_fen"]["type"] = "string"

    finding = only(changed(edit))

    assert finding.breaking
    assert (finding.path, finding.change) == ("$.total_fen", "type changed: integer → string")
    assert (
        str(finding)
        == "workorder.WorkOrderCompleted v1 $.total_fen: type changed: integer → string [BREAKING]"
    )


def test_removing_a_field_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        del schema["properties"]["plate"]
        schema["required"].remove("plate")

    finding = only(changed(edit))

    assert finding.breaking
    assert (finding.path, finding.change) == ("$.plate", "field removed")


def test_adding_a_required_field_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["bay_id"] = {"type": "string", "description": "The bay."}
        schema["required"].append("bay_id")

    finding = only(changed(edit))

    assert finding.breaking
    assert (finding.path, finding.change) == ("$.bay_id", "new required field")


def test_adding_an_optional_field_is_compatible() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["bay_id"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}

    finding = only(changed(edit))

    assert not finding.breaking
    assert (finding.path, finding.change) == ("$.bay_id", "optional field added")


def test_changing_a_description_is_compatible() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["total_fen"]["description"] = "Reworded."

    finding = only(changed(edit))

    assert not finding.breaking
    assert finding.change == "description changed"


def test_an_optional_field_becoming_required_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["required"].append("coupon_code")

    assert [(f.path, f.change) for f in breaking(changed(edit))] == [
        ("$.coupon_code", "optional field became required")
    ]


def test_a_required_field_becoming_nullable_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["plate"] = {"anyOf": [schema["properties"]["plate"], {"type": "null"}]}

    finding = only(breaking(changed(edit)))

    assert finding.path == "$.plate"
    assert finding.change.startswith("type changed: string → string | null")


def test_a_type_change_inside_a_referenced_definition_is_found_where_it_is_used() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["$defs"]["LineItem"]["properties"]["unit_price_fen"]["type"] = "number"

    finding = only(changed(edit))

    assert finding.breaking
    assert finding.path == "$.line_items[*].unit_price_fen"


def test_changing_array_items_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["technician_ids"]["items"] = {"type": "integer"}

    finding = only(breaking(changed(edit)))

    assert finding.path == "$.technician_ids[*]"


def test_narrowing_a_format_is_breaking() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["properties"]["opened_at"]["format"] = "date"

    finding = only(changed(edit))

    assert finding.breaking
    assert finding.change == "type changed: format date-time → date"


@pytest.mark.parametrize(
    ("edit_enum", "change"),
    [
        (lambda values: values.append("warranty"), 'enum values added: "warranty"'),
        (lambda values: values.remove("sublet"), 'enum values removed: "sublet"'),
    ],
    ids=["added", "removed"],
)
def test_adding_or_removing_enum_values_is_breaking(
    edit_enum: Callable[[list[str]], None], change: str
) -> None:
    def edit(schema: dict[str, Any]) -> None:
        edit_enum(schema["$defs"]["LineCategory"]["enum"])

    findings = breaking(changed(edit))

    assert {finding.change for finding in findings} == {change}
    assert "$.line_items[*].category" in {finding.path for finding in findings}


@pytest.mark.parametrize(
    ("edit_field", "change"),
    [
        (lambda field: field.update(minimum=1), "constraint tightened: minimum 0 → 1"),
        (lambda field: field.pop("minimum"), "constraint loosened: minimum 0 → absent"),
        (lambda field: field.update(maximum=10**9), "constraint tightened: maximum absent → 1000000000"),
    ],
    ids=["raised-minimum", "dropped-minimum", "new-maximum"],
)
def test_changing_constraints_is_breaking(edit_field: Callable[[dict[str, Any]], None], change: str) -> None:
    def edit(schema: dict[str, Any]) -> None:
        edit_field(schema["properties"]["total_fen"])

    finding = only(changed(edit))

    assert finding.breaking
    assert (finding.path, finding.change) == ("$.total_fen", change)


def test_renaming_a_shared_definition_without_changing_it_is_compatible() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["$defs"]["SettledLine"] = schema["$defs"].pop("LineItem")
        schema["properties"]["line_items"]["items"]["$ref"] = "#/$defs/SettledLine"

    assert breaking(changed(edit)) == []
