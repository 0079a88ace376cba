"""From online booking to completion over HTTP, against real PostgreSQL and NATS: every transition a command,
every event on the WORKORDER stream, a photo stored and served back by its hash."""

from __future__ import annotations

import hashlib
import re

from workorder_harness import BRANCH, Harness, advance

from pitlane_events.workorder import CustomerIntroduced, WorkOrderCompleted
from pitlane_workorder.service_layer import limits

PHOTO = b"\xff\xd8\xff\xe0" + b"brake pad, 2 mm left" * 50


async def test_online_booking_to_completion_with_a_photo_served_by_hash(branch: Harness):
    h = branch
    booked = await h.book(10, online=True, attribution=await h.attribution("campaign", "camp-double11"))
    assert booked.status_code == 201, booked.text
    appointment_id = booked.json()["appointment_id"]

    photo_hash = await h.upload(PHOTO)
    assert photo_hash == "sha256:" + hashlib.sha256(PHOTO).hexdigest()

    advance(h, hours=2)  # 10:00, the customer arrives
    arrived = await h.post(
        f"/v1/branches/{BRANCH}/appointments/{appointment_id}/arrival",
        {
            "vehicle_id": "v-1",
            "mileage_km": 42_000,
            "complaint": "刹车有异响",
            "inspection": [{"item": "左前轮胎", "status": "attention", "photo_hashes": [photo_hash]}],
            "photo_hashes": [photo_hash],
        },
    )
    assert arrived.status_code == 201, arrived.text
    order = arrived.json()["work_order_id"]

    assigned = await h.command(order, "technicians", {"technician_id": "tom", "bay_id": "bay-2"})
    assert assigned.json()["state"] == "dispatched"
    advance(h, minutes=10)
    progress = await h.command(
        order,
        "progress",
        {"text": "拆下前轮，刹车片磨损严重", "attachments": [photo_hash]},
        role="technician",
        sub="tom",
    )
    assert progress.json()["state"] == "in_progress", progress.text
    proposed = await h.command(
        order,
        "add-ons",
        {
            "item": "更换前刹车片",
            "item_code": "BRK-PAD",
            "category": "parts",
            "price_fen": 48_000,
            "reason": "刹车片剩余2mm",
            "photo_hashes": [photo_hash],
        },
        role="technician",
        sub="tom",
    )
    assert proposed.json()["state"] == "awaiting_approval", proposed.text
    add_on_id, revision = proposed.json()["add_on_id"], proposed.json()["estimate_revision"]

    link = await h.post(h.order_path(order, "customer-link"))
    page_path = link.json()["path"]
    page = await h.client.get(page_path)
    assert page.status_code == 200 and "更换前刹车片" in page.text and "待您确认" in page.text
    assert f"{page_path}/media/{photo_hash}" in page.text
    english = await h.client.get(page_path, params={"lang": "en"})
    assert "Waiting for your decision" in english.text
    served = await h.client.get(f"{page_path}/media/{photo_hash}")
    assert served.content == PHOTO and served.headers["content-type"] == "image/jpeg"

    advance(h, minutes=5)
    approved = await h.client.post(
        f"{page_path}/add-ons/{add_on_id}/approve", data={"estimate_revision_seen": str(revision)}
    )
    assert approved.status_code == 303, approved.text
    assert "已同意" in (await h.client.get(page_path)).text

    failed = await h.command(
        order, "quality-check", {"passed": False, "reasons": ["左前轮螺栓扭矩不足"]}, role="manager"
    )
    assert failed.json()["state"] == "in_progress"  # a failed check returns the car to work
    passed = await h.command(order, "quality-check", {"passed": True, "note": "复检合格"}, role="manager")
    assert passed.json()["state"] == "quality_passed"
    settled = await h.command(
        order,
        "settlement",
        {
            "line_items": [
                {
                    "item_code": "BRK-PAD",
                    "name": "前刹车片",
                    "category": "parts",
                    "quantity": "1",
                    "unit_price_fen": 48_000,
                    "cost_fen": 30_000,
                    "line_total_fen": 48_000,
                    "add_on_id": add_on_id,
                },
                {
                    "item_code": "LAB-BRK",
                    "name": "刹车工时",
                    "category": "labour",
                    "quantity": "1.5",
                    "unit_price_fen": 12_000,
                    "line_total_fen": 18_000,
                },
            ],
            "discounts": [{"kind": "campaign", "amount_fen": 6_000, "campaign_id": "camp-double11"}],
            "campaign_id": "camp-double11",
            "coupon_code": "D11-8888",
            "payments": [
                {"method": "wechat_pay", "amount_fen": 50_000, "reference": "4200001234"},
                {"method": "cash", "amount_fen": 10_000},
            ],
            "total_fen": 60_000,
        },
        role="finance",
        sub="fay",
    )
    assert settled.json()["state"] == "settled", settled.text
    completed = await h.command(order, "completion")
    assert completed.json()["state"] == "completed", completed.text

    staff_copy = await h.get(f"/v1/media/{photo_hash}", role="technician")
    assert staff_copy.content == PHOTO

    detail = (await h.get(h.order_path(order))).json()
    assert [entry["event_type"].split(".")[1] for entry in detail["history"]] == [
        "WorkOrderOpened",
        "TechnicianAssigned",
        "ProgressRecorded",
        "AddOnProposed",
        "AddOnApproved",
        "QualityCheckFailed",
        "QualityCheckPassed",
        "WorkOrderSettled",
        "WorkOrderCompleted",
    ]
    proposal = detail["history"][3]["data"]
    assert (proposal["item"], proposal["item_code"], proposal["price_fen"]) == (
        "更换前刹车片",
        "BRK-PAD",
        48_000,
    )
    opened = detail["history"][0]["data"]
    assert (opened["photo_hashes"], opened["inspection"][0]["photo_hashes"]) == ([photo_hash], [photo_hash])
    assert detail["history"][2]["data"]["attachments"] == [
        {"content_hash": photo_hash, "media_type": "image/jpeg", "size_bytes": len(PHOTO)}
    ]
    assert detail["history"][5]["data"]["reasons"] == ["左前轮螺栓扭矩不足"]
    assert detail["history"][6]["data"]["note"] == "复检合格"
    for bill in (detail["history"][7]["data"], detail["history"][8]["data"]):
        assert (bill["coupon_code"], bill["campaign_id"]) == ("D11-8888", "camp-double11")
        assert [(p["method"], p["amount_fen"], p["reference"]) for p in bill["payments"]] == [
            ("wechat_pay", 50_000, "4200001234"),
            ("cash", 10_000, None),
        ]
    approval = detail["history"][4]
    assert approval["actor"]["kind"] == "customer"
    assert approval["data"]["method"] == "signed_link" and approval["data"]["photo_hashes_seen"] == [
        photo_hash
    ]
    assert approval["data"]["estimate_revision_seen"] == revision

    # branch + 3 staff, the first-time booker introduced, booking, arrival, the order's 9
    published = await h.published(at_least=16)
    types = [envelope.event_type.split(".")[1] for envelope in published]
    assert types[:7] == [
        "BranchOpened",
        "StaffMemberAdded",
        "StaffMemberAdded",
        "StaffMemberAdded",
        "CustomerIntroduced",
        "AppointmentBooked",
        "AppointmentArrived",
    ]
    assert types[7:] == [entry["event_type"].split(".")[1] for entry in detail["history"]]
    assert all(envelope.branch_id == BRANCH for envelope in published)
    introduced, booking = published[4].data, published[5].data
    assert booking.channel == "online" and booking.campaign_id == "camp-double11"
    assert isinstance(introduced, CustomerIntroduced) and introduced.customer_id == booking.customer_id
    assert introduced.met_through == "online"
    visit = published[-1].data
    assert isinstance(visit, WorkOrderCompleted)
    assert (visit.plate, visit.mileage_km, visit.appointment_id, visit.branch_id) == (
        "沪A12345",
        42_000,
        appointment_id,
        BRANCH,
    )
    assert visit.technician_ids == ("tom",) and [a.decision for a in visit.add_ons] == ["approved"]
    assert (visit.subtotal_fen, visit.discount_fen, visit.total_fen, visit.paid_fen) == (
        66_000,
        6_000,
        60_000,
        60_000,
    )
    assert (visit.campaign_id, visit.coupon_code) == ("camp-double11", "D11-8888")
    assert re.fullmatch(r"[0-9a-f-]{36}", visit.customer_id)  # an online booker gets an id of their own


