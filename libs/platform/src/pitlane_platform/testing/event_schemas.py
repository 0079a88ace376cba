"""Published events checked against their committed JSON Schemas by an independent, standard validator.

Our pydantic models wrote the payloads, so they cannot be the judge of them. These checks use the `jsonschema`
library's JSON Schema 2020-12 validator with format assertion on (`FORMAT_CHECKER`; rfc3339-validator is
installed, without which jsonschema silently skips `date-time` and `time`), against the files committed under
`libs/events/schemas/`: the envelope's schema for the whole message, the schema of its (event type, version)
for `data`. A test's own assertions (dev dependency group, as schemathesis for openapi_check):

    problems = schema_violations(json.loads(message.data))        # [] when the envelope conforms
    problems = message_violations(subject, payload, headers)        # ... and its subject and headers agree
    count = await assert_stream_messages_conform(js, ["WORKORDER"])  # every message a stream holds
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from pitlane_events.catalog import HEADERS_SCHEMA
from pitlane_events.codec import EVENT_TYPE_HEADER, MSG_ID_HEADER, SCHEMA_VERSION_HEADER
from pitlane_events.envelope import subject_for
from pitlane_events.schemas import ENVELOPE_FILE, SCHEMA_DIR, schema_file
from pitlane_platform.testing.jetstream import stream_messages

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
# The problems an assertion lists before it says how many more there are.
SHOWN_PROBLEMS = 20


@cache
def committed_validator(relative_path: str, schema_dir: Path = SCHEMA_DIR) -> Draft202012Validator:
    """A validator of the committed schema at `relative_path`, itself checked against the 2020-12 meta-schema."""
    schema = json.loads((schema_dir / relative_path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def schema_violations(body: Any, *, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Every way `body`, a published envelope as parsed JSON, breaks the committed envelope schema or the
    committed schema of its event type and version; empty when it conforms."""
    problems = _errors(committed_validator(ENVELOPE_FILE, schema_dir), body, ENVELOPE_FILE, "$")
    if not isinstance(body, dict):
        return problems
    event_type, version = body.get("event_type"), body.get("schema_version")
    if not isinstance(event_type, str) or not isinstance(version, int) or "." not in event_type:
        return problems  # the envelope's schema has said what is wrong
    relative_path = schema_file(event_type, version)
    if not (schema_dir / relative_path).is_file():
        return [*problems, f"no committed schema {relative_path} for {event_type} v{version}"]
    validator = committed_validator(relative_path, schema_dir)
    return problems + _errors(validator, body.get("data"), relative_path, "$.data")


def message_violations(
    subject: str, payload: bytes, headers: Mapping[str, str] | None, *, schema_dir: Path = SCHEMA_DIR
) -> list[str]:
    """`schema_violations` of a NATS message's payload, and whether its subject and headers say what the
    envelope says (the headers against the catalog's `NatsHeaders` schema)."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"payload is not JSON: {exc}"]
    problems = schema_violations(body, schema_dir=schema_dir)
    if problems or not isinstance(body, dict):
        return problems
    header_values = dict(headers or {})
    problems += _errors(
        Draft202012Validator(HEADERS_SCHEMA, format_checker=FORMAT_CHECKER), header_values, "headers", "$"
    )
    expected_subject = subject_for(body["event_type"], body["schema_version"], body.get("branch_id"))
    if subject != expected_subject:
        problems.append(f"subject {subject!r}, but the envelope belongs on {expected_subject!r}")
    for header, value in (
        (MSG_ID_HEADER, body["event_id"]),
        (EVENT_TYPE_HEADER, body["event_type"]),
        (SCHEMA_VERSION_HEADER, str(body["schema_version"])),
    ):
        if header in header_values and header_values[header] != value:
            problems.append(f"header {header} is {header_values[header]!r}, the envelope says {value!r}")
    return problems


async def assert_stream_messages_conform(js: Any, streams: Iterable[str]) -> int:
    """Check every message stored in the given producer streams (`stream_name(service)`; not the dead-letter
    or replay streams, whose messages are not envelopes) with `message_violations`; raise an AssertionError
    listing what breaks, else return how many messages were checked."""
    checked = 0
    failing = 0
    problems: list[str] = []
    for stream in streams:
        for message in await stream_messages(js, stream):
            checked += 1
            found = message_violations(message.subject, message.data, message.headers)
            failing += bool(found)
            problems += [f"{stream} #{message.seq} {message.subject}: {problem}" for problem in found]
    if problems:
        shown = "\n".join(problems[:SHOWN_PROBLEMS])
        more = f"\n… and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise AssertionError(f"{failing} of {checked} messages do not conform:\n{shown}{more}")
    return checked


def _errors(validator: Draft202012Validator, instance: Any, schema_name: str, root: str) -> list[str]:
    return [
        f"{schema_name} at {root}{error.json_path[1:]}: {_describe(error)}"
        for error in sorted(validator.iter_errors(instance), key=lambda error: error.json_path)
    ]


def _describe(error: ValidationError) -> str:
    """The error, with the reasons of each alternative when it failed every branch of an anyOf/oneOf (an
    optional field's schema): `None is not of type 'string'` alone would hide the format that failed."""
    reasons = sorted({f"{branch.message} ({branch.validator})" for branch in _leaves(error.context or [])})
    return f"{error.message} [{'; '.join(reasons)}]" if reasons else f"{error.message} ({error.validator})"


def _leaves(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error
