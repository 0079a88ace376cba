"""Issue 17 asks that one correlation id link every step of a visit from the booking on: the booking starts
it, every later command on the appointment and its work order carries it (workorder keeps it on those
aggregates), and every reaction in another service — the NPS survey sent from a timer hours later included —
keeps its cause's (docs/observability.md)."""

from __future__ import annotations

import json

import pytest
from whole_cluster import Branch, WholeCluster, call, eventually, first_free_slot

pytestmark = pytest.mark.slow

BRANCH = "e2e-correlation"
PHONE = "13712345678"
WO = "/api/workorder/v1"
SHOP = Branch(BRANCH)
PRICE_FEN = 38_000


async def test_one_correlation_id_links_every_step_of_a_visit_from_the_booking_on(
    whole: WholeCluster,
) -> None:
    marks = await whole.stream_marks()
    async with whole.client() as client:
        await SHOP.open(client)
        slot = await first_free_slot(client, BRANCH)
        booking = {
            "slot_start": slot,
            "customer_name": "赵敏",
            "phone": PHONE,
            "plate": "沪C·77777",
            "service_requested": "小保养",
        }
        appointment_id = (
            await call(
                client, "POST", f"{WO}/public/branches/{BRANCH}/appointments", expect=201, json=booking
            )
        )["appointment_id"]
        arrival = {"brand": "丰田", "model": "卡罗拉", "mileage_km": 12_000, "complaint": "保养"}
        opened = await call(
            client,
            "POST",
            f"{WO}/branches/{BRANCH}/appointments/{appointment_id}/arrival",
            SHOP.advisor,
            expect=201,
            json=arrival,
        )
        work_order_id = opened["work_order_id"]
        await SHOP.oil_change(client, work_order_id, PRICE_FEN)

        async def survey_sent() -> bool:
            surveys = await call(
                client,
                "GET",
                "/api/notification/v1/surveys",
                SHOP.manager,
                params={"work_order_id": work_order_id},
            )
            return [survey["status"] for survey in surveys["surveys"]] == ["sent"]

        await eventually(survey_sent, "the visit's survey sent")
        await whole.settled()

    envelopes = [json.loads(message.data) for message in await whole.published_since(marks)]
    visit = [
        envelope
        for envelope in envelopes
        if envelope["aggregate_id"] in (appointment_id, work_order_id)
        or envelope["data"].get("work_order_id") == work_order_id
    ]
    [booked] = [envelope for envelope in visit if envelope["event_type"] == "workorder.AppointmentBooked"]
    assert {"workorder.WorkOrderCompleted", "notification.NpsSurveySent"} <= {e["event_type"] for e in visit}
    assert {envelope["correlation_id"] for envelope in visit} == {booked["correlation_id"]}, [
        (envelope["event_type"], envelope["correlation_id"]) for envelope in visit
    ]
