"""Invariants that span requests, under real concurrency: each request runs in its own transaction on its own
connection, and `contend` holds the writes of one table until every request has read what it decides on, so
all of them decide on the same state before any commits. Without the guard each test names (the branch row
lock, the event store's one version per stream, the link lock), more than one of them wins."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from workorder_harness import BRANCH, Harness, advance, contend, local, rows, writes_held

APPOINTMENTS = f"/v1/branches/{BRANCH}/appointments"


async def booked_at(h: Harness, hour: int) -> int:
    [(count,)] = await rows(
        h,
        "SELECT count(*) FROM appointments WHERE status = 'booked' AND slot_start = %s",
        local(hour),
    )
    return int(count)


async def event_count(h: Harness, event_type: str, stream_id: str | None = None) -> int:
    [(count,)] = await rows(
        h,
        "SELECT count(*) FROM events WHERE event_type = %s AND (%s::text IS NULL OR stream_id = %s)",
        f"workorder.{event_type}",
        stream_id,
        stream_id,
    )
    return int(count)


def statuses(responses: list[httpx.Response]) -> list[int]:
    return sorted(response.status_code for response in responses)


async def test_six_bookings_for_the_last_free_bay_one_wins(branch: Harness) -> None:
    """Guard: the branch row lock in Handlers.book (queries.branch(lock=True))."""
    for n in range(2):  # two of the three bays at 10:00 are taken
        assert (await branch.book(10, phone=f"1380000000{n}", plate=f"沪A0000{n}")).status_code == 201

    answers = await contend(
        branch,
        "appointments",
        *(branch.book(10, phone=f"1391111000{n}", plate=f"沪B1111{n}", online=n % 2 == 0) for n in range(6)),
    )

    assert statuses(answers) == [201] + [409] * 5, [a.text for a in answers]
    assert all(a.json()["title"] == "Slot fully booked" for a in answers if a.status_code == 409)
    assert await booked_at(branch, 10) == 3
    assert await event_count(branch, "AppointmentBooked") == 3


async def test_reschedules_and_a_booking_into_the_last_free_bay_one_wins(branch: Harness) -> None:
    """Guard: the same branch row lock, taken by Handlers.reschedule too."""
    for n in range(2):
        assert (await branch.book(10, phone=f"1380000000{n}", plate=f"沪A0000{n}")).status_code == 201
    movers = []
    for n in range(5):
        booked = await branch.book(11 + n % 3, phone=f"1372222000{n}", plate=f"沪C2222{n}")
        assert booked.status_code == 201, booked.text
        movers.append(booked.json()["appointment_id"])

    answers = await contend(
        branch,
        "appointments",
        *(branch.post(f"{APPOINTMENTS}/{a}/reschedule", {"slot_start": local(10)}) for a in movers),
        branch.book(10, phone="13933330000", plate="沪D33330", online=True),
    )

    winners = [a for a in answers if a.status_code in (201, 204)]
    assert len(winners) == 1 and statuses(answers).count(409) == 5, [a.text for a in answers]
    assert await booked_at(branch, 10) == 3
    assert await event_count(branch, "AppointmentRescheduled") == (1 if winners[0].status_code == 204 else 0)


ARRIVAL: dict[str, Any] = {"vehicle_id": "v-1", "mileage_km": 42_000, "complaint": "保养"}


@pytest.mark.parametrize("other", ["arrival", "cancel", "no-show"])
async def test_an_appointment_takes_one_outcome_when_two_arrive_at_once(branch: Harness, other: str) -> None:
    """Guard: one version per stream in the event store (uq_events_stream_version): both load the booked
    appointment, one appends its outcome, the other's append at the same version fails (409)."""
    appointment = (await branch.book(9)).json()["appointment_id"]
    advance(branch, hours=1, minutes=20)  # 09:20: the grace period is over, and the car is here after all
    path = f"{APPOINTMENTS}/{appointment}"
    bodies: dict[str, dict[str, Any]] = {
        "arrival": ARRIVAL,
        "cancel": {"reason": "客户来电取消"},
        "no-show": {},
    }
    body = bodies[other]

    answers = await contend(
        branch, "appointments", branch.post(f"{path}/arrival", ARRIVAL), branch.post(f"{path}/{other}", body)
    )

    assert [a.status_code for a in answers].count(409) == 1, [a.text for a in answers]
    [winner] = [a for a in answers if a.status_code != 409]
    assert winner.status_code in (201, 204), winner.text
    outcomes = [
        event_type
        for (event_type,) in await rows(
            branch, "SELECT event_type FROM events WHERE stream_id = %s ORDER BY version", appointment
        )
    ]
    assert len(outcomes) == 2, outcomes  # booked, then one outcome
    opened = await rows(branch, "SELECT work_order_id FROM work_orders")
    [(status, work_order_id)] = await rows(
        branch, "SELECT status, work_order_id FROM appointments WHERE appointment_id = %s", appointment
    )
    if winner.status_code == 201:
        assert outcomes[1] == "workorder.AppointmentArrived" and status == "arrived"
        assert opened == [(winner.json()["work_order_id"],)] and work_order_id == opened[0][0]
    else:
        assert status == {"cancel": "cancelled", "no-show": "no_show"}[other]
        assert opened == [] and work_order_id is None


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
    "payments": [{"method": "cash", "amount_fen": 10_000}],
    "total_fen": 10_000,
}


