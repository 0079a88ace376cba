"""The event catalog, generated from the models: `docs/events/asyncapi.json` (AsyncAPI 3.0) and a readable
`docs/events/README.md`. Never edit either by hand; `pitlane-events catalog --write` regenerates them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import version as package_version
from itertools import groupby
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from pitlane_events.codec import (
    EVENT_TYPE_HEADER,
    MSG_ID_HEADER,
    SCHEMA_VERSION_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
)
from pitlane_events.envelope import CHAIN_WIDE_BRANCH_TOKEN, Actor, stream_name, stream_subjects
from pitlane_events.model import DomainEvent
from pitlane_events.registry import REGISTRY, EventRegistry
from pitlane_events.schemas import envelope_schema

Schema = dict[str, Any]

CATALOG_DIR = Path(__file__).resolve().parents[4] / "docs" / "events"
ASYNCAPI_FILE = "asyncapi.json"
README_FILE = "README.md"
COMPONENT_REF = "#/components/schemas/{model}"
ENVELOPE_COMPONENT = "Envelope"
HEADERS_COMPONENT = "NatsHeaders"
BRANCH_PARAMETER = (
    f"The branch's id, or `{CHAIN_WIDE_BRANCH_TOKEN}` for events of chain-wide aggregates "
    "(customers, vehicles)."
)

HEADERS_SCHEMA: Schema = {
    "type": "object",
    "description": "NATS headers every event carries, so JetStream and tracing need not parse the payload.",
    "properties": {
        MSG_ID_HEADER: {"type": "string", "format": "uuid", "description": "The event id; the dedupe key."},
        EVENT_TYPE_HEADER: {"type": "string", "description": "The event type, as in the envelope."},
        SCHEMA_VERSION_HEADER: {"type": "string", "description": "The schema version, as in the envelope."},
        TRACEPARENT_HEADER: {"type": "string", "description": "W3C trace context of the publishing span."},
        TRACESTATE_HEADER: {"type": "string", "description": "W3C trace state, when the tracer sets one."},
    },
    "required": [MSG_ID_HEADER, EVENT_TYPE_HEADER, SCHEMA_VERSION_HEADER],
}


def catalog_files(registry: EventRegistry = REGISTRY) -> dict[str, str]:
    """The text of every catalog file, keyed by file name."""
    components = _component_schemas(registry)
    return {
        ASYNCAPI_FILE: json.dumps(asyncapi(registry, components), indent=2, ensure_ascii=False) + "\n",
        README_FILE: readme(registry, components),
    }


def write_catalog(directory: Path = CATALOG_DIR, registry: EventRegistry = REGISTRY) -> list[str]:
    """Write the catalog files that are out of date; return their names."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in catalog_files(registry).items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(name)
    return written


def stale_catalog(directory: Path = CATALOG_DIR, registry: EventRegistry = REGISTRY) -> list[str]:
    """Names of the catalog files that are missing or differ from what the code generates."""
    return [
        name
        for name, text in catalog_files(registry).items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]


# --- AsyncAPI -------------------------------------------------------------------------------------------


def asyncapi(registry: EventRegistry, components: dict[str, Schema]) -> Schema:
    models = list(registry.models())
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Pitlane domain events",
            "version": package_version("pitlane-events"),
            "description": (
                "Every event Pitlane's services publish on NATS JetStream. Generated from libs/events; "
                "do not edit. Each message is the JSON envelope with the event in `data`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "jetstream": {
                "host": "{nats_host}",
                "protocol": "nats",
                "description": "The cluster's NATS JetStream; one stream per producing service.",
                "variables": {"nats_host": {"description": "host:port of NATS_URL."}},
            }
        },
        "channels": {_id(model): _channel(model) for model in models},
        "operations": {f"publish_{_id(model)}": _operation(model) for model in models},
        "components": {
            "messages": {_id(model): _message(model) for model in models},
            "schemas": components,
        },
    }


