"""Golden payloads (goldens.py): every version of every event, and every earlier shape of a version, as its
producer wrote it; each must still be read by today's code and conform to its committed JSON Schema under an
independent validator (pitlane_platform.testing.event_schemas: jsonschema, 2020-12, formats asserted).

A golden file is what a producer really wrote; it stays forever. If today's models (plus upcasters) cannot
read it, stored events and in-flight messages cannot be read either.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import pytest
from goldens import GOLDENS, Golden, field_paths, shapes_in_history
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from pitlane_events import REGISTRY, decode, decode_json, encode
from pitlane_events.schemas import ENVELOPE_FILE, SCHEMA_DIR, committed_schemas, schema_file
from pitlane_platform.testing.event_schemas import FORMAT_CHECKER, committed_validator, schema_violations

CURRENT = [golden for golden in GOLDENS if golden.is_current]
EARLIER = [golden for golden in GOLDENS if not golden.is_current]
CURRENT_PATHS = {golden.relative_path for golden in CURRENT}
EVERY_VERSION = sorted(
    (event_type, version)
    for event_type in REGISTRY.event_types()
    for version in range(1, REGISTRY.latest_version(event_type) + 1)
)


def ids(golden: Golden) -> str:
    return golden.relative_path


def golden_at(relative_path: str) -> Golden:
    return next(golden for golden in GOLDENS if golden.relative_path == relative_path)


@pytest.mark.parametrize("golden", GOLDENS, ids=ids)
def test_golden_payload_is_named_after_what_it_holds(golden: Golden) -> None:
    assert (golden.body["event_type"], golden.body["schema_version"]) == (golden.event_type, golden.version)


@pytest.mark.parametrize("golden", GOLDENS, ids=ids)
def test_golden_payload_decodes_and_round_trips(golden: Golden) -> None:
    envelope = decode_json(golden.body)

    if golden.is_current and envelope.schema_version == golden.version:
        assert json.loads(envelope.model_dump_json()) == golden.body
    assert decode(encode(envelope).payload) == envelope


@pytest.mark.parametrize(("event_type", "version"), EVERY_VERSION, ids=lambda value: str(value))
def test_every_version_of_every_event_has_a_golden_payload(event_type: str, version: int) -> None:
    """From v1 to the newest: an old version's golden payload is never dropped, even with its model."""
    relative_path = schema_file(event_type, version)

    assert relative_path in CURRENT_PATHS, f"add tests/contract/golden/{relative_path}"


@pytest.mark.parametrize("golden", CURRENT, ids=ids)
def test_golden_payload_fills_every_field(golden: Golden) -> None:
    model = REGISTRY.model(golden.event_type, golden.version)

    absent = set(model.model_fields) - set(golden.body["data"])

    assert not absent, f"{golden.relative_path}: a golden payload shows every field; missing {sorted(absent)}"


@pytest.mark.parametrize("golden", EARLIER, ids=ids)
def test_an_earlier_shape_lacks_fields_of_the_current_one_and_has_no_other(golden: Golden) -> None:
    """Within a version fields are only ever added (optional), so an earlier shape is a proper subset."""
    current = golden_at(golden.current_path)

    earlier, now = field_paths(golden.body["data"]), field_paths(current.body["data"])

    assert earlier < now, f"{golden.relative_path} is no earlier shape of {golden.current_path}"


HISTORY = shapes_in_history()


@pytest.mark.skipif(HISTORY is None, reason="not a git checkout: no earlier shapes to look for")
@pytest.mark.parametrize("golden", CURRENT, ids=ids)
def test_every_earlier_shape_of_a_golden_payload_in_git_history_is_kept(golden: Golden) -> None:
    """A current golden file that gained an optional field, committed or not, leaves its earlier shape behind
    in history: it must be kept as an `.r<K>.json` of its own."""
    assert HISTORY is not None
    current = frozenset(field_paths(golden.body["data"]))
    kept = {frozenset(field_paths(g.body["data"])) for g in GOLDENS if g.current_path == golden.relative_path}

    lost = [
        f"{golden.relative_path} lacked {sorted(current - shape)} at {commit[:10]}: keep that shape, "
        f"`git show {commit[:10]}:tests/contract/golden/{golden.relative_path}` as the next .r<K>.json"
        for commit, shape in HISTORY.get(golden.relative_path, [])
        if shape < current and shape not in kept
    ]

    assert not lost, "\n".join(lost)


