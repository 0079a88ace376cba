"""The committed JSON Schemas: one per (event type, version) plus the envelope, generated from the models.

`libs/events/schemas/<service>/<EventType>.v<N>.json` holds the schema of an event's `data`;
`libs/events/schemas/envelope.json` the envelope around it. The files are written deterministically (sorted
keys, two-space indent, UTF-8, trailing newline) so a diff shows only real changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitlane_events.compat import Finding, compare
from pitlane_events.envelope import Envelope
from pitlane_events.model import DomainEvent
from pitlane_events.registry import REGISTRY, EventRegistry

Schema = dict[str, Any]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
ENVELOPE_FILE = "envelope.json"
ENVELOPE_SUBJECT = "envelope"
_EVENT_FILE = re.compile(
    r"^(?P<service>[a-z][a-z0-9-]*)/(?P<name>[A-Z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)\.json$"
)


def event_schema(model: type[DomainEvent]) -> Schema:
    """The JSON Schema of an event's `data`, as a reader validates it."""
    return model.model_json_schema(mode="validation")


def envelope_schema() -> Schema:
    """The envelope's JSON Schema; `data` is any object, described by the event's own schema."""
    schema = Envelope[DomainEvent].model_json_schema(mode="validation")
    schema["$defs"].pop("DomainEvent")
    schema["title"] = "Envelope"
    schema["properties"]["data"] = {
        "description": "The event's payload; its schema is <service>/<EventType>.v<schema_version>.json.",
        "type": "object",
    }
    return schema


def schema_file(event_type: str, version: int) -> str:
    """Path of an event's schema, relative to the schema directory."""
    service, _, name = event_type.partition(".")
    return f"{service}/{name}.v{version}.json"


def subject_of(relative_path: str) -> str:
    """What a schema file is of: `workorder.WorkOrderCompleted v1`, or `envelope`."""
    if relative_path == ENVELOPE_FILE:
        return ENVELOPE_SUBJECT
    match = _EVENT_FILE.match(relative_path)
    if match is None:
        raise ValueError(f"{relative_path}: not a schema file name (<service>/<EventType>.v<N>.json)")
    return f"{match['service']}.{match['name']} v{match['version']}"


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generated_schemas(registry: EventRegistry = REGISTRY) -> dict[str, Schema]:
    """Every schema the code defines, keyed by its path relative to the schema directory."""
    schemas = {ENVELOPE_FILE: envelope_schema()}
    for model in registry.models():
        schemas[schema_file(model.event_type, model.schema_version)] = event_schema(model)
    return dict(sorted(schemas.items()))


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """The text of every schema file under `directory`, keyed by its relative path."""
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*.json"))
    }


def write_schemas(directory: Path = SCHEMA_DIR, registry: EventRegistry = REGISTRY) -> list[str]:
    """Write the schemas that differ from the code; return their relative paths.

    A committed schema without a model is left alone: deleting it would hide that a published version
    lost its reader. `check_schemas` reports it instead.
    """
    written = []
    for relative_path, schema in generated_schemas(registry).items():
        path = directory / relative_path
        text = render(schema)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(relative_path)
    return written


@dataclass
class SchemaReport:
    """How the committed schemas and the code's schemas differ."""

    breaking: list[Finding] = field(default_factory=list)
    """Changes that break readers of a committed schema; need a new version instead."""
    compatible: list[Finding] = field(default_factory=list)
    """Changes readers tolerate; the committed file only needs regenerating."""
    stale: list[str] = field(default_factory=list)
    """Files whose text differs from the code's schema (whatever the reason)."""
    missing: list[str] = field(default_factory=list)
    """Registered (type, version)s with no committed schema."""
    orphaned: list[str] = field(default_factory=list)
    """Committed schemas no registered model generates any more."""

    @property
    def ok(self) -> bool:
        return not (self.breaking or self.stale or self.missing or self.orphaned)

    def lines(self) -> list[str]:
        return [
            *(f"breaking change: {finding}" for finding in self.breaking),
            *(f"orphaned schema (its model is gone; readers of it break): {path}" for path in self.orphaned),
            *(f"missing schema (run `make schemas`): {path}" for path in self.missing),
            *(f"stale schema (run `make schemas`): {path}" for path in self.stale),
            *(f"  compatible change: {finding}" for finding in self.compatible),
        ]


def compare_file(relative_path: str, committed: Schema, generated: Schema) -> list[Finding]:
    return compare(committed, generated, subject=subject_of(relative_path))


def check_schemas(directory: Path = SCHEMA_DIR, registry: EventRegistry = REGISTRY) -> SchemaReport:
    committed = committed_schemas(directory)
    generated = generated_schemas(registry)
    report = SchemaReport(
        missing=sorted(generated.keys() - committed.keys()),
        orphaned=sorted(committed.keys() - generated.keys()),
    )
    for relative_path in sorted(committed.keys() & generated.keys()):
        if committed[relative_path] == render(generated[relative_path]):
            continue
        report.stale.append(relative_path)
        old_schema = json.loads(committed[relative_path])
        for finding in compare_file(relative_path, old_schema, generated[relative_path]):
            (report.breaking if finding.breaking else report.compatible).append(finding)
    return report
