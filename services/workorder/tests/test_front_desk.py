"""What the front desk and a frontend read and are told, over HTTP against real PostgreSQL and NATS: branches
and staff, a day's slots, the nearest free slots for an off-grid booking, commands answering state, version and
ETag, and the customer's page with its bill and its error pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from workorder_harness import BRANCH, Harness, advance, local

from pitlane_platform.security.links import CustomerLink, sign_link

DAY = "2026-11-16"


async def test_opening_hours_with_an_offset_are_a_422_naming_them_and_open_nothing(branch: Harness):
    # An aware time beside a naive one used to fail the comparison in the model: a 500.
    hours = [{"weekday": 1, "opens_at": "08:00:00Z", "closes_at": "18:00:00"}]
    body = {"branch_id": "b3", "name": "闵行店", "address": "上海市闵行区1号", "opening_hours": hours}
    body["bays"] = [{"bay_id": "x", "name": "1号"}]
    headers = branch.auth("owner", sub="olga", branches=("*",))
    refused = await branch.post("/v1/branches", body, role="owner", sub="olga", headers=headers)

    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["body.opening_hours.0"]
    assert (await branch.client.get("/v1/branches/b3", headers=headers)).status_code == 404


async def test_branches_are_listed_and_read_with_their_booking_grid(branch: Harness):
    other = await branch.post(
        "/v1/branches",
        {
            "branch_id": "b2",
            "name": "徐汇店",
            "address": "上海市徐汇区1号",
            "bays": [{"bay_id": "x", "name": "1号"}],
        },
        role="owner",
        sub="olga",
        headers=branch.auth("owner", sub="olga", branches=("*",)),
    )
    assert other.status_code == 201, other.text

    everything = await branch.client.get("/v1/branches", headers=branch.auth("owner", branches=("*",)))
    assert [b["branch_id"] for b in everything.json()] == ["b1", "b2"]
    mine = (await branch.get("/v1/branches")).json()  # the advisor's token covers b1 only
    assert [b["branch_id"] for b in mine] == ["b1"]

    read = await branch.get(f"/v1/branches/{BRANCH}")
    assert read.status_code == 200
    assert read.json() == {
        "branch_id": BRANCH,
        "name": "浦东张江店",
        "address": "上海市浦东新区张江路1号",
        "timezone": "Asia/Shanghai",
        "opening_hours": [
            {"weekday": day, "opens_at": "09:00:00", "closes_at": "18:00:00"} for day in range(1, 8)
        ],
        "bays": [{"bay_id": f"bay-{n}", "name": f"{n}号工位", "has_lift": True} for n in (1, 2, 3)],
        "slot_minutes": 60,
        "opened_at": "2026-11-16T00:00:00Z",
    }
    assert (await branch.get("/v1/branches/b2")).status_code == 403
    unknown = await branch.client.get("/v1/branches/nowhere", headers=branch.auth("owner", branches=("*",)))
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


async def test_a_staff_member_is_read_by_id(branch: Harness):
    tom = await branch.get(f"/v1/branches/{BRANCH}/staff/tom", role="technician")
    assert tom.status_code == 200
    assert tom.json() == {
        "branch_id": BRANCH,
        "staff_id": "tom",
        "display_name": "李师傅",
        "role": "technician",
    }
    listed = (await branch.get(f"/v1/branches/{BRANCH}/staff")).json()
    assert [member["staff_id"] for member in listed] == ["amy", "lee", "tom"]
    assert (await branch.get(f"/v1/branches/{BRANCH}/staff/nobody")).status_code == 404
    before = await branch.counts()
    again = await branch.post(
        f"/v1/branches/{BRANCH}/staff",
        {"staff_id": "tom", "display_name": "另一个人", "role": "advisor"},
        role="manager",
        sub="max",
    )
    assert (again.status_code, again.json()["detail"]) == (
        409,
        f"tom is already on the staff of branch {BRANCH}",
    )
    assert await branch.counts() == before
    assert (await branch.get(f"/v1/branches/{BRANCH}/staff/tom")).json()["display_name"] == "李师傅"


async def test_a_days_slots_show_the_bays_left_in_each(branch: Harness):
    for n in range(2):
        assert (await branch.book(10, phone=f"1381234567{n}", plate=f"沪A1234{n}")).status_code == 201
    for n in range(3):
        assert (await branch.book(11, phone=f"1391234567{n}", plate=f"沪B1234{n}")).status_code == 201
    advance(branch, hours=1, minutes=30)  # 09:30: the 09:00 slot has begun

    staff_view = await branch.get(f"/v1/branches/{BRANCH}/slots", params={"on": DAY}, role="technician")
    public_view = await branch.client.get(f"/v1/public/branches/{BRANCH}/slots", params={"on": DAY})
    assert staff_view.status_code == public_view.status_code == 200
    assert staff_view.json() == public_view.json()
    day = staff_view.json()
    assert (day["on"], day["timezone"], day["slot_minutes"], day["bays"]) == (DAY, "Asia/Shanghai", 60, 3)
    slots = {slot["start"]: slot for slot in day["slots"]}
    # The local day: 09:00 to 17:00 Shanghai, 01:00 to 09:00 UTC.
    assert list(slots) == [f"2026-11-16T{hour:02d}:00:00Z" for hour in range(1, 10)]
    assert slots["2026-11-16T01:00:00Z"] == {
        "start": "2026-11-16T01:00:00Z",
        "end": "2026-11-16T02:00:00Z",
        "places": 3,
        "booked": 0,
        "held": 0,
        "remaining": 3,
        "bookable": False,  # begun
    }
    assert (slots["2026-11-16T02:00:00Z"]["remaining"], slots["2026-11-16T02:00:00Z"]["bookable"]) == (
        1,
        True,
    )
    assert (slots["2026-11-16T03:00:00Z"]["remaining"], slots["2026-11-16T03:00:00Z"]["bookable"]) == (
        0,
        False,
    )

    bad_day = await branch.get(f"/v1/branches/{BRANCH}/slots", params={"on": "16/11/2026"})
    assert bad_day.status_code == 422 and bad_day.json()["errors"][0]["field"] == "query.on"
    assert (
        await branch.client.get("/v1/public/branches/nowhere/slots", params={"on": DAY})
    ).status_code == 404


async def test_an_off_grid_booking_or_reschedule_is_a_422_with_the_nearest_free_slots(branch: Harness):
    for n in range(3):
        assert (await branch.book(10, phone=f"1381234567{n}", plate=f"沪A1234{n}")).status_code == 201
    kept = (await branch.book(15)).json()
    before = await branch.counts()

    off_grid = await branch.book(10, online=True, slot_start=local(10, 30))
    assert off_grid.status_code == 422, off_grid.text
    assert off_grid.headers["content-type"] == "application/problem+json"
    problem = off_grid.json()
    assert problem["title"] == "Not a bookable slot"
    assert problem["errors"] == [{"field": "body.slot_start", "message": problem["errors"][0]["message"]}]
    # 11:00 is half an hour away; 10:00 is full; 09:00 and 12:00 are as far, so both.
    assert [slot["start"] for slot in problem["nearest_free_slots"]] == [
        "2026-11-16T01:00:00Z",
        "2026-11-16T03:00:00Z",
        "2026-11-16T04:00:00Z",
    ]

    moved = await branch.post(
        f"/v1/branches/{BRANCH}/appointments/{kept['appointment_id']}/reschedule",
        {"slot_start": local(19)},  # after closing: the day's last slots are nearest
    )
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "body.slot_start"
    assert [slot["start"] for slot in moved.json()["nearest_free_slots"]] == [
        "2026-11-16T07:00:00Z",  # 15:00 has a bay left besides this appointment's own
        "2026-11-16T08:00:00Z",
        "2026-11-16T09:00:00Z",  # 17:00, two hours before 19:00; the next morning is fourteen after
    ]
    into_full = await branch.post(
        f"/v1/branches/{BRANCH}/appointments/{kept['appointment_id']}/reschedule", {"slot_start": local(10)}
    )
    assert into_full.status_code == 409
    assert into_full.json()["next_free_slots"][0]["start"] == "2026-11-16T03:00:00Z"
    assert await branch.counts() == before


async def test_a_days_slots_count_the_bookings_of_its_morning_before_utc_midnight(harness: Harness):
    """A branch opening at 07:00 in Shanghai: its day starts at 23:00 UTC the evening before."""
    await harness.open_branch(
        opening_hours=[{"weekday": d, "opens_at": "07:00:00", "closes_at": "09:00:00"} for d in range(1, 8)]
    )
    for n in range(2):
        booked = await harness.book(7, day=17, phone=f"1381234567{n}", plate=f"沪A1234{n}", online=True)
        assert booked.status_code == 201, booked.text
    day = (await harness.get(f"/v1/branches/{BRANCH}/slots", params={"on": "2026-11-17"})).json()
    assert [(slot["start"], slot["booked"], slot["remaining"]) for slot in day["slots"]] == [
        ("2026-11-16T23:00:00Z", 2, 1),
        ("2026-11-17T00:00:00Z", 0, 3),
    ]


async def test_a_full_slot_suggests_no_slot_whose_bookings_it_did_not_count(harness: Harness):
    """A branch open on Mondays only, one bay, one slot a day: its suggestions look two weeks ahead, and the
    bookings counted end there, so the Monday two weeks on, full too, is not offered as free."""
    await harness.open_branch(
        bays=1,
        slot_minutes=480,
        opening_hours=[{"weekday": 1, "opens_at": "09:00:00", "closes_at": "17:00:00"}],
    )
    mondays = {}
    for day in (16, 23, 30):
        booked = await harness.book(9, day=day, phone=f"138000000{day}", plate=f"沪A000{day}")
        assert booked.status_code == 201, booked.text
        mondays[day] = booked.json()["appointment_id"]

    full = await harness.book(9, phone="13900000001", plate="沪C11111", online=True)
    assert full.status_code == 409, full.text
    assert full.json()["next_free_slots"] == []

    cancelled = await harness.post(
        f"/v1/branches/{BRANCH}/appointments/{mondays[23]}/cancel", {"reason": "客户改期"}
    )
    assert cancelled.status_code == 204, cancelled.text
    full = await harness.book(9, phone="13900000001", plate="沪C11111", online=True)
    assert full.json()["next_free_slots"] == [
        {"start": "2026-11-23T01:00:00Z", "end": "2026-11-23T09:00:00Z"}
    ]


async def test_check_in_and_arrival_answer_the_work_orders_state_version_and_etag(branch: Harness):
    walk_in = await branch.post(
        f"/v1/branches/{BRANCH}/work-orders",
        {
            "customer_id": "c-9",
            "vehicle_id": "v-9",
            "plate": "沪B54321",
            "mileage_km": 1,
            "complaint": "异响",
        },
    )
    assert walk_in.status_code == 201
    assert walk_in.json() == {
        "work_order_id": walk_in.json()["work_order_id"],
        "state": "opened",
        "version": 1,
    }
    assert walk_in.headers["etag"] == '"1"'

    booked = (await branch.book(9)).json()
    arrived = await branch.post(
        f"/v1/branches/{BRANCH}/appointments/{booked['appointment_id']}/arrival",
        {"vehicle_id": "v-1", "mileage_km": 42_000, "complaint": "保养"},
    )
    assert arrived.status_code == 201
    assert (arrived.json()["state"], arrived.json()["version"], arrived.headers["etag"]) == (
        "opened",
        1,
        '"1"',
    )

    order = arrived.json()["work_order_id"]
    assigned = await branch.command(
        order, "technicians", {"technician_id": "tom"}, headers={"If-Match": '"1"'}
    )
    assert (assigned.json()["version"], assigned.headers["etag"]) == (2, '"2"')
    before = await branch.counts()
    stale = await branch.command(order, "technicians", {"technician_id": "lee"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["title"] == "Concurrent modification"
    assert stale.json()["detail"] == f"stream {order} was expected at version 1, found 2"
    assert await branch.counts() == before
    for malformed in ('"seven"', "9" * 5000, '"1", "2"', 'W/"-1"'):
        refused = await branch.command(
            order, "technicians", {"technician_id": "lee"}, headers={"If-Match": malformed}
        )
        assert refused.status_code == 422, refused.text
        assert [error["field"] for error in refused.json()["errors"]] == ["header.if-match"]
    # Who is asking comes first: no token is a 401 whatever the headers say.
    anonymous = await branch.client.post(
        branch.order_path(order, "technicians"),
        json={"technician_id": "lee"},
        headers={"If-Match": "9" * 5000},
    )
    assert anonymous.status_code == 401, anonymous.text
    assert await branch.counts() == before


async def test_a_technician_bay_or_branch_that_does_not_exist_is_refused_naming_it(branch: Harness):
    order = await branch.walk_in()
    before = await branch.counts()

    nobody = await branch.command(order, "technicians", {"technician_id": "nobody"})
    no_bay = await branch.command(order, "technicians", {"technician_id": "tom", "bay_id": "bay-9"})
    nowhere = await branch.client.get(
        "/v1/branches/nowhere/slots", params={"on": "2026-11-16"}, headers=branch.auth(branches=("nowhere",))
    )

    assert [(r.status_code, r.json().get("errors")) for r in (nobody, no_bay)] == [
        (422, [{"field": "body.technician_id", "message": f"no technician nobody at {BRANCH}"}]),
        (422, [{"field": "body.bay_id", "message": f"branch {BRANCH} has no bay bay-9"}]),
    ]
    assert (nowhere.status_code, nowhere.json()["detail"]) == (404, "branch nowhere does not exist")
    assert await branch.counts() == before


async def test_every_work_order_command_refuses_a_stale_if_match(branch: Harness):
    """Each command of an order's life, sent with the ETag of the version before, is a 409 that stores
    nothing; with the current ETag it is recorded."""
    order = await branch.walk_in()
    version = 1

    async def step(command: str, body: Any = None, **who: str) -> dict[str, Any]:
        nonlocal version
        before = await branch.counts()
        stale = await branch.command(order, command, body, headers={"If-Match": f'"{version - 1}"'}, **who)
        assert stale.status_code == 409, (command, stale.text)
        assert stale.json()["title"] == "Concurrent modification", command
        assert await branch.counts() == before, command
        done = await branch.command(order, command, body, headers={"If-Match": f'"{version}"'}, **who)
        assert done.status_code in (200, 201), (command, done.text)
        version = done.json()["version"]
        return dict(done.json())

    await step("technicians", {"technician_id": "tom"})
    await step("progress", {"text": "拆检"}, role="technician", sub="tom")
    proposed = await step(
        "add-ons", {"item": "空调滤芯", "category": "parts", "price_fen": 12_000, "reason": "发黑"}
    )
    decision = {"decision": "declined", "method": "in_person", "estimate_revision_seen": 2}
    await step(f"add-ons/{proposed['add_on_id']}/decision", decision)
    await step("quality-check", {"passed": True}, role="manager")
    bill = {
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
    await step("settlement", bill, role="finance", sub="fay")
    await step("completion")
    voided = await step("void", {"reason": "重复开单", "refunded_fen": 10_000}, role="manager", sub="max")
    assert (voided["state"], voided["version"]) == ("voided", 9)


async def settled_and_handed_back(h: Harness) -> tuple[str, str]:
    """A walk-in through QC, settlement and hand-over, a few minutes apart; (order, page path)."""
    order = await h.walk_in()
    await h.command(order, "technicians", {"technician_id": "tom"})
    await h.command(order, "progress", {"text": "更换机油机滤"}, role="technician", sub="tom")
    page = (await h.post(h.order_path(order, "customer-link"))).json()["path"]
    unsettled = await h.client.get(page)
    assert 'id="bill"' not in unsettled.text and 'id="step-settled" class="pending"' in unsettled.text
    advance(h, minutes=50)  # 08:50
    assert (await h.command(order, "quality-check", {"passed": True}, role="manager")).status_code == 200
    advance(h, minutes=10)  # 09:00
    settled = await h.command(
        order,
        "settlement",
        {
            "line_items": [
                {
                    "item_code": "OIL-5W30",
                    "name": "机油 5W-30",
                    "category": "parts",
                    "quantity": "4.5",
                    "unit_price_fen": 8_850,
                    "line_total_fen": 39_825,
                },
                {
                    "item_code": "LAB-OIL",
                    "name": "保养工时",
                    "category": "labour",
                    "quantity": "1",
                    "unit_price_fen": 123_456,
                    "line_total_fen": 123_456,
                },
            ],
            "discounts": [{"kind": "membership", "amount_fen": 3_281}],
            "payments": [
                {"method": "wechat_pay", "amount_fen": 150_000},
                {"method": "cash", "amount_fen": 10_000},
            ],
            "total_fen": 160_000,
        },
        role="finance",
        sub="fay",
    )
    assert settled.status_code == 200, settled.text
    advance(h, minutes=15)  # 09:15
    assert (await h.command(order, "completion")).json()["state"] == "completed"
    return order, page


async def test_the_customers_page_shows_the_bill_in_yuan_and_each_step_with_its_time(branch: Harness):
    _, page = await settled_and_handed_back(branch)
    chinese = await branch.client.get(page)
    assert chinese.status_code == 200 and chinese.headers["content-type"].startswith("text/html")
    text = chinese.text
    for shown in (
        "账单",
        "机油 5W-30",
        "4.5",
        "¥398.25",  # 4.5 × 88.50
        "¥1,234.56",
        "小计",
        "¥1,632.81",
        "会员优惠",
        "−¥32.81",
        "合计",
        "¥1,600.00",
        "微信支付",
        "¥1,500.00",
        "现金",
        "¥100.00",
        "接车 · <time",
        "质检通过 · <time",
        "结算 · <time",
        "交车 · <time",
    ):
        assert shown in text, shown
    # Times are shown on the branch's clock (Shanghai), from the UTC instants stored.
    assert 'datetime="2026-11-16T00:50:00+00:00">11-16 08:50</time>' in text  # QC
    assert 'datetime="2026-11-16T01:00:00+00:00">11-16 09:00</time>' in text  # settled, payments
    assert 'datetime="2026-11-16T01:15:00+00:00">11-16 09:15</time>' in text  # handed back
    assert 'class="pending"' not in text

    english = (await branch.client.get(page, params={"lang": "en"})).text
    for shown in ("Your bill", "Member discount", "WeChat Pay", "Cash", "Total", "Handed back", "¥1,600.00"):
        assert shown in english, shown
    assert "微信支付" not in english


async def test_errors_on_the_customers_pages_are_pages_in_the_customers_language(branch: Harness):
    order = await branch.walk_in()
    await branch.command(order, "technicians", {"technician_id": "tom"})
    proposed = await branch.command(
        order, "add-ons", {"item": "空调滤芯", "category": "parts", "price_fen": 12_000, "reason": "发黑"}
    )
    add_on_id = proposed.json()["add_on_id"]
    page = (await branch.post(branch.order_path(order, "customer-link"))).json()["path"]
    assert (
        await branch.client.post(f"{page}/add-ons/{add_on_id}/approve", data={"estimate_revision_seen": "2"})
    ).status_code == 303
    before = await branch.counts()

    def is_page(response: httpx.Response, status: int, text: str, *, lang: str = "zh-CN") -> bool:
        return (
            response.status_code == status
            and response.headers["content-type"].startswith("text/html")
            and f'<html lang="{lang}">' in response.text
            and text in response.text
        )

    forged = f"/c/{page.removeprefix('/c/')[:-2]}AA"
    assert is_page(await branch.client.get(forged), 403, "此链接无效或已过期")
    assert is_page(await branch.client.get(forged, params={"lang": "en"}), 403, "has expired", lang="en")
    refused = await branch.client.post(
        f"{forged}/add-ons/{add_on_id}/approve", params={"lang": "en"}, data={"estimate_revision_seen": "2"}
    )
    assert is_page(refused, 403, "Please ask the shop for a new one", lang="en")

    contrary = await branch.client.post(
        f"{page}/add-ons/{add_on_id}/decline", params={"lang": "en"}, data={"estimate_revision_seen": "2"}
    )
    assert is_page(contrary, 409, "already been decided", lang="en")
    assert f'href="{page}?lang=en"' in contrary.text  # back to the page, which shows what is on record
    contrary_zh = await branch.client.post(
        f"{page}/add-ons/{add_on_id}/decline", data={"estimate_revision_seen": "2"}
    )
    assert is_page(contrary_zh, 409, "此项已经处理过")

    missing_field = await branch.client.post(f"{page}/add-ons/{add_on_id}/approve", data={})
    assert is_page(missing_field, 422, "提交的内容无效")
    token = sign_link(
        branch.settings.link_secret.get_secret_value(),
        CustomerLink("no-such-order", BRANCH, datetime.now(UTC) + timedelta(days=3650)),
    )
    assert is_page(
        await branch.client.get(f"/c/{token}", params={"lang": "en"}), 404, "could not find", lang="en"
    )
    assert is_page(await branch.client.get(f"{page}/no/such/route"), 404, "找不到您要查看的内容")
    assert await branch.counts() == before

    # Staff routes keep answering problem+json.
    staff_error = await branch.get(branch.order_path("no-such-order"))
    assert (
        staff_error.status_code == 404 and staff_error.headers["content-type"] == "application/problem+json"
    )
