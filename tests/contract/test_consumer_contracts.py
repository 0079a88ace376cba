"""Consumer-driven contracts (consumer_contracts.py, ADR 23): for every event a consumer subscribes to, the
fields its handler reads, derived from the code, are declared in consumers.json, exist with the consumer's
types in the producer's committed schema of the newest version, and hold in the golden payload of every
version and every earlier shape once upcast, as the consumer receives them."""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from consumer_contracts import differences, golden_problems, schema_problems
from goldens import Golden, committed_schema, goldens_of

from pitlane_events import REGISTRY, DomainEvent, EventRegistry, event
from pitlane_events.schemas import event_schema
from pitlane_platform.services import installed_services
from pitlane_platform.testing.consumer_reads import (
    ConsumerReads,
    UnfollowableRead,
    consumer_reads,
    installed_consumers,
    render,
)

COMMITTED_FILE = Path(__file__).parent / "consumers.json"
CONSUMERS = installed_consumers()
try:
    READS, REFUSAL = consumer_reads(CONSUMERS), ""
except UnfollowableRead as refusal:  # one failing test saying where, not a collection error
    READS, REFUSAL = [], str(refusal)
CASES = [(read, golden) for read in READS for golden in goldens_of(read.event_type)]


def read_id(read: ConsumerReads) -> str:
    return f"{read.consumer}:{read.event_type}"


def test_the_consumers_are_those_of_every_installed_service_that_consumes() -> None:
    consuming = {spec.name for spec in installed_services() if spec.consumes}

    assert consuming <= {consumer.service for consumer in CONSUMERS}
    assert all(consumer.handlers for consumer in CONSUMERS)


def test_what_every_handler_reads_can_be_told_from_its_code() -> None:
    assert not REFUSAL, REFUSAL


def test_what_the_consumers_read_is_declared_in_consumers_json() -> None:
    committed = json.loads(COMMITTED_FILE.read_text(encoding="utf-8")) if COMMITTED_FILE.exists() else {}

    problems = differences(committed, json.loads(render(READS)))

    assert not problems, "\n".join(
        [*problems, "run `make contracts` and commit tests/contract/consumers.json"]
    )


@pytest.mark.parametrize("read", READS, ids=read_id)
def test_what_a_consumer_reads_is_in_the_producers_current_schema(read: ConsumerReads) -> None:
    committed = committed_schema(read.event_type, read.version)
    consumers_view = event_schema(REGISTRY.model(read.event_type, read.version))

    assert schema_problems(read, committed, consumers_view) == []


@pytest.mark.parametrize(
    ("read", "golden"),
    CASES,
    ids=lambda value: read_id(value) if isinstance(value, ConsumerReads) else value.relative_path,
)
def test_what_a_consumer_reads_holds_in_every_golden_payload_of_the_event(
    read: ConsumerReads, golden: Golden
) -> None:
    newest = committed_schema(read.event_type, read.version)

    assert golden_problems(read, golden.body, newest, REGISTRY) == []


# --- each check can fail ---------------------------------------------------------------------------------

COMPLETED = ConsumerReads(
    consumer="testing.visits",
    event_type="workorder.WorkOrderCompleted",
    version=1,
    fields=("line_items[*].quantity", "total_fen", "work_order_number"),
)


def test_a_read_the_producers_schema_lacks_or_types_otherwise_is_named() -> None:
    committed = committed_schema(COMPLETED.event_type, 1)
    consumers_view = deepcopy(event_schema(REGISTRY.model(COMPLETED.event_type, 1)))
    consumers_view["properties"]["total_fen"]["type"] = "number"
    consumers_view["$defs"]["LineItem"]["properties"]["quantity"]["anyOf"][0]["exclusiveMinimum"] = 1

    problems = schema_problems(COMPLETED, committed, consumers_view)

    assert problems[0] == (
        "testing.visits reads `work_order_number` of workorder.WorkOrderCompleted v1, which its committed schema lacks"
    )
    assert any("$.total_fen: type changed: integer → number" in problem for problem in problems)
    assert any("$.line_items[*].quantity: constraint" in problem for problem in problems)
    assert not any("$.paid_fen" in problem for problem in problems)


oils = EventRegistry()


@event("testing.OilChanged", 1, registry=oils)
class OilChangedV1(DomainEvent):
    vehicle_id: str
    litres: float


@event("testing.OilChanged", 2, registry=oils)
class OilChangedV2(DomainEvent):
    vehicle_id: str
    millilitres: int
    grade: str | None = None


@oils.upcaster("testing.OilChanged", 1)
def forgets_the_amount(data: dict[str, Any]) -> dict[str, Any]:
    """An upcaster with a bug: the amount is dropped, not converted."""
    return {"vehicle_id": data["vehicle_id"], "grade": 20}


def test_a_golden_payload_that_upcasts_without_a_field_read_or_with_a_wrong_one_is_named() -> None:
    read = ConsumerReads("testing.oil", "testing.OilChanged", 2, ("grade", "millilitres", "vehicle_id"))
    body = {
        "event_type": "testing.OilChanged",
        "schema_version": 1,
        "data": {"vehicle_id": "v1", "litres": 4.5},
    }

    problems = golden_problems(read, body, event_schema(OilChangedV2), oils)

    assert problems == [
        "testing.oil reads `grade`: `grade` 20 is not valid under any of the given schemas",
        "testing.oil reads `millilitres`: `millilitres` is absent after upcasting",
    ]


def test_an_optional_field_absent_from_an_earlier_payload_holds() -> None:
    read = ConsumerReads("testing.oil", "testing.OilChanged", 2, ("grade", "millilitres"))
    body = {
        "event_type": "testing.OilChanged",
        "schema_version": 2,
        "data": {"vehicle_id": "v1", "millilitres": 4500},
    }

    assert golden_problems(read, body, event_schema(OilChangedV2), oils) == []


def test_a_read_the_committed_file_does_not_declare_is_named() -> None:
    generated = json.loads(render(READS))
    committed = deepcopy(generated)
    committed["notification.workorder-triggers"]["workorder.WorkOrderCompleted"]["reads"].remove("total_fen")
    del committed["reminder.nps"]

    assert differences(committed, generated) == [
        "notification.workorder-triggers reads `total_fen` of workorder.WorkOrderCompleted, which is not declared",
        "reminder.nps now reads notification.NpsAnswered: "
        + ", ".join(generated["reminder.nps"]["notification.NpsAnswered"]["reads"]),
    ]
