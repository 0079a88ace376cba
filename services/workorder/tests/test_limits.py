"""The bounds of service_layer/limits.py keep every event a command can produce publishable: a branch, a
check-in and a bill with every list and text at its limit, in 3-byte CJK characters, still encode under the
event budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pitlane_events import Actor, DomainEvent, Envelope, encode
from pitlane_events.types import Bay, Discount, InspectionItem, LineCategory, LineItem, Payment
from pitlane_events.workorder import (
    BranchOpened,
    ProcessRef,
    ProcessScope,
    WorkOrderCompleted,
    WorkOrderOpened,
    WorkOrderSettled,
)
from pitlane_workorder.service_layer import limits
from pitlane_workorder.service_layer.commands import (
    CheckIn,
    OpenBranch,
    SettleWorkOrder,
    VoidWorkOrder,
    plain,
)

AT = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
CJK = "鑫"  # 3 bytes in UTF-8, as most of what branches type
ID = "i" * 64
PHOTO = "sha256:" + "ab" * 32


def text(length: int) -> str:
    return CJK * length


def encoded_bytes(event: DomainEvent) -> int:
    envelope = Envelope.new(
        event,
        chain_id=ID,
        branch_id=ID,
        aggregate_id=ID,
        aggregate_version=1,
        actor=Actor(kind="user", id=ID, role="advisor"),
        occurred_at=AT,
    )
    return len(encode(envelope).payload)


def largest_branch() -> dict[str, Any]:
    return {
        "branch_id": ID,
        "name": text(limits.NAME_LENGTH),
        "address": text(limits.ADDRESS_LENGTH),
        "opening_hours": [
            {"weekday": 1 + n % 7, "opens_at": "09:00:00", "closes_at": "18:00:00"}
            for n in range(limits.MAX_OPENING_PERIODS)
        ],
        "bays": [{"bay_id": ID, "name": text(limits.BAY_NAME_LENGTH)}] * limits.MAX_BAYS,
    }


def largest_check_in() -> dict[str, Any]:
    point = {
        "item": text(limits.ITEM_NAME_LENGTH),
        "status": "attention",
        "note": text(limits.INSPECTION_NOTE_LENGTH),
        "photo_hashes": [PHOTO] * limits.MAX_PHOTOS_PER_INSPECTION_POINT,
    }
    return {
        "vehicle_id": ID,
        "customer_id": ID,
        "plate": "沪A12345",
        "mileage_km": 2_000_000,
        "complaint": text(limits.TEXT_LENGTH),
        "inspection": [point] * limits.MAX_INSPECTION_POINTS,
        "photo_hashes": [PHOTO] * limits.MAX_PHOTOS,
        "advisor_id": ID,
    }


def largest_bill() -> dict[str, Any]:
    line = {
        "item_code": "C" * limits.CODE_LENGTH,
        "name": text(limits.ITEM_NAME_LENGTH),
        "category": "consumables",
        "quantity": "999999999.999",
        "unit_price_fen": limits.MAX_FEN,
        "cost_fen": limits.MAX_FEN,
        "line_total_fen": limits.MAX_FEN,
        "add_on_id": ID,
    }
    discount = {
        "kind": "campaign",
        "amount_fen": limits.MAX_FEN,
        "coupon_code": "K" * 64,
        "campaign_id": ID,
        "description": text(limits.DISCOUNT_DESCRIPTION_LENGTH),
    }
    payment = {"method": "insurance_claim", "amount_fen": limits.MAX_FEN, "reference": "R" * 64}
    return {
        "line_items": [line] * limits.MAX_LINE_ITEMS,
        "discounts": [discount] * limits.MAX_DISCOUNTS,
        "coupon_code": "K" * 64,
        "campaign_id": ID,
        "payments": [payment] * limits.MAX_PAYMENTS,
        "total_fen": limits.MAX_FEN,
    }


def test_the_largest_branch_check_in_and_bill_make_events_under_the_budget() -> None:
    branch = OpenBranch.model_validate(largest_branch())
    opened = BranchOpened(
        branch_id=branch.branch_id,
        branch_name=branch.name,
        address=branch.address,
        timezone=branch.timezone,
        opening_hours=tuple(branch.opening_hours),
        bays=plain(Bay, branch.bays),
    )

    check_in = CheckIn.model_validate(largest_check_in())
    order_opened = WorkOrderOpened(
        work_order_id=ID,
        customer_id=ID,
        vehicle_id=ID,
        plate="沪A12345",
        mileage_km=check_in.mileage_km,
        complaint=check_in.complaint,
        inspection=plain(InspectionItem, check_in.inspection),
        photo_hashes=tuple(check_in.photo_hashes),
        advisor_id=ID,
        appointment_id=ID,
        process=ProcessRef(scope=ProcessScope.BRANCH, version=2**31 - 1),
        work_categories=tuple(LineCategory),
    )

    settle = SettleWorkOrder.model_validate(largest_bill())
    lines, discounts = plain(LineItem, settle.line_items), plain(Discount, settle.discounts)
    payments = tuple(
        Payment(method=p.method, amount_fen=p.amount_fen, paid_at=AT, reference=p.reference)
        for p in settle.payments
    )
    subtotal, discounted = sum(line.line_total_fen for line in lines), sum(d.amount_fen for d in discounts)
    bill: dict[str, Any] = {
        "work_order_id": ID,
        "customer_id": ID,
        "line_items": lines,
        "discounts": discounts,
        "coupon_code": settle.coupon_code,
        "campaign_id": settle.campaign_id,
        "subtotal_fen": subtotal,
        "discount_fen": discounted,
        "total_fen": subtotal - discounted,
        "paid_fen": sum(payment.amount_fen for payment in payments),
        "payments": payments,
    }
    settled = WorkOrderSettled(**bill, settled_by=ID)
    completed = WorkOrderCompleted(
        **bill,
        vehicle_id=ID,
        plate="沪A12345",
        mileage_km=2_000_000,
        branch_id=ID,
        advisor_id=ID,
        technician_ids=(ID,) * 5,
        appointment_id=ID,
        opened_at=AT - timedelta(days=1),
        completed_at=AT,
    )

    for event in (opened, order_opened, settled, completed):
        assert encoded_bytes(event) < limits.EVENT_BUDGET_BYTES < 64 * 1024, type(event).__name__
        # The events hold the shared value types, not the commands' bounded subclasses.
        nested = [
            *getattr(event, "bays", ()),
            *getattr(event, "inspection", ()),
            *getattr(event, "line_items", ()),
        ]
        assert all(type(value) in (Bay, InspectionItem, LineItem) for value in nested)


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (SettleWorkOrder, {**largest_bill(), "line_items": largest_bill()["line_items"] * 2}, "line_items"),
        (SettleWorkOrder, {**largest_bill(), "payments": largest_bill()["payments"] * 2}, "payments"),
        (CheckIn, {**largest_check_in(), "inspection": largest_check_in()["inspection"] * 2}, "inspection"),
        (CheckIn, {**largest_check_in(), "photo_hashes": [PHOTO] * (limits.MAX_PHOTOS + 1)}, "photo_hashes"),
        (
            CheckIn,
            {
                **largest_check_in(),
                "inspection": [
                    {"item": "左前轮胎", "status": "ok", "note": text(limits.INSPECTION_NOTE_LENGTH + 1)}
                ],
            },
            "inspection",
        ),
        (OpenBranch, {**largest_branch(), "bays": largest_branch()["bays"] * 2}, "bays"),
        (OpenBranch, {**largest_branch(), "address": text(limits.ADDRESS_LENGTH + 1)}, "address"),
    ],
)
def test_one_over_a_limit_is_refused_naming_the_field(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    assert {error["loc"][0] for error in refused.value.errors()} == {field}


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (CheckIn, largest_check_in(), "complaint"),
        (OpenBranch, largest_branch(), "name"),
        (VoidWorkOrder, {"reason": "重复"}, "reason"),
    ],
)
def test_a_text_takes_one_character_and_refuses_none(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    assert getattr(model.model_validate({**body, field: "响"}), field) == "响"
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**body, field: ""})
    assert [error["loc"] for error in refused.value.errors()] == [(field,)]
