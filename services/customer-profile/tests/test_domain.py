"""The pure domain: rules of customers and vehicles, custom fields, and that it imports no I/O."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from pitlane_customer_profile import domain
from pitlane_customer_profile.domain.custom_fields import (
    CustomFieldDefinition,
    CustomFieldSchema,
    CustomFieldType,
)
from pitlane_customer_profile.domain.customer import ConsentDecision, Customer
from pitlane_customer_profile.domain.vehicle import MileageOutcome, Vehicle
from pitlane_events import Actor, Envelope
from pitlane_events.customer_profile import (
    ConsentSource,
    CustomerContactAdded,
    CustomerRegistered,
    CustomersMerged,
    CustomerSource,
    CustomerUpdated,
    MileageSource,
    VehicleMileageRecorded,
)
from pitlane_events.types import Channel, Purpose
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.errors import ConflictError, InvalidInputError

FORBIDDEN = {"sqlalchemy", "fastapi", "nats", "httpx", "psycopg", "starlette", "openpyxl", "cryptography"}
AT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def customer(**extra: object) -> Customer:
    return Customer.register(
        "c-1",
        full_name="王建国",
        phone="+8613812345678",
        source=CustomerSource.WALK_IN,
        at=AT,
        **extra,  # type: ignore[arg-type]
    )


def history(aggregate: Aggregate) -> list[Envelope[Any]]:
    """The aggregate's pending events as the stored stream would hold them (a new aggregate: versions 1…)."""
    return [
        Envelope.new(
            event,
            chain_id="chain-test",
            aggregate_id=aggregate.id,
            aggregate_version=version,
            actor=Actor.service("customer-profile"),
            occurred_at=AT,
        )
        for version, event in enumerate(aggregate.pending, start=aggregate.version + 1)
    ]


def replayed(aggregate: Customer) -> Customer:
    again = Customer.rehydrate(aggregate.id, history(aggregate))
    assert again.version == len(aggregate.pending) and again.pending == []
    return again


def test_the_domain_imports_no_database_broker_or_web_code() -> None:
    for path in Path(domain.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name in (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            )
        }
        assert not imported & FORBIDDEN, f"{path.name} imports {imported & FORBIDDEN}"


def test_registration_records_everything_and_replays_to_the_same_state() -> None:
    registered = customer(
        other_phones=("+8613900001111",),
        tags=("价格敏感",),
        membership_tier="gold",
        consents=(ConsentDecision(Channel.SMS, Purpose.MARKETING, True),),
        consent_source=ConsentSource.REGISTRATION_FORM,
    )
    assert isinstance(registered.pending[0], CustomerRegistered)
    again = replayed(registered)
    assert (again.phone, again.other_phones, again.tags, again.membership_tier) == (
        "+8613812345678",
        ["+8613900001111"],
        {"价格敏感"},
        "gold",
    )
    assert again.consents == {(Channel.SMS, Purpose.MARKETING): True}


def test_an_update_records_only_what_changed_and_nothing_when_nothing_did() -> None:
    c = replayed(customer(notes="周末来"))
    c.update_details(full_name="王建国", notes="工作日来", birthday=date(1982, 4, 17), at=AT)
    [event] = c.pending
    assert isinstance(event, CustomerUpdated) and set(event.changed_fields) == {"notes", "birthday"}
    c.pending.clear()
    c.update_details(notes="工作日来", at=AT)
    assert c.pending == []


def test_a_new_primary_phone_keeps_the_old_one_as_another_phone() -> None:
    c = replayed(customer())
    c.change_primary_phone("+8613900001111", at=AT)
    assert isinstance(c.pending[0], CustomerContactAdded)
    assert (c.phone, c.other_phones) == ("+8613900001111", ["+8613812345678"])


def test_a_customer_cannot_refer_or_absorb_themselves_and_an_erased_one_takes_no_commands() -> None:
    with pytest.raises(InvalidInputError) as refused:
        customer(referrer_customer_id="c-1")
    assert refused.value.field == "referrer_customer_id"
    c = replayed(customer())
    with pytest.raises(InvalidInputError):
        c.absorb([c], None, at=AT)
    c.erase("er-1", (), at=AT)
    with pytest.raises(ConflictError):
        c.set_tags(("VIP",), at=AT)
    with pytest.raises(ConflictError):
        c.erase("er-2", (), at=AT)