async def quality_passed(h: Harness) -> str:
    order = await h.walk_in()
    await h.command(order, "technicians", {"technician_id": "tom"})
    await h.command(order, "progress", {"text": "完成"}, role="technician", sub="tom")
    passed = await h.command(order, "quality-check", {"passed": True}, role="manager")
    assert passed.json()["state"] == "quality_passed", passed.text
    return order


@pytest.mark.parametrize(
    ("first", "second", "at"),
    [
        ("settlement", "settlement", "quality_passed"),
        ("completion", "completion", "settled"),
        ("void", "completion", "settled"),
        ("void", "settlement", "quality_passed"),
    ],
)
async def test_two_commands_on_one_work_order_at_once_one_is_recorded(
    branch: Harness, first: str, second: str, at: str
) -> None:
    """Guard: one version per stream in the event store; without If-Match both commands start from the same
    version, and the second append at it is a 409."""
    order = await quality_passed(branch)
    if at == "settled":
        assert (await branch.command(order, "settlement", BILL, role="finance")).status_code == 200
    bodies = {"settlement": BILL, "completion": None, "void": {"reason": "客户取消", "refunded_fen": 0}}
    before = (await branch.get(branch.order_path(order))).json()

    answers = await contend(
        branch,
        "work_orders",
        *(
            branch.command(order, command, bodies[command], role="manager", sub="max")
            for command in (first, second)
        ),
    )

    assert statuses(answers) == [200, 409], [a.text for a in answers]
    assert "Concurrent modification" in [a.json()["title"] for a in answers if a.status_code == 409]
    [winner] = [command for command, a in zip((first, second), answers, strict=True) if a.status_code == 200]
    detail = (await branch.get(branch.order_path(order))).json()
    assert (detail["version"], detail["state"]) == (before["version"] + 1, STATE_AFTER[winner])
    assert [e["event_type"] for e in detail["history"]] == [
        *(e["event_type"] for e in before["history"]),
        f"workorder.{EVENT_OF[winner]}",
    ]


STATE_AFTER = {"settlement": "settled", "completion": "completed", "void": "voided"}
EVENT_OF = {"settlement": "WorkOrderSettled", "completion": "WorkOrderCompleted", "void": "WorkOrderVoided"}


async def awaiting_approval(h: Harness) -> tuple[str, str, str]:
    """(order, add-on, customer page path) of a walk-in whose add-on waits for the customer."""
    order = await h.walk_in()
    await h.command(order, "technicians", {"technician_id": "tom"})
    proposed = await h.command(
        order, "add-ons", {"item": "更换空调滤芯", "category": "parts", "price_fen": 12_000, "reason": "发黑"}
    )
    assert proposed.status_code == 200, proposed.text
    page = (await h.post(h.order_path(order, "customer-link"))).json()["path"]
    return order, proposed.json()["add_on_id"], page


def decisions_of(detail: dict[str, Any]) -> list[str]:
    return [
        entry["event_type"]
        for entry in detail["history"]
        if entry["event_type"] in ("workorder.AddOnApproved", "workorder.AddOnDeclined")
    ]


