"""One visit through the whole system as a frontend drives it (issue 17): every service a real process
started as `pitlane up` starts it, every call through the HTTPS gateway. A customer and their car,
registered four months ago and serviced then (the services' clocks steered back), book online, arrive and
are checked in with a photo; the car is dispatched, worked on with a photo, an add-on is proposed and
approved by the customer through their link, QC'd, settled and handed back. Then every other service has
reacted: the profile, one survey, its answer in the NPS, the maintenance reminder's next cycle, the KPIs,
all in the trace of the hand-over call; and every message published conforms to its committed schema."""

from __future__ import annotations

import json
import re
import secrets
import struct
import zlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from whole_cluster import Branch, WholeCluster, call, eventually, first_free_slot, local_today

pytestmark = pytest.mark.slow

BRANCH = "e2e-visit"

PHONE = "13912345678"
PLATE = "沪A·E2E01"
WO = "/api/workorder/v1"
SHOP = Branch(BRANCH)
MANAGER, ADVISOR, TECHNICIAN, FINANCE, OWNER = (
    SHOP.manager,
    SHOP.advisor,
    SHOP.technician,
    SHOP.finance,
    SHOP.owner,
)
ADD_ON_FEN = 48_000
LABOUR_FEN = 18_000
TOTAL_FEN = ADD_ON_FEN + LABOUR_FEN
PREVIOUS_VISIT_FEN = 38_000
PREVIOUS_VISIT_AGO = timedelta(days=120)
MILEAGE_KM = 30_400


