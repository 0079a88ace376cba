"""The pure domain: rules of customers and vehicles, custom fields, and that it imports no I/O."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
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
    EnergyType,
    MileageSource,
    VehicleMileageRecorded,
    VehicleUpdated,
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


def refusal(command: Callable[[], object]) -> tuple[str, str]:
    """The field and message of the InvalidInputError the command raises; a 422 always says why."""
    with pytest.raises(InvalidInputError) as refused:
        command()
    assert isinstance(refused.value.message, str) and refused.value.message
    return refused.value.field, refused.value.message


def vehicle() -> Vehicle:
    registered = Vehicle.register(
        "v-1",
        owner_customer_id="c-1",
        plate="沪A12345",
        vin="LSVAU218XN2183294",
        brand="大众",
        model="朗逸",
        model_year=2019,
        energy_type=EnergyType.PETROL,
        at=AT,
    )
    return Vehicle.rehydrate("v-1", history(registered))


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
    assert refusal(lambda: c.absorb([c], None, at=AT))[0] == "merged_customer_ids"
    c.erase("er-1", (), at=AT)
    for command, detail in [
        (lambda: c.set_tags(("VIP",), at=AT), "customer c-1 was erased"),
        (lambda: c.erase("er-2", (), at=AT), "customer c-1 is already erased"),
    ]:
        with pytest.raises(ConflictError) as refused:
            command()
        assert str(refused.value) == detail  # the 409 says which customer


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
    assert refusal(lambda: schema.validate({"channel": "抖音", "shoe": "42"}))[1] == (
        "not a custom field of this chain (channel, company, fleet_size, since)"
    )
    assert refusal(lambda: CustomFieldSchema(()).validate({"shoe": "42"}))[1] == (
        "not a custom field of this chain (none are configured)"
    )
    assert refusal(
        lambda: CustomFieldSchema((CustomFieldDefinition("a", "A"), CustomFieldDefinition("a", "B")))
    ) == ("fields", "duplicate keys: a")


def test_a_custom_field_definition_names_what_is_wrong_with_it() -> None:
    field, message = refusal(lambda: CustomFieldDefinition("Company", "单位"))
    assert field == "key" and "Company" in message
    assert refusal(lambda: CustomFieldDefinition("channel", "渠道", CustomFieldType.CHOICE)) == (
        "channel.choices",
        "a choice field needs at least one choice",
    )


def test_a_custom_field_value_that_does_not_fit_says_why() -> None:
    text = CustomFieldDefinition("company", "单位")
    assert text.check(" 张江 ") == "张江"
    assert refusal(lambda: text.check("   "))[0] == "custom_fields.company"
    field, message = refusal(
        lambda: CustomFieldDefinition("since", "首次到店", CustomFieldType.DATE).check("2020-13-01")
    )
    assert field == "custom_fields.since" and "2020-13-01" in message and "YYYY-MM-DD" in message
    channel = CustomFieldDefinition("channel", "渠道", CustomFieldType.CHOICE, choices=("抖音", "美团"))
    field, message = refusal(lambda: channel.check("微信"))
    assert field == "custom_fields.channel" and "微信" in message and "抖音, 美团" in message


def test_an_update_refuses_what_is_not_a_detail_a_blank_name_and_self_referral() -> None:
    c = replayed(customer())
    with pytest.raises(ValueError, match="phone"):
        c.update_details(phone="+8613900001111", at=AT)
    assert refusal(lambda: c.update_details(referrer_customer_id="c-1", at=AT))[0] == "referrer_customer_id"
    assert refusal(lambda: c.update_details(full_name=None, at=AT))[0] == "full_name"
    assert refusal(lambda: c.update_details(full_name="", at=AT)) == ("full_name", "must not be blank")
    assert c.pending == []


def test_preferred_services_and_custom_fields_are_set_and_cleared_with_a_listed_null() -> None:
    c = replayed(customer(preferred_services=("小保养",), custom_fields={"company": "张江"}))
    # The same services again, given as a list: nothing changed.
    c.update_details(preferred_services=["小保养"], at=AT)
    assert c.pending == []
    c.update_details(preferred_services=["小保养", "四轮定位"], at=AT)
    [added] = c.pending
    assert isinstance(added, CustomerUpdated) and added.preferred_services == ("小保养", "四轮定位")
    c.update_details(preferred_services=None, custom_fields={}, at=AT)
    cleared = c.pending[-1]
    assert isinstance(cleared, CustomerUpdated)
    assert set(cleared.changed_fields) == {"preferred_services", "custom_fields"}
    assert (cleared.preferred_services, cleared.custom_fields) == (None, None)
    assert (c.preferred_services, c.custom_fields) == ((), {})
    c.pending.clear()
    c.update_details(preferred_services=None, at=AT)  # cleared again: nothing changed
    assert c.pending == []


def test_absorbing_takes_every_phone_and_a_wechat_id_only_when_the_survivor_has_none() -> None:
    survivor = replayed(customer(other_phones=("+8613900001111",)))
    first = replayed(
        Customer.register(
            "c-2",
            full_name="王建国",
            phone="+8613700000000",
            other_phones=("+8613700000001",),
            source=CustomerSource.IMPORT,
            at=AT,
        )
    )
    second = replayed(
        Customer.register(
            "c-3",
            full_name="王建国",
            phone="+8613600000000",
            wechat_id="wx_c3",
            source=CustomerSource.IMPORT,
            at=AT,
        )
    )
    survivor.absorb([first, second], "同一人", at=AT)
    assert survivor.other_phones == ["+8613900001111", "+8613700000000", "+8613700000001", "+8613600000000"]
    assert survivor.wechat_id == "wx_c3"
    merged = survivor.pending[-1]
    assert isinstance(merged, CustomersMerged)
    assert (merged.merged_customer_ids, merged.reason) == (("c-2", "c-3"), "同一人")

    with_wechat = replayed(customer(wechat_id="wx_wangjg"))
    with_wechat.absorb([second], None, at=AT)
    assert with_wechat.wechat_id == "wx_wangjg"


def test_a_merge_names_at_least_one_other_customer() -> None:
    c = replayed(customer())
    assert refusal(lambda: c.absorb([], None, at=AT))[0] == "merged_customer_ids"
    assert c.pending == []


def test_a_vehicle_update_records_what_changed_and_nothing_when_nothing_did() -> None:
    v = vehicle()
    v.update_details(
        plate="沪B54321",
        vin=None,
        brand="丰田",
        model="凯美瑞",
        model_year=2019,
        energy_type=EnergyType.HYBRID,
        purchase_date=date(2020, 5, 1),
        registration_date=date(2020, 5, 10),
        at=AT,
    )
    [event] = v.pending
    assert isinstance(event, VehicleUpdated)
    assert event.changed_fields == (
        "plate",
        "vin",
        "brand",
        "model",
        "energy_type",
        "purchase_date",
        "registration_date",
    )
    assert (v.plate, v.vin, v.brand, v.model, v.model_year, v.energy_type) == (
        "沪B54321",
        None,
        "丰田",
        "凯美瑞",
        2019,
        EnergyType.HYBRID,
    )
    assert (v.purchase_date, v.registration_date) == (date(2020, 5, 1), date(2020, 5, 10))
    v.pending.clear()
    v.update_details(plate="沪B54321", brand="丰田", model_year=2019, at=AT)
    assert v.pending == []


def test_a_vehicle_update_refuses_an_empty_plate_brand_or_model_and_what_is_not_a_detail() -> None:
    v = vehicle()
    for name in ("plate", "brand", "model"):
        for empty in ("", None):
            assert refusal(partial(v.update_details, at=AT, **{name: empty}))[0] == name
    with pytest.raises(ValueError, match="owner_customer_id"):
        v.update_details(owner_customer_id="c-2", at=AT)
    assert v.pending == []
