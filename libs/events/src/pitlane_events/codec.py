"""Mapping between envelopes and NATS messages: subject, headers and JSON payload.

The payload is the whole envelope as JSON, so a reader needs nothing but the message body; the headers
repeat what JetStream and tracing need without parsing it: `Nats-Msg-Id` (JetStream's dedupe key, the
event id), `traceparent` (W3C trace context) and the event's type and version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pitlane_events.envelope import Envelope, envelope_of
from pitlane_events.errors import EventError, MalformedEvent
from pitlane_events.model import DomainEvent
from pitlane_events.registry import REGISTRY, EventRegistry

MSG_ID_HEADER = "Nats-Msg-Id"
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"
EVENT_TYPE_HEADER = "Pitlane-Event-Type"
SCHEMA_VERSION_HEADER = "Pitlane-Schema-Version"


@dataclass(frozen=True)
class NatsMessage:
    subject: str
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)


def encode(envelope: Envelope[Any], *, trace_headers: Mapping[str, str] | None = None) -> NatsMessage:
    headers = {
        MSG_ID_HEADER: str(envelope.event_id),
        EVENT_TYPE_HEADER: envelope.event_type,
        SCHEMA_VERSION_HEADER: str(envelope.schema_version),
    }
    if trace_headers:
        headers.update(
            {k: v for k, v in trace_headers.items() if k in (TRACEPARENT_HEADER, TRACESTATE_HEADER)}
        )
    return NatsMessage(envelope.subject, envelope.model_dump_json().encode(), headers)


def decode_json(body: Mapping[str, Any], *, registry: EventRegistry = REGISTRY) -> Envelope[DomainEvent]:
    """Read a stored or received envelope: look up its type, upcast its data to the newest version, validate.

    Raises UnknownEventType for a type no model reads and MalformedEvent for anything that does not fit.
    """
    event_type = body.get("event_type")
    version = body.get("schema_version")
    if not isinstance(event_type, str) or not isinstance(version, int) or isinstance(version, bool):
        raise MalformedEvent(
            event_type if isinstance(event_type, str) else None,
            "event_type (string) and schema_version (integer) are required",
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent(event_type, "data must be a JSON object")
    latest_version, upcast = _upcast(registry, event_type, version, data)
    model = registry.model(event_type, latest_version)
    try:
        return envelope_of(model).model_validate({**body, "schema_version": latest_version, "data": upcast})
    except ValidationError as exc:
        raise MalformedEvent(event_type, _describe(exc)) from None


def decode(
    payload: bytes, *, headers: Mapping[str, str] | None = None, registry: EventRegistry = REGISTRY
) -> Envelope[DomainEvent]:
    """Read a message's envelope (`decode_json`). With the message's headers, an event they name at its type's
    newest version is validated straight from the payload by its model, the JSON parsed once; anything else
    (no headers, an older version to upcast, a payload that does not fit) is read the long way, which says
    what is wrong."""
    if headers is not None and (current := _decode_current(payload, headers, registry)) is not None:
        return current
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(None, f"payload is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise MalformedEvent(None, "payload is not a JSON object")
    return decode_json(body, registry=registry)


def _decode_current(
    payload: bytes, headers: Mapping[str, str], registry: EventRegistry
) -> Envelope[DomainEvent] | None:
    event_type = headers.get(EVENT_TYPE_HEADER)
    if event_type is None:
        return None
    current = registry.current_version(event_type)
    if current is None or headers.get(SCHEMA_VERSION_HEADER) != str(current):
        return None
    try:
        # The envelope's own validator holds its event_type and schema_version to the model's: headers that
        # say otherwise than the payload fail here and are read the long way.
        return envelope_of(registry.model(event_type, current)).model_validate_json(payload)
    except ValidationError:
        return None


def _upcast(
    registry: EventRegistry, event_type: str, version: int, data: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    try:
        return registry.upcast(event_type, version, data)
    except EventError:
        raise
    except Exception as exc:
        # An upcaster is a plain function over old payloads; a payload it cannot lift is malformed,
        # and the reader must learn which event it was, not meet a bare KeyError.
        raise MalformedEvent(event_type, f"cannot upcast from v{version}: {exc!r}") from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
    )