def _component_schemas(registry: EventRegistry) -> dict[str, Schema]:
    """Every event's, sub-model's and the envelope's schema, with refs pointing into components."""
    inputs = [(model, "validation") for model in registry.models()] + [(Actor, "validation")]
    _, definitions = models_json_schema(inputs, ref_template=COMPONENT_REF)  # type: ignore[arg-type]
    components = dict(definitions["$defs"])
    envelope = envelope_schema()
    envelope.pop("$defs")
    components[ENVELOPE_COMPONENT] = _point_refs_at_components(envelope)
    components[HEADERS_COMPONENT] = HEADERS_SCHEMA
    return dict(sorted(components.items()))


def _point_refs_at_components(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: value.replace("#/$defs/", "#/components/schemas/")
            if key == "$ref"
            else _point_refs_at_components(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_point_refs_at_components(item) for item in node]
    return node


def _id(model: type[DomainEvent]) -> str:
    # AsyncAPI ids allow letters, digits, '-' and '_' only.
    return f"{model.service()}_{model.name()}_v{model.schema_version}"


def _address(model: type[DomainEvent]) -> str:
    return f"{model.service()}.{{branch_id}}.{model.name()}.v{model.schema_version}"


def _channel(model: type[DomainEvent]) -> Schema:
    return {
        "address": _address(model),
        "title": f"{model.event_type} v{model.schema_version}",
        "description": f"Captured by the `{stream_name(model.service())}` stream ({stream_subjects(model.service())[0]}).",
        "parameters": {"branch_id": {"description": BRANCH_PARAMETER}},
        "messages": {model.name(): {"$ref": f"#/components/messages/{_id(model)}"}},
    }


def _operation(model: type[DomainEvent]) -> Schema:
    return {
        "action": "send",
        "title": f"{model.service()} publishes {model.name()} v{model.schema_version}",
        "channel": {"$ref": f"#/channels/{_id(model)}"},
        "messages": [{"$ref": f"#/channels/{_id(model)}/messages/{model.name()}"}],
    }


def _message(model: type[DomainEvent]) -> Schema:
    return {
        "name": model.name(),
        "title": f"{model.event_type} v{model.schema_version}",
        "summary": _summary(model),
        "description": _docstring(model),
        "contentType": "application/json",
        "headers": {"$ref": COMPONENT_REF.format(model=HEADERS_COMPONENT)},
        "payload": {
            "allOf": [
                {"$ref": COMPONENT_REF.format(model=ENVELOPE_COMPONENT)},
                {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": model.event_type},
                        "schema_version": {"const": model.schema_version},
                        "data": {"$ref": COMPONENT_REF.format(model=model.__name__)},
                    },
                },
            ]
        },
    }


def _docstring(model: type) -> str:
    return " ".join((model.__doc__ or "").split())