def test_absorbing_a_duplicate_takes_its_phones_and_tags() -> None:
    survivor = replayed(customer(tags=("VIP",)))
    registered = Customer.register(
        "c-2",
        full_name="王建国",
        phone="+8613700000000",
        source=CustomerSource.IMPORT,
        tags=("老客户",),
        at=AT,
    )
    duplicate = Customer.rehydrate("c-2", history(registered))
    survivor.absorb([duplicate], "同一人", at=AT)
    assert isinstance(survivor.pending[-1], CustomersMerged)
    assert survivor.other_phones == ["+8613700000000"] and survivor.tags == {"VIP", "老客户"}


def test_mileage_only_moves_forward() -> None:
    vehicle = Vehicle.register(
        "v-1",
        owner_customer_id="c-1",
        plate="沪A12345",
        brand="大众",
        model="朗逸",
        mileage_km=10_000,
        at=AT,
    )
    read = datetime(2025, 12, 31, tzinfo=UTC)
    recorded = vehicle.record_mileage(
        12_000, source=MileageSource.WORK_ORDER, recorded_at=read, work_order_id="wo-1", at=AT
    )
    assert recorded is MileageOutcome.RECORDED and isinstance(vehicle.pending[-1], VehicleMileageRecorded)
    again = vehicle.record_mileage(12_000, source=MileageSource.WORK_ORDER, recorded_at=read, at=AT)
    assert again is MileageOutcome.ALREADY_KNOWN
    # A late work order's lower reading is set aside (the caller says so); a person typing one made a mistake.
    late = vehicle.record_mileage(11_000, source=MileageSource.WORK_ORDER, recorded_at=read, at=AT)
    assert late is MileageOutcome.SET_ASIDE
    with pytest.raises(InvalidInputError) as refused:
        vehicle.record_mileage(11_000, source=MileageSource.STAFF, recorded_at=read, at=AT)
    assert refused.value.field == "mileage_km"
    assert vehicle.mileage_km == 12_000 and len(vehicle.pending) == 2


def test_a_corrected_reading_moves_the_odometer_back_and_says_why() -> None:
    vehicle = Vehicle.register(
        "v-1", owner_customer_id="c-1", plate="沪A12345", brand="大众", model="朗逸", mileage_km=90_000, at=AT
    )
    outcome = vehicle.record_mileage(
        150, source=MileageSource.CHECK_IN, recorded_at=AT, work_order_id="wo-2", correction="更换仪表", at=AT
    )
    assert outcome is MileageOutcome.RECORDED and vehicle.mileage_km == 150
    recorded = vehicle.pending[-1]
    assert isinstance(recorded, VehicleMileageRecorded) and recorded.correction == "更换仪表"
    # A correction that does not go backwards is an ordinary reading.
    vehicle.record_mileage(200, source=MileageSource.CHECK_IN, recorded_at=AT, correction="更换仪表", at=AT)
    forward = vehicle.pending[-1]
    assert isinstance(forward, VehicleMileageRecorded) and forward.correction is None


def test_custom_fields_are_checked_by_type_choice_and_presence() -> None:
    schema = CustomFieldSchema(
        (
            CustomFieldDefinition("company", "单位"),
            CustomFieldDefinition("fleet_size", "车队规模", CustomFieldType.NUMBER),
            CustomFieldDefinition("since", "首次到店", CustomFieldType.DATE),
            CustomFieldDefinition(
                "channel", "渠道", CustomFieldType.CHOICE, required=True, choices=("抖音", "美团")
            ),
        )
    )
    assert schema.validate(
        {"company": " 张江 ", "fleet_size": "12", "since": "2020-01-01", "channel": "抖音"}
    ) == {
        "company": "张江",
        "fleet_size": "12",
        "since": "2020-01-01",
        "channel": "抖音",
    }
    for values, field in [
        ({"channel": "抖音", "fleet_size": "many"}, "custom_fields.fleet_size"),
        ({"channel": "抖音", "since": "2020-13-01"}, "custom_fields.since"),
        ({"channel": "微信"}, "custom_fields.channel"),
        ({}, "custom_fields.channel"),
        ({"channel": "抖音", "shoe": "42"}, "custom_fields.shoe"),
    ]:
        with pytest.raises(InvalidInputError) as refused:
            schema.validate(values)
        assert refused.value.field == field
    with pytest.raises(InvalidInputError):
        CustomFieldSchema((CustomFieldDefinition("a", "A"), CustomFieldDefinition("a", "B")))
