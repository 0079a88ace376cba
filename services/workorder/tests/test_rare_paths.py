"""Rare paths, each against the guard that keeps it right: a stale or redelivered event of customer-profile
in workorder's directory, a voided order (refund at most what was paid, no command after it), an overpaid
bill. Absence is proved only after a positive signal: the directory consumer has acked past the event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from workorder_harness import (
    BRANCH,
    Harness,
    directory_consumed_through,
    from_profile,
    publish_envelopes,
    rows,
)

from pitlane_events import DomainEvent
from pitlane_events.customer_profile import (
    ContactKind,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerRegistered,
    CustomerSource,
    MileageSource,
    VehicleMileageRecorded,
    VehicleOwnerChanged,
    VehicleRegistered,
    VehicleUpdated,
)
from pitlane_events.workorder import WorkOrderVoided

READ_AT = datetime(2026, 11, 15, tzinfo=UTC)


def registered(customer: str, phone: str) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer, full_name="周杰", phone=phone, source=CustomerSource.WALK_IN
    )


def phone_added(customer: str, phone: str) -> CustomerContactAdded:
    return CustomerContactAdded(customer_id=customer, kind=ContactKind.PHONE, value=phone, is_primary=False)


def phone_removed(customer: str, phone: str) -> CustomerContactRemoved:
    return CustomerContactRemoved(customer_id=customer, kind=ContactKind.PHONE, value=phone)


def car(owner: str = "c-1", plate: str = "沪A11111", mileage_km: int = 30_000) -> VehicleRegistered:
    return VehicleRegistered(
        vehicle_id="v-1",
        owner_customer_id=owner,
        plate=plate,
        brand="大众",
        model="朗逸",
        mileage_km=mileage_km,
    )


def replated(plate: str) -> VehicleUpdated:
    return VehicleUpdated(vehicle_id="v-1", changed_fields=("plate",), plate=plate)


def owner_changed(previous: str, new: str) -> VehicleOwnerChanged:
    return VehicleOwnerChanged(
        vehicle_id="v-1", previous_owner_customer_id=previous, new_owner_customer_id=new
    )


def reading(km: int) -> VehicleMileageRecorded:
    return VehicleMileageRecorded(
        vehicle_id="v-1", mileage_km=km, source=MileageSource.STAFF, recorded_at=READ_AT
    )


@dataclass(frozen=True)
class History:
    """An aggregate's events in order, the index of the one that comes again later, and what the directory
    must say at the end (a query that finds a row)."""

    aggregate_id: str
    events: tuple[DomainEvent, ...]
    again: int
    holds: str


HISTORIES = {
    "plate": History(
        "v-1",
        (car(plate="沪A11111"), replated("沪A22222"), replated("沪A33333")),
        1,
        "SELECT 1 FROM directory_vehicles WHERE vehicle_id = 'v-1' AND plate = '沪A33333'",
    ),
    "owner": History(
        "v-1",
        (car(owner="c-1"), owner_changed("c-1", "c-2"), owner_changed("c-2", "c-3")),
        1,
        "SELECT 1 FROM directory_vehicles WHERE vehicle_id = 'v-1' AND owner_customer_id = 'c-3'",
    ),
    "mileage": History(
        "v-1",
        (car(mileage_km=30_000), reading(40_000), reading(50_000)),
        1,
        "SELECT 1 FROM directory_vehicles WHERE vehicle_id = 'v-1' AND mileage_km = 50000",
    ),
    "registration": History(
        "v-1",
        (car(plate="沪A11111"), replated("沪A22222")),
        0,
        "SELECT 1 FROM directory_vehicles WHERE vehicle_id = 'v-1' AND plate = '沪A22222'",
    ),
    "phone added, then removed": History(
        "c-1",
        (
            registered("c-1", "+8613700000001"),
            phone_added("c-1", "+8613700000002"),
            phone_removed("c-1", "+8613700000002"),
        ),
        1,
        "SELECT 1 FROM directory_phones HAVING count(*) FILTER (WHERE phone = '+8613700000002') = 0",
    ),
    "phone removed, then added": History(
        "c-1",
        (
            registered("c-1", "+8613700000001"),
            phone_removed("c-1", "+8613700000001"),
            phone_added("c-1", "+8613700000001"),
        ),
        1,
        "SELECT 1 FROM directory_phones WHERE phone = '+8613700000001' AND customer_id = 'c-1'",
    ),
    "customer registered, then phone removed": History(
        "c-1",
        (registered("c-1", "+8613700000001"), phone_removed("c-1", "+8613700000001")),
        0,
        "SELECT 1 FROM directory_phones HAVING count(*) = 0",
    ),
}


async def play(h: Harness, history: History) -> list[Any]:
    envelopes = [
        from_profile(h, event, history.aggregate_id, version)
        for version, event in enumerate(history.events, start=1)
    ]
    await directory_consumed_through(h, await publish_envelopes(h, *envelopes))
    assert await rows(h, history.holds)  # the history is applied: the last word holds
    return envelopes


@pytest.mark.parametrize("case", list(HISTORIES))
async def test_a_stale_event_after_a_newer_one_changes_nothing(harness: Harness, case: str) -> None:
    """Guard: `newer` (advance_read_model) in each handler of the customer-directory consumer. The stale
    copy has an event id of its own (a copy published again by customer-profile), so only the version says
    it is old."""
    history = HISTORIES[case]
    await play(harness, history)

    stale = from_profile(harness, history.events[history.again], history.aggregate_id, history.again + 1)
    await directory_consumed_through(harness, await publish_envelopes(harness, stale))

    assert await rows(harness, "SELECT 1 FROM inbox WHERE event_id = %s", stale.event_id)  # it was handled
    assert await rows(harness, history.holds)


async def test_the_same_event_delivered_twice_counts_once(branch: Harness) -> None:
    """Guards: the consumer's inbox (one row per event id) and, behind it, `newer`: the copy JetStream
    delivers again — here published again under another message id, as a producer's relay does after the
    duplicate window — is recognised by its event id and skipped."""
    history = HISTORIES["phone added, then removed"]
    envelopes = await play(branch, history)

    again = envelopes[history.again]
    await directory_consumed_through(
        branch, await publish_envelopes(branch, again, msg_id=f"{again.event_id}-2")
    )

    [(claims,)] = await rows(branch, "SELECT count(*) FROM inbox WHERE event_id = %s", again.event_id)
    assert claims == 1
    assert await rows(branch, history.holds)
    # And the phone is nobody's again: a walk-in giving it is a stranger who must give a name (were it still
    # c-1's, the customer would be found and only the car be missing: body.brand).
    walk_in = await branch.post(
        f"/v1/branches/{BRANCH}/work-orders",
        {"phone": "13700000002", "plate": "沪A11111", "mileage_km": 1, "complaint": "异响"},
    )
    assert walk_in.status_code == 422, walk_in.text
    assert [error["field"] for error in walk_in.json()["errors"]] == ["body.customer_name"]


# A voided order: the compensation, and nothing after it ------------------------------------------------------

BILL = {
    "line_items": [
        {
            "item_code": "LAB",
            "name": "工时",
            "category": "labour",
            "quantity": "1",
            "unit_price_fen": 10_000,
            "line_total_fen": 10_000,
        }
    ],
    "payments": [{"method": "wechat_pay", "amount_fen": 6_000}, {"method": "cash", "amount_fen": 4_000}],
    "total_fen": 10_000,
}


async def quality_passed_with_an_approved_add_on(h: Harness) -> tuple[str, str]:
    order = await h.walk_in()
    await h.command(order, "technicians", {"technician_id": "tom"})
    proposed = await h.command(
        order, "add-ons", {"item": "雨刮片", "category": "parts", "price_fen": 5_000, "reason": "老化"}
    )
    add_on = proposed.json()["add_on_id"]
    decided = await h.command(
        order,
        f"add-ons/{add_on}/decision",
        {"decision": "approved", "method": "in_person", "estimate_revision_seen": 2},
    )
    assert decided.json()["state"] == "in_progress", decided.text
    passed = await h.command(order, "quality-check", {"passed": True}, role="manager")
    assert passed.json()["state"] == "quality_passed", passed.text
    return order, add_on


async def test_a_refund_above_what_was_paid_is_a_422_and_stores_nothing(branch: Harness) -> None:
    """Guard: WorkOrder.void refuses a refund above the settlement's payments (none before settling)."""
    unpaid, _ = await quality_passed_with_an_approved_add_on(branch)
    paid, _ = await quality_passed_with_an_approved_add_on(branch)
    assert (await branch.command(paid, "settlement", BILL, role="finance")).status_code == 200
    before = await branch.counts()

    for order, refund, state in ((unpaid, 1, "quality_passed"), (paid, 10_001, "settled")):
        refused = await branch.command(
            order, "void", {"reason": "客户投诉", "refunded_fen": refund}, role="manager", sub="max"
        )
        assert refused.status_code == 422, refused.text
        assert [error["field"] for error in refused.json()["errors"]] == ["body.refunded_fen"]
        assert (await branch.get(branch.order_path(order))).json()["state"] == state

    assert await branch.counts() == before


