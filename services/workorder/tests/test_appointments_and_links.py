"""Booking against capacity, the no-show sweeper, the signed customer link, the board, and who may do what."""

from __future__ import annotations

from workorder_harness import BRANCH, Harness, advance, local, stored

from pitlane_events.workorder import AppointmentNoShow
from pitlane_workorder.entrypoints.sweeper import sweep_no_shows


async def test_with_three_bays_a_fourth_booking_is_a_409_suggesting_the_next_free_slots(branch: Harness):
    for n in range(3):
        booked = await branch.book(10, phone=f"1381234567{n}", plate=f"沪A1234{n}")
        assert booked.status_code == 201, booked.text
    await branch.book(11, phone="13900000001", plate="沪C11111")
    before = await branch.counts()

    full = await branch.book(10, phone="13900000002", plate="沪C22222", online=True)
    assert full.status_code == 409, full.text
    problem = full.json()
    assert problem["title"] == "Slot fully booked" and "all 3 bays" in problem["detail"]
    assert [slot["start"] for slot in problem["next_free_slots"]] == [
        "2026-11-16T03:00:00Z",  # 11:00 local still has two bays
        "2026-11-16T04:00:00Z",
        "2026-11-16T05:00:00Z",
    ]
    assert await branch.counts() == before

    # A cancellation frees the bay.
    listed = (await branch.get(f"/v1/branches/{BRANCH}/appointments", params={"on": "2026-11-16"})).json()
    first = next(a for a in listed if a["slot_start"].startswith("2026-11-16T02:00"))
    cancelled = await branch.post(
        f"/v1/branches/{BRANCH}/appointments/{first['appointment_id']}/cancel", {"reason": "客户改期"}
    )
    assert cancelled.status_code == 204
    assert (await branch.book(10, phone="13900000002", plate="沪C22222", online=True)).status_code == 201


async def test_bookings_off_the_grid_or_in_the_past_are_422_naming_the_field(branch: Harness):
    off_grid = await branch.client.post(
        f"/v1/public/branches/{BRANCH}/appointments",
        json={
            "slot_start": local(10, 30),
            "customer_name": "陈",
            "phone": "13812345678",
            "plate": "沪A12345",
            "service_requested": "洗车",
        },
    )
    assert off_grid.status_code == 422 and off_grid.json()["errors"][0]["field"] == "body.slot_start"
    bad_plate = await branch.book(10, plate="XYZ")
    assert bad_plate.status_code == 422 and bad_plate.json()["errors"][0]["field"] == "body.plate"
    advance(branch, hours=3)  # 11:00
    assert (await branch.book(10)).status_code == 422


async def test_a_missed_appointment_becomes_a_no_show_after_the_grace_period(branch: Harness):
    booked = (await branch.book(9)).json()
    advance(branch, hours=1, minutes=14, seconds=59)  # 09:14:59: the last second of the 15 minutes of grace
    assert await sweep_no_shows(branch.service.handlers) == 0
    advance(branch, seconds=1)  # 09:15: missed
    assert await sweep_no_shows(branch.service.handlers) == 1
    assert await sweep_no_shows(branch.service.handlers) == 0  # already marked

    arrival = await branch.post(
        f"/v1/branches/{BRANCH}/appointments/{booked['appointment_id']}/arrival",
        {"vehicle_id": "v-1", "mileage_km": 1, "complaint": "迟到了"},
    )
    assert arrival.status_code == 409 and "is no_show" in arrival.json()["detail"]
    published = await branch.published(at_least=7)  # branch + 3 staff, introduced, booked, no-show
    [no_show] = [e for e in published if isinstance(e.data, AppointmentNoShow)]
    assert no_show.actor.kind == "system" and no_show.data.appointment_id == booked["appointment_id"]
    assert no_show.branch_id == BRANCH  # the branch's subject, which its notifications follow


APPOINTMENTS = f"/v1/branches/{BRANCH}/appointments"


async def day_slots(h: Harness) -> dict[str, int]:
    """The Monday's bays still free, by slot start."""
    day = (await h.get(f"/v1/branches/{BRANCH}/slots", params={"on": "2026-11-16"})).json()
    return {slot["start"]: slot["remaining"] for slot in day["slots"]}


