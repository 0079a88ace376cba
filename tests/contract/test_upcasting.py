"""An upcaster chain lifts every stored version to the newest, so handlers only ever see one shape.

The events here are test-only and live in their own registry, never in the global one.
"""

from __future__ import annotations

from typing import Any

import pytest

from pitlane_events import DomainEvent, EventRegistry, MalformedEvent, decode_json, event

registry = EventRegistry()


@event("testing.OilChanged", 1, registry=registry)
class OilChangedV1(DomainEvent):
    """v1 stored the oil amount in litres as a float."""

    vehicle_id: str
    litres: float


@event("testing.OilChanged", 2, registry=registry)
class OilChangedV2(DomainEvent):
    """v2 stores millilitres as an integer and names the oil grade."""

    vehicle_id: str
    millilitres: int
    grade: str | None


@event("testing.OilChanged", 3, registry=registry)
class OilChangedV3(DomainEvent):
    """v3 made the grade required, with "unknown" for the past."""

    vehicle_id: str
    millilitres: int
    grade: str


@registry.upcaster("testing.OilChanged", 1)
def litres_to_millilitres(data: dict[str, Any]) -> dict[str, Any]:
    litres = data.pop("litres")
    return {**data, "millilitres": round(litres * 1000), "grade": None}


@registry.upcaster("testing.OilChanged", 2)
def grade_required(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "grade": data.get("grade") or "unknown"}


def envelope(version: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": "01978a3c-1c00-7000-8000-000000000001",
        "event_type": "testing.OilChanged",
        "schema_version": version,
        "occurred_at": "2025-06-18T09:45:00Z",
        "chain_id": "chain",
        "branch_id": None,
        "aggregate_id": "vehicle-1",
        "aggregate_version": 1,
        "correlation_id": "01978a3c-1c00-7000-8000-000000000001",
        "actor": {"kind": "service", "id": "testing"},
        "data": data,
    }


def test_a_v1_payload_is_read_as_the_newest_version() -> None:
    decoded = decode_json(envelope(1, {"vehicle_id": "vehicle-1", "litres": 4.5}), registry=registry)

    assert decoded.schema_version == 3
    assert decoded.data == OilChangedV3(vehicle_id="vehicle-1", millilitres=4500, grade="unknown")


def test_a_middle_version_only_runs_the_remaining_steps() -> None:
    body = envelope(2, {"vehicle_id": "vehicle-1", "millilitres": 4000, "grade": "0W-20"})

    decoded = decode_json(body, registry=registry)

    assert decoded.data == OilChangedV3(vehicle_id="vehicle-1", millilitres=4000, grade="0W-20")


def test_an_old_payload_the_upcaster_cannot_lift_is_malformed_and_named() -> None:
    with pytest.raises(MalformedEvent, match=r"testing\.OilChanged.*v1"):
        decode_json(envelope(1, {"vehicle_id": "vehicle-1"}), registry=registry)


def test_the_test_events_stay_out_of_the_global_registry() -> None:
    from pitlane_events import REGISTRY

    assert "testing.OilChanged" not in REGISTRY.event_types()