async def test_an_approval_link_tapped_twice_at_once_records_one_decision_and_answers_both(
    branch: Harness,
) -> None:
    """Guard: the link lock (queries.lock_links), under which a decision through a link loads the order:
    the second tap finds the first's decision on record (303, nothing recorded) instead of failing its
    append at the same version (a 409 page for a decision that was in fact taken)."""
    order, add_on, page = await awaiting_approval(branch)
    form = {"estimate_revision_seen": "2"}

    answers = await contend(
        branch,
        "events",
        branch.client.post(f"{page}/add-ons/{add_on}/approve", data=form),
        branch.client.post(f"{page}/add-ons/{add_on}/approve", data=form),
    )

    assert statuses(answers) == [303, 303], [a.text for a in answers]
    assert decisions_of((await branch.get(branch.order_path(order))).json()) == ["workorder.AddOnApproved"]


@pytest.mark.parametrize("by", ["the link", "the advisor"])
async def test_contrary_decisions_at_once_record_one(branch: Harness, by: str) -> None:
    """Guards: one version per stream in the event store (the advisor's command takes no link lock); two
    decisions through the link are also serialised by the link lock, so that case fails only without both."""
    order, add_on, page = await awaiting_approval(branch)
    form = {"estimate_revision_seen": "2"}
    decline = (
        branch.client.post(f"{page}/add-ons/{add_on}/decline", data=form)
        if by == "the link"
        else branch.command(
            order,
            f"add-ons/{add_on}/decision",
            {"decision": "declined", "method": "phone_call", "estimate_revision_seen": 2},
        )
    )

    answers = await contend(
        branch, "events", branch.client.post(f"{page}/add-ons/{add_on}/approve", data=form), decline
    )

    assert [a.status_code for a in answers].count(409) == 1, [a.text for a in answers]
    decided = decisions_of((await branch.get(branch.order_path(order))).json())
    assert len(decided) == 1
    approved_answer, declined_answer = answers
    expected = "workorder.AddOnApproved" if approved_answer.status_code == 303 else "workorder.AddOnDeclined"
    assert decided == [expected] and declined_answer.status_code != approved_answer.status_code


async def test_a_revocation_answered_is_never_followed_by_a_decision_through_the_withdrawn_link(
    branch: Harness,
) -> None:
    """Guard: the link lock. The decision has passed the page's link check and is about to record when the
    advisor revokes the order's links: the revocation must wait for it (the decision came first), not answer
    204 and let the withdrawn link's decision be recorded after it."""
    order, add_on, page = await awaiting_approval(branch)

    async with writes_held(branch, "events") as held:
        decision = asyncio.ensure_future(
            branch.client.post(f"{page}/add-ons/{add_on}/approve", data={"estimate_revision_seen": "2"})
        )
        await held.reached([decision])  # checked, and waiting to append its event
        assert not decision.done()
        revocation = asyncio.ensure_future(branch.post(branch.order_path(order, "customer-link/revocation")))
        await held.reached([decision, revocation])
        revoked_before_the_decision_was_recorded = revocation.done()

    decided, revoked = await asyncio.gather(decision, revocation)
    assert (decided.status_code, revoked.status_code) == (303, 204), (decided.text, revoked.text)
    assert not revoked_before_the_decision_was_recorded
    assert decisions_of((await branch.get(branch.order_path(order))).json()) == ["workorder.AddOnApproved"]
    assert (await branch.client.get(page)).status_code == 403


async def test_a_decision_through_a_link_revoked_in_the_meantime_is_refused_and_records_nothing(
    branch: Harness,
) -> None:
    """Guard: the generation is checked again in the decision's own transaction (the page's check ran in an
    earlier one): a revocation committed in between refuses the decision."""
    order, add_on, page = await awaiting_approval(branch)

    async with writes_held(branch, "customer_links") as held:
        revocation = asyncio.ensure_future(branch.post(branch.order_path(order, "customer-link/revocation")))
        await held.reached([revocation])  # the order's links are locked, the new generation not yet written
        decision = asyncio.ensure_future(
            branch.client.post(f"{page}/add-ons/{add_on}/approve", data={"estimate_revision_seen": "2"})
        )
        await held.reached([revocation, decision])

    revoked, decided = await asyncio.gather(revocation, decision)
    assert revoked.status_code == 204, revoked.text
    assert decided.status_code == 403 and "此链接无效或已过期" in decided.text, decided.text
    detail = (await branch.get(branch.order_path(order))).json()
    assert decisions_of(detail) == [] and detail["state"] == "awaiting_approval"