async def test_a_reschedule_moves_the_booking_frees_its_old_slot_and_keeps_the_reason(branch: Harness):
    booked = (await branch.book(10)).json()
    appointment = booked["appointment_id"]
    for n in range(2):  # 11:00 keeps one bay
        assert (await branch.book(11, phone=f"1390000000{n}", plate=f"沪C0000{n}")).status_code == 201
    ten, eleven = "2026-11-16T02:00:00Z", "2026-11-16T03:00:00Z"

    moved = await branch.post(
        f"{APPOINTMENTS}/{appointment}/reschedule", {"slot_start": local(11), "reason": "客户改到11点"}
    )
    assert moved.status_code == 204, moved.text
    assert (await day_slots(branch))[ten] == 3 and (await day_slots(branch))[eleven] == 0
    listed = (await branch.get(APPOINTMENTS, params={"on": "2026-11-16"})).json()
    [row] = [a for a in listed if a["appointment_id"] == appointment]
    assert (row["slot_start"], row["slot_end"], row["status"]) == (eleven, "2026-11-16T04:00:00Z", "booked")
    [rescheduled] = await stored(branch, "AppointmentRescheduled", appointment)
    assert rescheduled["data"] == {
        "appointment_id": appointment,
        "customer_id": booked["customer_id"],
        "previous_slot": {"start": ten, "end": eleven},
        "slot": {"start": eleven, "end": "2026-11-16T04:00:00Z"},
        "reason": "客户改到11点",
    }
    assert rescheduled["branch_id"] == BRANCH
    assert rescheduled["actor"] == {"kind": "user", "id": "amy", "role": "advisor"}

    # Refused, each a 422 on the slot saying why, and nothing stored: where it already is, a slot begun.
    before = await branch.counts()
    again = await branch.post(f"{APPOINTMENTS}/{appointment}/reschedule", {"slot_start": local(11)})
    assert again.status_code == 422, again.text
    assert again.json()["errors"] == [
        {"field": "body.slot_start", "message": "the appointment is already in this slot"}
    ]
    advance(branch, hours=2, minutes=30)  # 10:30
    begun = await branch.post(f"{APPOINTMENTS}/{appointment}/reschedule", {"slot_start": local(10)})
    assert begun.status_code == 422, begun.text
    assert begun.json()["errors"] == [{"field": "body.slot_start", "message": "the slot has already begun"}]
    assert await branch.counts() == before

    cancelled = await branch.post(
        f"{APPOINTMENTS}/{appointment}/cancel", {"reason": "临时出差", "cancelled_by": "customer"}
    )
    assert cancelled.status_code == 204, cancelled.text
    assert (await day_slots(branch))[eleven] == 1
    [cancellation] = await stored(branch, "AppointmentCancelled", appointment)
    assert cancellation["branch_id"] == BRANCH
    assert (cancellation["data"]["cancelled_by"], cancellation["data"]["reason"]) == ("customer", "临时出差")
    after_cancel = await branch.post(f"{APPOINTMENTS}/{appointment}/reschedule", {"slot_start": local(12)})
    assert after_cancel.status_code == 409
    assert after_cancel.json()["detail"] == (
        f"appointment {appointment} is cancelled; only a booked appointment can reschedule"
    )


async def order_awaiting_approval(h: Harness) -> tuple[str, str, str]:
    order = await h.walk_in()
    await h.command(order, "technicians", {"technician_id": "tom"})
    proposed = await h.command(
        order,
        "add-ons",
        {"item": "更换空调滤芯", "category": "parts", "price_fen": 12_000, "reason": "滤芯发黑"},
    )
    page = (await h.post(h.order_path(order, "customer-link"))).json()["path"]
    return order, proposed.json()["add_on_id"], page


async def test_an_approval_link_used_twice_changes_nothing_the_second_time(branch: Harness):
    order, add_on_id, page = await order_awaiting_approval(branch)
    form = {"estimate_revision_seen": "2"}
    assert (await branch.client.post(f"{page}/add-ons/{add_on_id}/approve", data=form)).status_code == 303
    after_first = await branch.counts()
    again = await branch.client.post(f"{page}/add-ons/{add_on_id}/approve", data=form)
    assert again.status_code == 303
    assert await branch.counts() == after_first
    contrary = await branch.client.post(f"{page}/add-ons/{add_on_id}/decline", data=form)
    assert contrary.status_code == 409 and "此项已经处理过" in contrary.text
    assert await branch.counts() == after_first
    history = (await branch.get(branch.order_path(order))).json()["history"]
    assert [e["event_type"] for e in history].count("workorder.AddOnApproved") == 1


async def test_a_forged_or_expired_link_is_a_403(branch: Harness):
    _, add_on_id, page = await order_awaiting_approval(branch)
    payload, signature = page.removeprefix("/c/").split(".")
    forged_signature = f"/c/{payload}.{signature[:-2]}AA"
    other_payload = f"/c/{payload[:-2]}xx.{signature}"
    for forged in (forged_signature, other_payload, "/c/not-a-link"):
        assert (await branch.client.get(forged)).status_code == 403
        refused = await branch.client.post(
            f"{forged}/add-ons/{add_on_id}/approve", data={"estimate_revision_seen": "2"}
        )
        assert refused.status_code == 403

    advance(branch, hours=73)  # links live 72 hours
    before = await branch.counts()
    expired = await branch.client.post(
        f"{page}/add-ons/{add_on_id}/approve", data={"estimate_revision_seen": "2"}
    )
    assert expired.status_code == 403 and "此链接无效或已过期" in expired.text
    assert await branch.counts() == before