@pytest.mark.parametrize("golden", GOLDENS, ids=ids)
def test_golden_payload_conforms_to_its_committed_schemas(golden: Golden) -> None:
    assert schema_violations(golden.body) == []


# --- the validator asserts every format the committed schemas use --------------------------------------

# A value one step from valid, per format: what a producer getting the format wrong would write.
NEAR_MISSES = {
    "date-time": "2025-06-18T09:45:00",  # no offset
    "date": "2025-02-30",
    "time": "09:45:00",  # no offset
    "uuid": "01978a3c1c0070008000000000000001",  # no hyphens
    "email": "someone.example.com",
}


def formats_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from formats_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from formats_in(value)


FORMATS_IN_USE = sorted(
    {fmt for text in committed_schemas(SCHEMA_DIR).values() for fmt in formats_in(json.loads(text))}
)


def test_every_format_the_committed_schemas_use_is_one_the_validator_asserts() -> None:
    """jsonschema skips a format it has no checker for (date-time and time need rfc3339-validator)."""
    assert {"date-time", "date", "uuid"} <= set(FORMATS_IN_USE)
    assert set(FORMATS_IN_USE) <= set(FORMAT_CHECKER.checkers)


@pytest.mark.parametrize("fmt", FORMATS_IN_USE)
def test_a_golden_value_of_each_format_made_wrong_fails_validation_naming_the_format(fmt: str) -> None:
    golden, value = _golden_with_a_value_of(fmt)
    assert fmt in NEAR_MISSES, f"add a near miss for the format {fmt!r}"
    broken = _replaced(deepcopy(golden.body), value, NEAR_MISSES[fmt])

    problems = schema_violations(broken)

    assert any(f"is not a '{fmt}'" in problem for problem in problems), problems


def _golden_with_a_value_of(fmt: str) -> tuple[Golden, str]:
    """A golden payload and one of its values that the validator checks as `fmt`."""
    for golden in CURRENT:
        if values := _values_checked_as(fmt, golden):
            return golden, values[0]
    raise AssertionError(f"no golden payload has a value of format {fmt!r}")


def _values_checked_as(fmt: str, golden: Golden) -> list[str]:
    checked: list[str] = []

    def record(instance: object) -> bool:
        if isinstance(instance, str):
            checked.append(instance)
        return True

    recording = FormatChecker(formats=())
    recording.checks(fmt)(record)
    for relative_path, instance in (
        (ENVELOPE_FILE, golden.body),
        (schema_file(golden.event_type, golden.version), golden.body["data"]),
    ):
        schema = committed_validator(relative_path).schema
        list(Draft202012Validator(schema, format_checker=recording).iter_errors(instance))
    return checked


def _replaced(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {key: _replaced(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, old, new) for item in value]
    return new if value == old else value


def test_a_schema_violation_names_the_file_and_the_field() -> None:
    golden = golden_at("workorder/WorkOrderCompleted.v1.json")
    body = deepcopy(golden.body)
    body["data"]["total_fen"] = "12000"
    del body["correlation_id"]

    problems = schema_violations(body)

    assert any(
        p.startswith("envelope.json at $:") and "'correlation_id' is a required" in p for p in problems
    )
    assert any(p.startswith("workorder/WorkOrderCompleted.v1.json at $.data.total_fen:") for p in problems)


def test_an_event_without_a_committed_schema_is_a_violation() -> None:
    body = {**CURRENT[0].body, "event_type": "workorder.WorkOrderReopened", "schema_version": 1}

    assert schema_violations(body) == [
        "no committed schema workorder/WorkOrderReopened.v1.json for workorder.WorkOrderReopened v1"
    ]


def test_the_validator_is_not_pydantic() -> None:
    """A value pydantic would coerce (a numeric string where an integer goes) is refused: the check does
    not lean on the models that wrote the payloads."""
    golden = golden_at("workorder/WorkOrderCompleted.v1.json")
    body = deepcopy(golden.body)
    body["data"]["total_fen"] = str(body["data"]["total_fen"])

    decode_json(body)  # pydantic's lax mode reads it
    with pytest.raises(ValidationError):
        committed_validator("workorder/WorkOrderCompleted.v1.json").validate(body["data"])