async def test_an_invalid_transition_is_a_409_naming_the_current_state(branch: Harness):
    order = await branch.walk_in()
    before = await branch.counts()
    response = await branch.command(order, "completion")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"work order {order} is opened" in response.json()["detail"]
    assert await branch.counts() == before


async def test_two_concurrent_updates_to_one_work_order_one_wins_the_other_gets_409(branch: Harness):
    import asyncio

    order = await branch.walk_in()
    assigned = await branch.command(order, "technicians", {"technician_id": "tom"})
    etag = assigned.headers["etag"]
    first, second = await asyncio.gather(
        branch.command(
            order,
            "progress",
            {"text": "更换空调滤芯"},
            role="technician",
            sub="tom",
            headers={"If-Match": etag},
        ),
        branch.command(order, "technicians", {"technician_id": "lee"}, headers={"If-Match": etag}),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409], (first.text, second.text)
    loser = first if first.status_code == 409 else second
    assert loser.json()["title"] == "Concurrent modification"
    detail = (await branch.get(branch.order_path(order))).json()
    assert detail["version"] == 3  # opened, assigned, and exactly one of the two


async def test_a_settlement_that_does_not_add_up_is_a_422_and_stores_nothing(branch: Harness):
    order = await branch.walk_in()
    await branch.command(order, "technicians", {"technician_id": "tom"})
    await branch.command(order, "progress", {"text": "完成"}, role="technician", sub="tom")
    await branch.command(order, "quality-check", {"passed": True}, role="manager")
    before = await branch.counts()
    response = await branch.command(
        order,
        "settlement",
        {
            "line_items": [
                {
                    "item_code": "AC",
                    "name": "空调检修",
                    "category": "labour",
                    "quantity": "2",
                    "unit_price_fen": 15_000,
                    "line_total_fen": 30_000,
                }
            ],
            "payments": [{"method": "alipay", "amount_fen": 25_000}],
            "total_fen": 30_000,
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body.payments"
    assert await branch.counts() == before
    assert (await branch.get(branch.order_path(order))).json()["state"] == "quality_passed"


async def test_a_bill_with_too_many_lines_is_a_422_naming_the_field_and_stores_nothing(branch: Harness):
    order = await branch.walk_in()
    await branch.command(order, "technicians", {"technician_id": "tom"})
    await branch.command(order, "progress", {"text": "完成"}, role="technician", sub="tom")
    await branch.command(order, "quality-check", {"passed": True}, role="manager")
    before = await branch.counts()
    lines = [
        {
            "item_code": f"P-{n:04d}",
            "name": f"配件{n}",
            "category": "parts",
            "quantity": "1",
            "unit_price_fen": 100,
            "line_total_fen": 100,
        }
        for n in range(limits.MAX_LINE_ITEMS + 1)
    ]
    total = 100 * len(lines)  # a bill that adds up: only its size is wrong
    response = await branch.command(
        order,
        "settlement",
        {"line_items": lines, "payments": [{"method": "cash", "amount_fen": total}], "total_fen": total},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == ["body.line_items"]
    assert await branch.counts() == before  # no event, no outbox row
    detail = (await branch.get(branch.order_path(order))).json()
    assert detail["state"] == "quality_passed"
    assert "workorder.WorkOrderSettled" not in [entry["event_type"] for entry in detail["history"]]
