"""Golden payloads: one realistic envelope per published (type, version), decoded with today's code.

A golden file is what a producer really wrote; it stays forever. If today's models (plus upcasters) cannot
read it, stored events and in-flight messages cannot be read either.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pitlane_events import REGISTRY, decode, decode_json, encode
from pitlane_events.schemas import schema_file

GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_FILES = sorted(path.relative_to(GOLDEN_DIR).as_posix() for path in GOLDEN_DIR.rglob("*.json"))
REGISTERED = sorted(schema_file(model.event_type, model.schema_version) for model in REGISTRY.models())


def load(relative_path: str) -> dict:
    return json.loads((GOLDEN_DIR / relative_path).read_text(encoding="utf-8"))


@pytest.mark.parametrize("relative_path", GOLDEN_FILES, ids=str)
def test_golden_payload_decodes_and_round_trips(relative_path: str) -> None:
    body = load(relative_path)

    envelope = decode_json(body)

    assert schema_file(body["event_type"], body["schema_version"]) == relative_path
    if envelope.schema_version == body["schema_version"]:
        assert json.loads(envelope.model_dump_json()) == body
    assert decode(encode(envelope).payload) == envelope


@pytest.mark.parametrize("relative_path", REGISTERED, ids=str)
def test_every_registered_event_has_a_golden_payload(relative_path: str) -> None:
    assert relative_path in GOLDEN_FILES, f"add tests/contract/golden/{relative_path}"


@pytest.mark.parametrize("relative_path", GOLDEN_FILES, ids=str)
def test_golden_payload_fills_every_field(relative_path: str) -> None:
    body = load(relative_path)
    model = REGISTRY.model(body["event_type"], body["schema_version"])

    absent = set(model.model_fields) - set(body["data"])

    assert not absent, f"{relative_path}: a golden payload shows every field; missing {sorted(absent)}"