def _summary(model: type) -> str:
    return (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


# --- README ---------------------------------------------------------------------------------------------


def readme(registry: EventRegistry, components: dict[str, Schema]) -> str:
    models = list(registry.models())
    lines = [
        "# Pitlane event catalog",
        "",
        "Generated by `pitlane-events catalog --write` from `libs/events`; do not edit by hand.",
        "Machine-readable: [asyncapi.json](asyncapi.json) (AsyncAPI 3.0) and the JSON Schemas under",
        "`libs/events/schemas/`.",
        "",
        "Every message is one JSON envelope (below) with the event in `data`, published on",
        "`<service>.<branch_id>.<EventType>.v<N>` (`chain` instead of a branch id for customers and",
        "vehicles). Readers ignore fields they do not know. Adding an optional field keeps the version;",
        "any other change is a new version, and an upcaster lifts old payloads so handlers only see the",
        "newest one.",
        "Money is integer fen (分); times are ISO 8601 with an offset; dates are `YYYY-MM-DD`.",
        "",
        "## Envelope",
        "",
        *_field_table(components[ENVELOPE_COMPONENT], components),
    ]
    lines += _subscribing_section(sorted({model.service() for model in models}))
    for service, service_models in groupby(models, key=lambda model: model.service()):
        lines += _service_section(service, list(service_models), components)
    lines += _shared_types_section(models, components)
    return "\n".join(lines) + "\n"


# Run as written by libs/platform/tests/test_event_catalog_guide.py against a real nats-server.
SUBSCRIBER_EXAMPLE = """\
import asyncio
import json
import os

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


async def main() -> None:
    connection = await nats.connect(os.environ["NATS_URL"])  # e.g. tls://nats.chain.example:4222
    jetstream = connection.jetstream()
    # A durable pull consumer of your own: the server remembers what you acked, across your restarts.
    visits = await jetstream.pull_subscribe(
        "workorder.*.WorkOrderCompleted.v1",
        durable="bi-tool-visits",
        stream="WORKORDER",
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,  # from the stream's first event: a full replay
            max_ack_pending=1,  # one at a time: a redelivery can never overtake a later event
        ),
    )
    while True:
        try:
            messages = await visits.fetch(batch=100, timeout=2)
        except nats.errors.TimeoutError:
            break  # caught up; a live reader keeps fetching
        for message in messages:
            envelope = json.loads(message.data)
            data = envelope["data"]
            print(
                envelope["aggregate_id"],
                envelope["aggregate_version"],
                data["completed_at"],
                data["paid_fen"],
            )
            await message.ack()  # after your own write has committed
    await connection.close()


asyncio.run(main())
"""


def _subscribing_section(services: list[str]) -> list[str]:
    return [
        "",
        "## Subscribing from outside Pitlane",
        "",
        "Any NATS client can read the streams (a BI tool, a data warehouse loader): they are the system's",
        "integration interface, with the same guarantees Pitlane's own services rely on.",
        "",
        "- **Streams**: one per producing service, keeping every event since the start (limits retention,",
        "  no expiry), each deduplicated on `Nats-Msg-Id` = `event_id`:",
        "",
        "  | service | stream | subjects |",
        "  |---|---|---|",
        *(
            f"  | {service} | `{stream_name(service)}` | `{stream_subjects(service)[0]}` |"
            for service in services
        ),
        "",
        "- **A durable consumer of your own** (a name no Pitlane service uses; ours are",
        "  `<service>.<purpose>`), pull-based, explicit acks, `deliver_policy` *all* to replay from the",
        "  first event or *new* to start now. Ack after your own write commits. Filter by subject",
        "  (`workorder.*.WorkOrderCompleted.v1`, `workorder.b1.>`): the subject names the service, the",
        "  branch (`chain` for customers and vehicles), the event type and its version. Widening a",
        "  durable consumer's filter later does not replay the history of the new subjects: create a new",
        "  consumer for that.",
        "- **Order**: a stream delivers in the order events were published, and each aggregate's events",
        "  are published in `aggregate_version` order (the outbox relay keeps it). A redelivered message",
        "  (ack timeout, nak) can arrive after later ones unless `max_ack_pending` is 1; with more in flight,",
        "  keep the last `aggregate_version` you applied per `aggregate_id` and hold back or skip what is",
        "  out of order. Streams are independent of each other: a visit's completion (workorder) and its",
        "  NPS answer (notification) have no order between them.",
        "- **Exactly once on your side**: delivery is at least once; keep the `event_id`s you applied in",
        "  the same transaction as their effect and skip repeats.",
        "- **Versions**: read `event_type` and `schema_version`, validate `data` against",
        "  `libs/events/schemas/<service>/<EventType>.v<N>.json`, ignore fields you do not know. A new",
        "  version of an event is a new subject (`…v2`): subscribe to both while producers move.",
        "- **Access**: in production each client connects as its own NATS user (TLS), allowed to read",
        "  the streams it needs and to manage its own durable consumers (docs/deploy.md).",
        "- **Personal data**: events carry ids, not names or phones, except the few that must (a",
        "  customer's registration, an NPS comment); a CustomerErased means: erase what you copied.",
        "",
        "A complete reader with nats-py (`pip install nats-py`), replaying every completed visit:",
        "",
        "```python",
        *SUBSCRIBER_EXAMPLE.rstrip("\n").split("\n"),
        "```",
        "",
        "The same consumer with the `nats` CLI:",
        "",
        "```sh",
        "nats consumer add WORKORDER bi-tool-visits --pull --deliver all --ack explicit \\",
        "    --filter 'workorder.*.WorkOrderCompleted.v1' --max-pending 1 --defaults",
        "nats consumer next WORKORDER bi-tool-visits --count 100",
        "```",
    ]


def _service_section(
    service: str, models: list[type[DomainEvent]], components: dict[str, Schema]
) -> list[str]:
    lines = [
        "",
        f"## {service}",
        "",
        f"Published by the **{service}** service into the `{stream_name(service)}` stream "
        f"(subjects `{stream_subjects(service)[0]}`).",
        "",
        "| event | version | subject | published by | meaning |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| [{model.name()}](#{_anchor(model)}) | {model.schema_version} | `{_address(model)}` | {service} "
        f"| {_cell(_summary(model))} |"
        for model in models
    ]
    for model in models:
        lines += ["", f"### {model.name()} v{model.schema_version}", "", _docstring(model), ""]
        lines += _field_table(components[model.__name__], components)
    return lines


def _shared_types_section(models: list[type[DomainEvent]], components: dict[str, Schema]) -> list[str]:
    event_names = {model.__name__ for model in models}
    shared = {
        name: schema
        for name, schema in components.items()
        if name not in event_names and name not in (ENVELOPE_COMPONENT, HEADERS_COMPONENT)
    }
    lines = ["", "## Types used by the events", ""]
    for name, schema in shared.items():
        lines += [f"### {name}", "", _cell(schema.get("description", "")), ""]
        if "enum" in schema:
            lines += [f"One of: {_enum_values(schema)}."]
        else:
            lines += _field_table(schema, components)
    return lines


def _field_table(schema: Schema, components: dict[str, Schema]) -> list[str]:
    required = set(schema.get("required", ()))
    rows = [
        f"| `{name}` | {_type_label(field, components)} | {'yes' if name in required else 'no'} "
        f"| {_cell(field.get('description', ''))} |"
        for name, field in schema.get("properties", {}).items()
    ]
    return ["| field | type | required | description |", "|---|---|---|---|", *rows]


def _type_label(node: Schema, components: dict[str, Schema]) -> str:
    return " or ".join(dict.fromkeys(_type_labels(node, components)))


def _type_labels(node: Schema, components: dict[str, Schema]) -> Iterator[str]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        yield f"[{name}](#{name.lower()})"
    elif "anyOf" in node:
        for branch in node["anyOf"]:
            yield from _type_labels(branch, components)
    elif "const" in node:
        yield f"`{json.dumps(node['const'], ensure_ascii=False)}`"
    elif "enum" in node:
        yield f"one of {_enum_values(node)}"
    elif node.get("type") == "array":
        yield f"list of {_type_label(node.get('items', {}), components)}{_bounds(node)}"
    elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        yield f"map of string to {_type_label(node['additionalProperties'], components)}"
    else:
        yield f"{node.get('format', node.get('type', 'any'))}{_bounds(node)}"


def _bounds(node: Schema) -> str:
    bounds = [
        f"{symbol} {node[keyword]}"
        for keyword, symbol in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
            ("minItems", "items ≥"),
        )
        if keyword in node
    ]
    return f" ({', '.join(bounds)})" if bounds else ""


def _enum_values(schema: Schema) -> str:
    return ", ".join(f"`{value}`" for value in schema["enum"])


def _anchor(model: type[DomainEvent]) -> str:
    return f"{model.name().lower()}-v{model.schema_version}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