def png() -> bytes:
    """A one-pixel PNG: a photo as far as the media store's content check goes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def kpi_period() -> dict[str, str]:
    today = local_today()
    return {"from": str(today), "to": str(today + timedelta(days=1)), "branch_id": BRANCH}


async def test_a_visit_through_the_gateway_reaches_every_service(whole: WholeCluster) -> None:
    marks = await whole.stream_marks()
    async with whole.client() as client:
        # Four months ago: the branch opened, the customer and their car came in for a service.
        whole.steer_clocks(-PREVIOUS_VISIT_AGO)
        try:
            await SHOP.open(client)
            customer_id, vehicle_id = await register(client)
            await whole.settled()  # workorder knows them
            previous_order = await walk_in_service(client, customer_id, vehicle_id)
            await eventually(lambda: survey_status(client, previous_order, "sent"), "the last visit's survey")
        finally:
            whole.steer_clocks(timedelta(0))
        await whole.settled()

        reminders_before = await call(
            client, "GET", f"/api/reminder/v1/vehicles/{vehicle_id}/reminders", ADVISOR
        )
        [maintenance_before] = [r for r in reminders_before["reminders"] if r["kind"] == "maintenance"]
        kpis_before = await call(client, "GET", "/api/analytics/v1/kpis", OWNER, params=kpi_period())
        links_before = await survey_links(client)

        # Today the customer books online, with the phone the chain knows: the booking is theirs.
        booking = {
            "slot_start": await first_free_slot(client, BRANCH),
            "customer_name": "王建国",
            "phone": PHONE,
            "plate": PLATE,
            "service_requested": "刹车异响检查",
        }
        appointment_id = (
            await call(
                client, "POST", f"{WO}/public/branches/{BRANCH}/appointments", expect=201, json=booking
            )
        )["appointment_id"]

        # Arrival checks the car in, with a photo, and opens the work order.
        photo = await call(
            client,
            "POST",
            f"{WO}/branches/{BRANCH}/media",
            ADVISOR,
            expect=201,
            files={"file": ("car.png", png(), "image/png")},
        )
        check_in = {
            "mileage_km": MILEAGE_KM,
            "complaint": "刹车有异响",
            "photo_hashes": [photo["content_hash"]],
        }
        opened = await call(
            client,
            "POST",
            f"{WO}/branches/{BRANCH}/appointments/{appointment_id}/arrival",
            ADVISOR,
            expect=201,
            json=check_in,
        )
        work_order_id = opened["work_order_id"]
        order = f"{WO}/branches/{BRANCH}/work-orders/{work_order_id}"
        detail = await call(client, "GET", order, ADVISOR)  # the booking's customer, the car by its plate
        assert (detail["customer_id"], detail["vehicle_id"]) == (customer_id, vehicle_id), detail

        # Dispatch, progress with a photo, an add-on the technician proposes.
        await call(
            client, "POST", f"{order}/technicians", ADVISOR, json={"technician_id": "tom", "bay_id": "bay-1"}
        )
        progress = {"text": "拆下前轮，刹车片剩余2mm", "attachments": [photo["content_hash"]]}
        await call(client, "POST", f"{order}/progress", TECHNICIAN, json=progress)
        add_on = {
            "item": "更换前刹车片",
            "item_code": "BRK-PAD",
            "category": "parts",
            "price_fen": ADD_ON_FEN,
            "reason": "刹车片剩余2mm",
            "photo_hashes": [photo["content_hash"]],
        }
        proposed = await call(client, "POST", f"{order}/add-ons", TECHNICIAN, json=add_on)

        # The customer approves on their page, through the link the advisor sends.
        link = await call(client, "POST", f"{order}/customer-link", ADVISOR, expect=201)
        assert link["url"] == whole.gateway_url + link["path"], link
        page = await call(client, "GET", link["path"])
        assert "更换前刹车片" in page.text
        photo_on_page = (
            f"{link['path']}/media/{photo['content_hash']}"  # the progress photo, as the page shows it
        )
        assert photo_on_page in page.text
        assert (await call(client, "GET", photo_on_page)).content == png()
        approval = {"estimate_revision_seen": str(proposed["estimate_revision"])}
        await call(
            client,
            "POST",
            f"{link['path']}/add-ons/{proposed['add_on_id']}/approve",
            expect=303,
            data=approval,
        )

        # QC, settlement, and the hand-over, traced from the frontend: the reactions must join its trace.
        await call(
            client, "POST", f"{order}/quality-check", MANAGER, json={"passed": True, "note": "试车无异响"}
        )
        await call(client, "POST", f"{order}/settlement", FINANCE, json=settlement(proposed["add_on_id"]))
        trace_id = secrets.token_hex(16)
        traced = {**ADVISOR, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        completed = await call(client, "POST", f"{order}/completion", traced)
        assert completed["state"] == "completed", completed
        survey_path = await eventually(lambda: new_survey_link(client, links_before), "today's survey sent")
        await whole.settled()

        # The profile shows the visit, the mileage and the spend.
        profile = await call(client, "GET", f"/api/customer-profile/v1/customers/{customer_id}", ADVISOR)
        figures = profile["figures"]
        assert figures["visit_count"] == 2, figures
        assert figures["total_spend_fen"] == PREVIOUS_VISIT_FEN + TOTAL_FEN, figures
        assert figures["last_service_mileage_km"] == MILEAGE_KM, figures
        latest, earlier = profile["visits"]
        assert (latest["work_order_id"], latest["mileage_km"], latest["total_fen"]) == (
            work_order_id,
            MILEAGE_KM,
            TOTAL_FEN,
        ), latest
        assert earlier["work_order_id"] == previous_order, earlier
        [car] = profile["vehicles"]
        assert car["mileage_km"] == MILEAGE_KM and car["visit_count"] == 2, car

        # Exactly one survey of this visit went out.
        surveys = await call(
            client, "GET", "/api/notification/v1/surveys", MANAGER, params={"work_order_id": work_order_id}
        )
        assert [survey["status"] for survey in surveys["surveys"]] == ["sent"], surveys
        assert await survey_links(client) == {*links_before, survey_path}

        # The maintenance reminder moved from the last service's cycle to this one's: the same reminder.
        reminders_after = await call(
            client, "GET", f"/api/reminder/v1/vehicles/{vehicle_id}/reminders", ADVISOR
        )
        [maintenance_after] = [r for r in reminders_after["reminders"] if r["kind"] == "maintenance"]
        assert maintenance_after["reminder_id"] == maintenance_before["reminder_id"]
        today = local_today()
        assert maintenance_before["cycle"] == f"service:{today - PREVIOUS_VISIT_AGO}", maintenance_before
        assert maintenance_after["cycle"] == f"service:{today}", maintenance_after
        assert maintenance_after["due_on"] > maintenance_before["due_on"], (
            maintenance_before,
            maintenance_after,
        )

        # The KPIs moved: the day's visit from a booking, its spend, the customer back after 120 days.
        kpis_after = await call(client, "GET", "/api/analytics/v1/kpis", OWNER, params=kpi_period())
        conversion = (kpis_before["appointment_conversion"], kpis_after["appointment_conversion"])
        assert [(rate["numerator"], rate["denominator"]) for rate in conversion] == [(0, 0), (1, 1)], (
            conversion
        )
        assert kpis_before["spend_per_year_fen"] is None and kpis_after["spend_per_year_fen"] > 0, kpis_after
        assert kpis_after["mean_days_between_visits"] == "120.0", kpis_after
        assert [kpis["activity"][0] for kpis in (kpis_before, kpis_after)] == [
            {"days": 30, "active": 0, "churned": 1},
            {"days": 30, "active": 1, "churned": 0},
        ]

        # The customer answers; the NPS moves.
        nps_before = await call(client, "GET", "/api/analytics/v1/kpis/nps", OWNER, params=kpi_period())
        assert (nps_before["nps"], nps_before["answers"], nps_before["surveys_sent"]) == (None, 0, 1), (
            nps_before
        )
        await call(client, "GET", survey_path)
        await call(client, "POST", survey_path, expect=303, data={"score": "10", "comment": "很专业"})
        await eventually(lambda: survey_status(client, work_order_id, "answered"), "the survey answered")
        await whole.settled()
        nps_after = await call(client, "GET", "/api/analytics/v1/kpis/nps", OWNER, params=kpi_period())
        assert (nps_after["nps"], nps_after["answers"], nps_after["promoters"]) == ("100.0", 1, 1), nps_after
        assert [answer["work_order_id"] for answer in nps_after["answer_list"]] == [work_order_id]
        profile = await call(client, "GET", f"/api/customer-profile/v1/customers/{customer_id}", ADVISOR)
        assert profile["figures"]["latest_nps_score"] == 10, profile["figures"]

        # One trace: the completion call, every service's reaction to it, the survey sent.
        services = {spec.name for spec in whole.specs}
        await eventually(
            lambda: traced_services(whole, trace_id, services),
            "every service's spans in the completion's trace",
        )
        spans = whole.spans.of_trace(trace_id)
        [completion] = [span for span in spans if span.name.endswith("/completion")]
        assert completion.service == "workorder" and completion.parent_span_id == traced["traceparent"][36:52]
        published = {(span.service, span.name) for span in spans if span.name.startswith("publish ")}
        assert {
            ("workorder", f"publish workorder.{BRANCH}.WorkOrderCompleted.v1"),
            ("reminder", f"publish reminder.{BRANCH}.ReminderRescheduled.v1"),
            ("notification", f"publish notification.{BRANCH}.NpsSurveySent.v1"),
        } <= published, published
        processed = {
            span.service for span in spans if span.name == f"process workorder.{BRANCH}.WorkOrderCompleted.v1"
        }
        assert processed == services - {"workorder"}, processed

    envelopes = [json.loads(message.data) for message in await whole.published_since(marks)]
    sent = [
        envelope["data"] for envelope in envelopes if envelope["event_type"] == "notification.NpsSurveySent"
    ]
    assert [survey["work_order_id"] for survey in sent].count(work_order_id) == 1, sent
    # Every message the visit published conforms to its committed JSON Schema.
    assert await whole.assert_published_since_conform(marks) > 0


async def register(client: httpx.AsyncClient) -> tuple[str, str]:
    """The front desk registers the customer and their car in customer-profile."""
    customer = {
        "full_name": "王建国",
        "phone": PHONE,
        "source": "walk_in",
        "consents": [{"channel": "sms", "purpose": "service", "granted": True}],
    }
    answer = await call(
        client, "POST", "/api/customer-profile/v1/customers", ADVISOR, expect=201, json=customer
    )
    car = {
        "owner_customer_id": answer["id"],
        "plate": PLATE,
        "brand": "大众",
        "model": "朗逸",
        "mileage_km": 25_000,
        "registration_date": "2022-05-08",
    }
    vehicle = await call(client, "POST", "/api/customer-profile/v1/vehicles", ADVISOR, expect=201, json=car)
    return str(answer["id"]), str(vehicle["id"])


async def walk_in_service(client: httpx.AsyncClient, customer_id: str, vehicle_id: str) -> str:
    """An oil change without a booking; the work order's id. (The plate must be given beside the car's id:
    without it, workorder answers a 500 — its check-in asserts a plate it never looked up.)"""
    check_in = {"customer_id": customer_id, "vehicle_id": vehicle_id, "plate": PLATE, "mileage_km": 26_000}
    check_in["complaint"] = "保养"
    opened = await call(client, "POST", SHOP.work_orders, ADVISOR, expect=201, json=check_in)
    await SHOP.oil_change(client, opened["work_order_id"], PREVIOUS_VISIT_FEN)
    return str(opened["work_order_id"])


def settlement(add_on_id: str) -> dict[str, Any]:
    return {
        "line_items": [
            {
                "item_code": "BRK-PAD",
                "name": "前刹车片",
                "category": "parts",
                "quantity": "1",
                "unit_price_fen": ADD_ON_FEN,
                "line_total_fen": ADD_ON_FEN,
                "add_on_id": add_on_id,
            },
            {
                "item_code": "LAB-BRK",
                "name": "刹车工时",
                "category": "labour",
                "quantity": "1.5",
                "unit_price_fen": 12_000,
                "line_total_fen": LABOUR_FEN,
            },
        ],
        "payments": [{"method": "wechat_pay", "amount_fen": TOTAL_FEN}],
        "total_fen": TOTAL_FEN,
    }


async def survey_links(client: httpx.AsyncClient) -> set[str]:
    """The survey links the recording provider "sent" to the customer's phone."""
    recorded = await call(
        client, "GET", "/api/notification/v1/recorded-messages", OWNER, params={"address": PHONE}
    )
    return {
        found for message in recorded["messages"] for found in re.findall(r"/n/s/[\w.~-]+", message["body"])
    }


async def new_survey_link(client: httpx.AsyncClient, before: set[str]) -> str | None:
    new = await survey_links(client) - before
    assert len(new) <= 1, new
    return new.pop() if new else None


async def survey_status(client: httpx.AsyncClient, work_order_id: str, status: str) -> bool:
    surveys = await call(
        client, "GET", "/api/notification/v1/surveys", MANAGER, params={"work_order_id": work_order_id}
    )
    return [survey["status"] for survey in surveys["surveys"]] == [status]


async def traced_services(whole: WholeCluster, trace_id: str, services: set[str]) -> bool:
    return {span.service for span in whole.spans.of_trace(trace_id)} >= services
