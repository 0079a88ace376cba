"""Consumer-driven contracts: what each consumer reads (pitlane_platform.testing.consumer_reads, committed as
consumers.json) held against the producer's committed schema of the newest version and against the golden
payload of every version and shape, upcast as a consumer receives it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

from pitlane_events import EventRegistry
from pitlane_events.compat import breaking, compare, resolve
from pitlane_platform.testing.consumer_reads import ELEMENT, ConsumerReads
from pitlane_platform.testing.event_schemas import FORMAT_CHECKER

Json = dict[str, Any]


def schema_problems(read: ConsumerReads, committed: Json, consumers_view: Json) -> list[str]:
    """Where the producer's committed schema of the newest version fails what the consumer reads: a field it
    does not have, or one whose type, constraints or required-ness differ from the consumer's model
    (`consumers_view`, the schema of the model the handler receives), by the rules of pitlane_events.compat."""
    problems = [
        f"{read.consumer} reads `{field}` of {read.event_type} v{read.version}, which its committed schema lacks"
        for field in read.fields
        if schema_at(committed, field) is None
    ]
    subject = f"{read.event_type} v{read.version}"
    for finding in breaking(compare(committed, consumers_view, subject=subject)):
        if any(_concerns(finding.path, field) for field in read.fields):
            problems.append(f"{read.consumer} reads a field the producer describes otherwise: {finding}")
    return problems


def golden_problems(
    read: ConsumerReads, body: Json, committed_newest: Json, registry: EventRegistry
) -> list[str]:
    """Where a golden envelope, lifted to the newest version as the consumer receives it, fails a field the
    consumer reads: absent though the newest schema requires it, or not valid under it (formats asserted)."""
    version, data = registry.upcast(body["event_type"], body["schema_version"], body["data"])
    if version != read.version:
        return [
            f"{read.event_type} v{body['schema_version']} upcasts to v{version}, the consumer reads v{read.version}"
        ]
    problems = []
    for field in read.fields:
        schema = schema_at(committed_newest, field)
        if schema is None:
            continue  # schema_problems reports it
        validator = Draft202012Validator(
            {**schema, "$defs": committed_newest.get("$defs", {})}, format_checker=FORMAT_CHECKER
        )
        for location, value in values_at(data, field):
            if value is _ABSENT:
                if is_required(committed_newest, location):
                    problems.append(
                        f"{read.consumer} reads `{field}`: `{location}` is absent after upcasting"
                    )
                continue
            problems += [
                f"{read.consumer} reads `{field}`: `{location}` {error.message}"
                for error in validator.iter_errors(value)
            ]
    return problems


# --- field paths in schemas and payloads ----------------------------------------------------------------------

_ABSENT = object()


def split(field: str) -> list[str]:
    """`line_items[*].name` → ["line_items", "[*]", "name"]."""
    return [part for segment in field.split(".") for part in _with_elements(segment)]


def schema_at(schema: Json, field: str) -> Json | None:
    """The schema of `field` within `schema` (following `$ref`s, list items and optional fields' anyOf), or
    None when the schema has no such field."""
    node: Json | None = schema
    for part in split(field):
        if node is None:
            return None
        node = _child_schema(node, part, schema)
    return node


def is_required(schema: Json, location: str) -> bool:
    """Whether the field at a concrete `location` (`line_items[0].name`) is required where it sits."""
    parts = split(_generic(location))
    node: Json | None = schema
    for index, part in enumerate(parts):
        if node is None:
            return False
        if index == len(parts) - 1:
            return any(part in branch.get("required", ()) for branch in _branches(node, schema, "object"))
        node = _child_schema(node, part, schema)
    return False


def values_at(data: Any, field: str) -> Iterator[tuple[str, Any]]:
    """Each (concrete location, value) of `field` in a payload's data; `_ABSENT` where a field is missing."""
    yield from _values(data, split(field), "")


def _values(value: Any, parts: list[str], location: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield location, value
        return
    part, rest = parts[0], parts[1:]
    if part == ELEMENT:
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _values(item, rest, f"{location}[{index}]")
        return
    if not isinstance(value, dict):
        return  # a null optional parent: nothing below it to read
    child = f"{location}.{part}" if location else part
    if part not in value:
        yield child, _ABSENT
        return
    yield from _values(value[part], rest, child)


def _child_schema(node: Json, part: str, root: Json) -> Json | None:
    if part == ELEMENT:
        arrays = _branches(node, root, "array")
        return arrays[0].get("items", {}) if arrays else None
    for branch in _branches(node, root, "object"):
        if part in branch.get("properties", {}):
            return dict(branch["properties"][part])
    return None


def _branches(node: Json, root: Json, json_type: str) -> list[Json]:
    """The resolved schemas of `json_type` that `node` allows: itself, or its anyOf/oneOf branches."""
    node = resolve(node, root)
    candidates = node.get("anyOf") or node.get("oneOf") or [node]
    resolved = [resolve(branch, root) for branch in candidates]
    return [branch for branch in resolved if branch.get("type") == json_type]


def _with_elements(segment: str) -> list[str]:
    name, _, rest = segment.partition("[")
    return [name, *([ELEMENT] * rest.count("]"))] if rest else [name]


def _generic(location: str) -> str:
    """`line_items[0].name` → `line_items[*].name`."""
    out, inside = "", False
    for char in location:
        if char == "[":
            out, inside = out + "[*]", True
        elif char == "]":
            inside = False
        elif not inside:
            out += char
    return out


def _concerns(finding_path: str, field: str) -> bool:
    """Whether a compat finding at `$.a.b` is about `field`: the field itself, what lies under it, or a
    field it lies under (a type change of its parent)."""
    path = finding_path.removeprefix("$").removeprefix(".")
    return (
        path == field
        or path.startswith((f"{field}.", f"{field}["))
        or field.startswith((f"{path}.", f"{path}["))
    )


def differences(committed: Json, generated: Json) -> list[str]:
    """How the consumers' reads the code shows differ from the committed file, one line each."""
    lines = []
    for consumer in sorted(committed.keys() | generated.keys()):
        was, now = committed.get(consumer, {}), generated.get(consumer, {})
        for event_type in sorted(was.keys() | now.keys()):
            if event_type not in was:
                lines.append(f"{consumer} now reads {event_type}: {', '.join(now[event_type]['reads'])}")
            elif event_type not in now:
                lines.append(f"{consumer} no longer subscribes to {event_type}")
            else:
                before, after = was[event_type], now[event_type]
                if before["version"] != after["version"]:
                    lines.append(
                        f"{consumer} reads {event_type} v{after['version']}, declared v{before['version']}"
                    )
                lines += [
                    f"{consumer} reads `{field}` of {event_type}, which is not declared"
                    for field in after["reads"]
                    if field not in before["reads"]
                ]
                lines += [
                    f"{consumer} no longer reads `{field}` of {event_type}"
                    for field in before["reads"]
                    if field not in after["reads"]
                ]
    return lines