async def test_an_advisor_records_a_decision_taken_on_the_phone(branch: Harness):
    order, add_on_id, _ = await order_awaiting_approval(branch)
    decided = await branch.command(
        order,
        f"add-ons/{add_on_id}/decision",
        {"decision": "declined", "method": "phone_call", "estimate_revision_seen": 2, "reason": "下次再换"},
    )
    assert decided.json() == {
        "work_order_id": order,
        "state": "in_progress",
        "version": 4,
        "add_on_id": add_on_id,
        "decision": "declined",
        "recorded": True,
    }
    assert decided.headers["etag"] == '"4"'
    [declined] = [
        e
        for e in (await branch.get(branch.order_path(order))).json()["history"]
        if e["event_type"] == "workorder.AddOnDeclined"
    ]
    assert declined["actor"] == {"kind": "user", "id": "amy", "role": "advisor"}
    assert declined["data"]["decided_by"] == "advisor" and declined["data"]["method"] == "phone_call"


async def test_an_arrival_without_a_name_shows_the_name_given_at_booking_on_the_board(branch: Harness):
    appointment = (await branch.book(10)).json()["appointment_id"]  # booked by 陈先生
    advance(branch, hours=2)

    arrived = await branch.post(
        f"{APPOINTMENTS}/{appointment}/arrival",
        {"vehicle_id": "v-1", "mileage_km": 42_000, "complaint": "保养"},
    )

    assert arrived.status_code == 201, arrived.text
    [card] = (await branch.get(f"/v1/branches/{BRANCH}/board")).json()["columns"]["opened"]
    assert (card["work_order_id"], card["customer_name"]) == (arrived.json()["work_order_id"], "陈先生")


async def test_an_unknown_appointment_add_on_or_photo_is_refused_naming_it(branch: Harness):
    order, _, _ = await order_awaiting_approval(branch)
    unknown_photo = "sha256:" + "0" * 64
    before = await branch.counts()

    no_appointment = await branch.post(f"{APPOINTMENTS}/ap-nobody/cancel", {"reason": "重复"})
    no_add_on = await branch.command(
        order,
        "add-ons/ao-nobody/decision",
        {"decision": "approved", "method": "phone_call", "estimate_revision_seen": 2},
    )
    progress = await branch.command(order, "progress", {"text": "拍照", "attachments": [unknown_photo]})
    proposal = await branch.command(
        order,
        "add-ons",
        {
            "item": "更换雨刮",
            "category": "parts",
            "price_fen": 9_000,
            "reason": "老化",
            "photo_hashes": [unknown_photo],
        },
    )

    assert (no_appointment.status_code, no_appointment.json()["detail"]) == (
        404,
        f"branch {BRANCH} has no appointment ap-nobody",
    )
    assert (no_add_on.status_code, no_add_on.json()["detail"]) == (
        404,
        f"work order {order} has no add-on ao-nobody",
    )
    assert [(r.status_code, [e["field"] for e in r.json()["errors"]]) for r in (progress, proposal)] == [
        (422, ["body.attachments.0"]),
        (422, ["body.photo_hashes.0"]),
    ]
    assert await branch.counts() == before


async def test_the_board_shows_orders_by_state_with_time_in_state(branch: Harness):
    waiting = await branch.walk_in()
    working = await branch.walk_in()
    advance(branch, minutes=20)
    await branch.command(working, "technicians", {"technician_id": "tom"})
    advance(branch, minutes=30)
    board = (await branch.get(f"/v1/branches/{BRANCH}/board", role="technician")).json()
    columns = board["columns"]
    assert [o["work_order_id"] for o in columns["opened"]] == [waiting]
    assert [o["work_order_id"] for o in columns["dispatched"]] == [working]
    assert columns["opened"][0]["seconds_in_state"] == 50 * 60
    dispatched = columns["dispatched"][0]
    assert dispatched["seconds_in_states"] == {"opened": 20 * 60, "dispatched": 30 * 60}
    assert dispatched["plate"] == "沪B54321" and dispatched["customer_name"] == "刘女士"
    await branch.command(waiting, "void", {"reason": "客户离店"}, role="manager", sub="max")
    columns = (await branch.get(f"/v1/branches/{BRANCH}/board")).json()["columns"]
    assert columns["opened"] == []


async def test_roles_and_branches_are_enforced(branch: Harness):
    order = await branch.walk_in()
    voided_by_advisor = await branch.command(order, "void", {"reason": "x"})
    assert voided_by_advisor.status_code == 403
    other_branch = await branch.client.get(
        f"/v1/branches/{BRANCH}/board", headers=branch.auth(branches=("b2",))
    )
    assert other_branch.status_code == 403
    assert (await branch.client.get(f"/v1/branches/{BRANCH}/board")).status_code == 401
    await branch.book(10)
    listed = (
        await branch.get(
            f"/v1/branches/{BRANCH}/appointments", params={"on": "2026-11-16"}, role="technician"
        )
    ).json()
    assert listed[0]["phone"] == "138****5678"
