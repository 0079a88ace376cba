"""The bounds of service_layer/limits.py keep every event a command can produce publishable: a registration or
an update with every field at its limit, in 3-byte CJK characters, still encodes under the event budget."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from pitlane_customer_profile.domain.customer import Customer
from pitlane_customer_profile.service_layer import limits
from pitlane_customer_profile.service_layer.commands import RegisterCustomer, UpdateCustomer
from pitlane_events import Actor, Envelope, encode
from pitlane_platform.aggregate import Aggregate

AT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
CJK = "鑫"  # 3 bytes in UTF-8, as most of what shops type


def text(length: int) -> str:
    return CJK * length


def largest_details() -> dict[str, Any]:
    """Every detail CustomerRegistered and CustomerUpdated carry, at its limit."""
    return {
        "full_name": text(limits.NAME_LENGTH),
        "referrer_customer_id": "r" * limits.ID_LENGTH,
        "preferred_services": [text(limits.PREFERRED_SERVICE_LENGTH)] * limits.MAX_PREFERRED_SERVICES,
        "notes": text(limits.LONG_TEXT_LENGTH),
        "custom_fields": {
            f"f{n:02d}".ljust(limits.CUSTOM_FIELD_KEY_LENGTH, "x"): text(limits.CUSTOM_FIELD_VALUE_LENGTH)
            for n in range(limits.MAX_CUSTOM_FIELDS)
        },
    }


def largest_event_bytes(aggregate: Aggregate) -> int:
    actor = Actor(kind="user", id="u" * limits.ID_LENGTH, role="advisor")
    return max(
        len(
            encode(
                Envelope.new(
                    event,
                    chain_id="chain-" + "c" * 58,
                    aggregate_id=aggregate.id,
                    aggregate_version=version,
                    actor=actor,
                    occurred_at=AT,
                )
            ).payload
        )
        for version, event in enumerate(aggregate.pending, start=1)
    )


def test_the_largest_registration_and_update_make_events_under_the_budget() -> None:
    registration = RegisterCustomer.model_validate(
        {**largest_details(), "phone": "13812345678", "registered_at_branch_id": "b" * limits.ID_LENGTH}
    )
    customer = Customer.register(
        "00000000-0000-0000-0000-000000000001",
        full_name=registration.full_name,
        phone=registration.phone,
        source=registration.source,
        registered_at_branch_id=registration.registered_at_branch_id,
        custom_fields=registration.custom_fields,
        referrer_customer_id=registration.referrer_customer_id,
        preferred_services=registration.preferred_services,
        notes=registration.notes,
        at=AT,
    )
    assert largest_event_bytes(customer) < limits.EVENT_BUDGET_BYTES < 64 * 1024

    customer = Customer.register(
        "00000000-0000-0000-0000-000000000002",
        full_name="王",
        phone="+8613812345678",
        source="walk_in",
        at=AT,
    )
    update = UpdateCustomer.model_validate(largest_details())
    customer.update_details(**update.model_dump(include=set(largest_details())), at=AT)
    assert largest_event_bytes(customer) < limits.EVENT_BUDGET_BYTES


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("preferred_services", ["小保养"] * (limits.MAX_PREFERRED_SERVICES + 1)),
        ("preferred_services", [text(limits.PREFERRED_SERVICE_LENGTH + 1)]),
        ("tags", [f"t{n}" for n in range(limits.MAX_TAGS + 1)]),
        ("other_phones", [f"1390000{n:04d}" for n in range(limits.MAX_OTHER_PHONES + 1)]),
        ("notes", text(limits.LONG_TEXT_LENGTH + 1)),
        ("custom_fields", {f"f{n}": "x" for n in range(limits.MAX_CUSTOM_FIELDS + 1)}),
        ("custom_fields", {"company": text(limits.CUSTOM_FIELD_VALUE_LENGTH + 1)}),
        ("registered_at_branch_id", "b" * (limits.ID_LENGTH + 1)),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else "",
)
def test_one_over_a_limit_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        RegisterCustomer.model_validate({"full_name": "王建国", "phone": "13812345678", field: value})
    assert {error["loc"][0] for error in refused.value.errors()} == {field}


def test_texts_are_trimmed_and_a_blank_one_is_refused_but_one_character_is_enough() -> None:
    registration = RegisterCustomer.model_validate(
        {"full_name": "  王建国 ", "phone": "13812345678", "tags": ["急"], "notes": " 周末来 "}
    )
    assert (registration.full_name, registration.tags, registration.notes) == ("王建国", ("急",), "周末来")
    for field, value in [("full_name", "   "), ("notes", ""), ("tags", [" "])]:
        with pytest.raises(ValidationError) as refused:
            RegisterCustomer.model_validate({"full_name": "王建国", "phone": "13812345678", field: value})
        assert {error["loc"][0] for error in refused.value.errors()} == {field}