COMMAND_BODIES: dict[str, Any] = {
    "technicians": {"technician_id": "lee"},
    "progress": {"text": "继续"},
    "add-ons": {"item": "机油", "category": "parts", "price_fen": 100, "reason": "补"},
    "add-ons/{add_on_id}/decision": {
        "decision": "declined",
        "method": "phone_call",
        "estimate_revision_seen": 2,
    },
    "quality-check": {"passed": True},
    "settlement": BILL,
    "completion": None,
    "void": {"reason": "再次作废"},
    "customer-link": None,
}


async def test_a_voided_order_refunds_what_was_paid_and_takes_no_command_after(branch: Harness) -> None:
    """Guards: the states each command allows (no command allows `voided`, a void included) and the link
    refused for a voided order; the void's event and read models carry the compensation."""
    order, add_on = await quality_passed_with_an_approved_add_on(branch)
    settled = await branch.command(order, "settlement", BILL, role="finance")
    assert settled.status_code == 200, settled.text

    voided = await branch.command(
        order, "void", {"reason": "客户投诉返工", "refunded_fen": 10_000}, role="manager", sub="max"
    )

    assert voided.status_code == 200, voided.text
    assert voided.json()["state"] == "voided"
    detail = (await branch.get(branch.order_path(order))).json()
    assert detail["state"] == "voided"
    last = detail["history"][-1]
    assert last["event_type"] == "workorder.WorkOrderVoided"
    assert (last["data"]["refunded_fen"], last["data"]["reason"], last["data"]["manager_id"]) == (
        10_000,
        "客户投诉返工",
        "max",
    )
    board = (await branch.get(f"/v1/branches/{BRANCH}/board")).json()
    assert order not in [card["work_order_id"] for column in board["columns"].values() for card in column]
    published = await branch.published(at_least=11)  # branch + 3 staff, the order's 7 events
    [void_event] = [e for e in published if isinstance(e.data, WorkOrderVoided)]
    assert (void_event.aggregate_id, void_event.data.refunded_fen) == (order, 10_000)

    # Every command on the order (walked from the OpenAPI document): 409, and nothing stored.
    prefix = "/v1/branches/{branch_id}/work-orders/{work_order_id}/"
    commands = [
        path.removeprefix(prefix)
        for path, methods in branch.service.app.openapi()["paths"].items()
        if path.startswith(prefix) and "post" in methods
    ]
    # Revoking the links of a voided order is allowed, and harmless: its links are refused anyway.
    assert set(commands) - {"customer-link/revocation"} == set(COMMAND_BODIES)
    before = await branch.counts()
    for command, body in COMMAND_BODIES.items():
        refused = await branch.command(
            order, command.replace("{add_on_id}", add_on), body, role="manager", sub="max"
        )
        assert refused.status_code == 409, (command, refused.text)
    assert await branch.counts() == before
    assert (await branch.get(branch.order_path(order))).json()["version"] == detail["version"]


async def test_an_overpaid_bill_is_a_422_naming_the_payments_and_stores_nothing(branch: Harness) -> None:
    """Guard: the payments must add up to the total exactly — more is refused as well as less
    (settlement.checked_bill)."""
    order, _ = await quality_passed_with_an_approved_add_on(branch)
    before = await branch.counts()

    overpaid = {
        **BILL,
        "payments": [{"method": "cash", "amount_fen": 10_000}, {"method": "alipay", "amount_fen": 1}],
    }
    response = await branch.command(order, "settlement", overpaid, role="finance")

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["body.payments"]
    assert "10001" in response.json()["detail"] and "10000" in response.json()["detail"]
    assert await branch.counts() == before
    detail = (await branch.get(branch.order_path(order))).json()
    assert detail["state"] == "quality_passed"
    assert "workorder.WorkOrderSettled" not in [entry["event_type"] for entry in detail["history"]]
