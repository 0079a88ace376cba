"""Is the schema the code generates still readable by whoever relied on the committed one?

A committed schema is a promise about one (event type, version) to two kinds of reader: consumers that read
what producers publish under it today, and replays that read everything ever stored under it. So a change is
breaking when it lets a producer send what a consumer was told never comes (a removed or newly optional
field, a widened type, a new enum value, a loosened constraint) and when it makes stored payloads invalid
(a new required field, a narrowed type, a removed enum value, a tightened constraint). Only adding an
optional field (readers ignore unknown fields) and changing descriptions keep the version; anything else is
a new version with an upcaster.

The comparison is structural: `$ref`s are followed into each document's own `$defs`, so renaming a shared
type changes nothing while changing it is reported at every field that uses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

DESCRIPTIVE_KEYWORDS = frozenset({"title", "description", "examples", "$comment", "deprecated"})
TYPE_KEYWORDS = frozenset({"type", "format", "const", "enum"})
LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"})
UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"})
OTHER_CONSTRAINTS = frozenset({"pattern", "multipleOf", "uniqueItems"})
STRUCTURE_KEYWORDS = frozenset(
    {"$ref", "$defs", "properties", "required", "items", "prefixItems", "additionalProperties"}
)
UNIONS = ("anyOf", "oneOf")
CONSTRAINTS = LOWER_BOUNDS | UPPER_BOUNDS | OTHER_CONSTRAINTS
HANDLED_KEYWORDS = (
    DESCRIPTIVE_KEYWORDS | TYPE_KEYWORDS | CONSTRAINTS | STRUCTURE_KEYWORDS | set(UNIONS) | {"default"}
)


@dataclass(frozen=True)
class Finding:
    """One difference between a committed schema and the generated one."""

    subject: str
    """What the schema is of, e.g. `workorder.WorkOrderCompleted v1`."""
    path: str
    """JSON path of the field, e.g. `$.line_items[*].quantity`."""
    change: str
    """What changed, e.g. `field removed`."""
    breaking: bool
    """Whether readers of the committed schema break."""

    def __str__(self) -> str:
        verdict = "BREAKING" if self.breaking else "compatible"
        return f"{self.subject} {self.path}: {self.change} [{verdict}]"


def compare(committed: Schema, generated: Schema, *, subject: str) -> list[Finding]:
    """Every difference between `committed` and `generated`, classified for readers of `committed`."""
    return list(_Comparison(subject, committed, generated).findings())


def breaking(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.breaking]


class _Comparison:
    def __init__(self, subject: str, old_root: Schema, new_root: Schema) -> None:
        self._subject = subject
        self._old_root = old_root
        self._new_root = new_root
        # $refs under comparison on the current path: a recursive type is compared once, not forever.
        self._active: set[tuple[str, str]] = set()

    def findings(self) -> Iterator[Finding]:
        yield from self._node(self._old_root, self._new_root, "$")

    def _finding(self, path: str, change: str, *, is_breaking: bool = True) -> Finding:
        return Finding(self._subject, path, change, is_breaking)

    def _node(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        refs = (old.get("$ref", ""), new.get("$ref", ""))
        if all(refs) and refs in self._active:
            return
        self._active.add(refs)
        try:
            yield from self._resolved(resolve(old, self._old_root), resolve(new, self._new_root), path)
        finally:
            self._active.discard(refs)

    def _resolved(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        yield from self._descriptions(old, new, path)
        if _union(old) or _union(new):
            yield from self._unions(old, new, path)
            return
        type_changes = list(self._types(old, new, path))
        yield from type_changes
        if any(finding.change.startswith("type changed") for finding in type_changes):
            return  # what lies below a changed type cannot be compared field by field
        yield from self._constraints(old, new, path)
        yield from self._default(old, new, path)
        yield from self._properties(old, new, path)
        yield from self._items(old, new, path)
        yield from self._other_keywords(old, new, path)

    def _descriptions(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        for keyword in sorted(DESCRIPTIVE_KEYWORDS):
            if old.get(keyword) != new.get(keyword):
                yield self._finding(path, f"{keyword} changed", is_breaking=False)

    def _unions(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        old_branches, new_branches = _branches(old), _branches(new)
        if len(old_branches) != len(new_branches) or _union(old) != _union(new):
            yield self._finding(path, f"type changed: {self._describe_old(old)} → {self._describe_new(new)}")
            return
        for old_branch, new_branch in zip(old_branches, new_branches, strict=True):
            yield from self._node(old_branch, new_branch, path)
        yield from self._default(old, new, path)

    def _types(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        if _types(old) != _types(new) or old.get("const") != new.get("const"):
            yield self._finding(path, f"type changed: {self._describe_old(old)} → {self._describe_new(new)}")
            return
        if old.get("format") != new.get("format"):
            yield self._finding(path, f"type changed: format {old.get('format')} → {new.get('format')}")
        old_enum, new_enum = old.get("enum"), new.get("enum")
        if old_enum is not None and new_enum is not None:
            if added := _missing_from(new_enum, old_enum):
                yield self._finding(path, f"enum values added: {', '.join(added)}")
            if removed := _missing_from(old_enum, new_enum):
                yield self._finding(path, f"enum values removed: {', '.join(removed)}")
        elif new_enum is not None:
            yield self._finding(path, f"type changed: restricted to {_values(new_enum)}")
        elif old_enum is not None:
            yield self._finding(path, f"type changed: no longer restricted to {_values(old_enum)}")

    def _constraints(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        for keyword in sorted(CONSTRAINTS):
            before, after = old.get(keyword), new.get(keyword)
            if before != after:
                direction = _direction(keyword, before, after)
                change = f"constraint {direction}: {keyword} {_bound(before)} → {_bound(after)}"
                yield self._finding(path, change)

    def _default(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        # Only a default both sides have: a default appearing or vanishing is a required-ness change,
        # which the parent object reports. A changed default changes what old payloads without it mean.
        if "default" in old and "default" in new and old["default"] != new["default"]:
            yield self._finding(path, f"default changed: {_show(old['default'])} → {_show(new['default'])}")

    def _properties(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name in old_fields.keys() - new_fields.keys():
            yield self._finding(_child(path, name), "field removed")
        for name in sorted(new_fields.keys() - old_fields.keys()):
            if name in new_required:
                yield self._finding(_child(path, name), "new required field")
            else:
                yield self._finding(_child(path, name), "optional field added", is_breaking=False)
        for name in [name for name in old_fields if name in new_fields]:
            field_path = _child(path, name)
            if name in new_required and name not in old_required:
                yield self._finding(field_path, "optional field became required")
            if name in old_required and name not in new_required:
                yield self._finding(field_path, "required field became optional (readers may get nothing)")
            yield from self._node(old_fields[name], new_fields[name], field_path)
        yield from self._sub_schema(old, new, "additionalProperties", f"{path}.*")

    def _items(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        yield from self._sub_schema(old, new, "items", f"{path}[*]")
        old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            yield self._finding(path, f"tuple length changed: {len(old_prefix)} → {len(new_prefix)}")
            return
        for index, (before, after) in enumerate(zip(old_prefix, new_prefix, strict=True)):
            yield from self._node(before, after, f"{path}[{index}]")

    def _sub_schema(self, old: Schema, new: Schema, keyword: str, path: str) -> Iterator[Finding]:
        before, after = old.get(keyword), new.get(keyword)
        if isinstance(before, dict) and isinstance(after, dict):
            yield from self._node(before, after, path)
        elif before != after:
            yield self._finding(path, f"{keyword} changed: {_show(before)} → {_show(after)}")

    def _other_keywords(self, old: Schema, new: Schema, path: str) -> Iterator[Finding]:
        for keyword in sorted((old.keys() | new.keys()) - HANDLED_KEYWORDS):
            if keyword.startswith("x-"):
                continue  # vendor annotations never change what a payload may hold
            if old.get(keyword) != new.get(keyword):
                yield self._finding(path, f"schema keyword {keyword!r} changed")

    def _describe_old(self, node: Schema) -> str:
        return _describe(node, self._old_root)

    def _describe_new(self, node: Schema) -> str:
        return _describe(node, self._new_root)


def resolve(node: Schema, root: Schema) -> Schema:
    """The node with its `$ref` replaced by the definition; keywords beside the `$ref` win."""
    ref = node.get("$ref")
    if ref is None:
        return node
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    return resolve({**target, **siblings}, root)


def _union(node: Schema) -> str | None:
    return next((keyword for keyword in UNIONS if keyword in node), None)


def _branches(node: Schema) -> list[Schema]:
    keyword = _union(node)
    return node[keyword] if keyword else [node]


def _types(node: Schema) -> frozenset[str]:
    declared = node.get("type", ())
    return frozenset([declared] if isinstance(declared, str) else declared)


def _describe(node: Schema, root: Schema) -> str:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    if _union(node):
        return " | ".join(_describe(branch, root) for branch in _branches(node))
    if "const" in node:
        return f"const {_show(node['const'])}"
    if "enum" in node:
        return f"one of {_values(node['enum'])}"
    kind = "/".join(sorted(_types(node))) or "any"
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"array of {_describe(node['items'], root)}"
    return f"{kind} ({node['format']})" if "format" in node else kind


def _direction(keyword: str, before: Any, after: Any) -> str:
    if keyword in LOWER_BOUNDS | UPPER_BOUNDS:
        if before is None or after is None:
            return "tightened" if before is None else "loosened"
        raised = after > before
        return "tightened" if raised == (keyword in LOWER_BOUNDS) else "loosened"
    if keyword == "pattern" and (before is None or after is None):
        return "tightened" if before is None else "loosened"
    return "changed"


def _missing_from(values: list[Any], reference: list[Any]) -> list[str]:
    return [_show(value) for value in values if value not in reference]


def _values(values: list[Any]) -> str:
    return ", ".join(_show(value) for value in values)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _bound(value: Any) -> str:
    return "absent" if value is None else _show(value)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}"
