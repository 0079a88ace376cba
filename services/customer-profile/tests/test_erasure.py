"""PIPL erasure: afterwards neither the API, nor a replay of the stored events, nor the raw tables, nor the
published stream yield the customer's name or phone; anonymous figures stay."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from profile_testing import (
    Producer,
    Service,
    completion,
    eventually,
    figures,
    register_customer,
    register_vehicle,
    stream_texts,
)
from sqlalchemy import select, text

from pitlane_customer_profile.adapters.event_store import ProfileEventStore
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.adapters.tables import customers, erasures
from pitlane_events.customer_profile import CustomerErased

SECRETS = (
    "王建国",
    "王建华",
    "8613812345678",
    "13812345678",
    "13900001111",
    "13700000000",
    "wx_wangjg",
    "只在周末来店",
)


def leaked(texts: list[str]) -> list[str]:
    return [secret for secret in SECRETS if any(secret in t for t in texts)]


async def test_after_erasure_nothing_yields_the_name_or_phone(service: Service, producer: Producer) -> None:
    customer_id = await register_customer(service)
    await service.patch(f"/v1/customers/{customer_id}", {"full_name": "王建华"})
    duplicate = await register_customer(
        service, full_name="王建国", phone="13700000000", other_phones=[], wechat_id=None
    )
    assert (
        await service.post(f"/v1/customers/{customer_id}/merge", {"merged_customer_ids": [duplicate]})
    ).status_code == 200
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345")
    await producer.publish(
        completion(
            work_order_id="wo-1",
            customer_id=customer_id,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=20_000,
            completed_at=datetime(2026, 5, 1, tzinfo=UTC),
            total_fen=45_600,
        ),
        aggregate_id="wo-1",
        version=5,
    )

    async def published_and_counted() -> bool:
        return (
            len(leaked(await stream_texts(producer))) == len(SECRETS)
            and (await figures(service, customer_id))[0] == 1
        )

    await eventually(published_and_counted)  # the test's probes see the data while it is there

    assert (await service.post(f"/v1/customers/{customer_id}/erasure", {}, role="advisor")).status_code == 403
    response = await service.client.post(
        f"/v1/customers/{customer_id}/erasure", headers=service.owner_headers()
    )
    assert response.status_code == 200, response.text
    request_id = response.json()["erasure_request_id"]

    # The API
    gone = await service.get(f"/v1/customers/{customer_id}")
    assert (gone.status_code, gone.json()["detail"]) == (404, f"no customer {customer_id}")
    changed = await service.patch(f"/v1/customers/{customer_id}", {"notes": "x"})
    assert (changed.status_code, changed.json()["detail"]) == (404, f"customer {customer_id} was erased")
    for params in ({"phone": "13812345678"}, {"phone": "13700000000"}, {"plate": "沪A12345"}):
        assert (await service.get("/v1/lookup", **params)).status_code == 404
    assert (await service.get("/v1/customers", name="王")).json()["total"] == 0
    assert (
        await service.client.post(f"/v1/customers/{customer_id}/erasure", headers=service.owner_headers())
    ).status_code == 404
    assert (
        await service.post("/v1/customers", {"full_name": "赵六", "phone": "13600000000"})
    ).status_code == 201

    # A replay of the stored events, with a fresh vault over the same database (as a rebuild would run)
    async with service.runtime.sessions() as session:
        replayed = await ProfileEventStore(PiiVault(service.settings.master_key())).replay(session)
        raw_events = (await session.execute(text("SELECT envelope::text FROM events"))).scalars().all()
        raw_outbox = (
            (await session.execute(text("SELECT convert_from(payload, 'UTF8') FROM outbox"))).scalars().all()
        )
        row = (
            (await session.execute(select(customers).where(customers.c.customer_id == customer_id)))
            .mappings()
            .one()
        )
    stream_of_customer = [e for e in replayed if e["aggregate_id"] in (customer_id, duplicate)]
    assert stream_of_customer and not leaked([json.dumps(e, ensure_ascii=False) for e in stream_of_customer])
    registered = next(
        e for e in stream_of_customer if e["event_type"] == "customer-profile.CustomerRegistered"
    )
    assert registered["data"]["full_name"] is None and registered["data"]["phone"] is None
    assert not leaked(raw_events) and not leaked(raw_outbox)
    # ... while another customer's stored events still open
    assert any(e["data"].get("full_name") == "赵六" for e in replayed)

    # Anonymous figures stay
    assert (row["full_name"], row["primary_phone"], row["visit_count"], row["total_spend_fen"]) == (
        None,
        None,
        1,
        45_600,
    )
    assert row["erased_at"] is not None

    # The published stream: CustomerErased (ids only) is there, the personal copies are scrubbed
    async def scrubbed() -> bool:
        async with service.runtime.sessions() as session:
            done = await session.scalar(
                select(erasures.c.stream_messages_scrubbed_at).where(
                    erasures.c.erasure_request_id == request_id
                )
            )
        return done is not None

    await eventually(scrubbed)
    texts = await stream_texts(producer)
    assert leaked(texts) == []
    erased = [json.loads(t) for t in texts if CustomerErased.event_type in t]
    assert [e["data"] for e in erased] == [
        {"customer_id": customer_id, "vehicle_ids": [vehicle_id], "erasure_request_id": request_id}
    ]
    assert any("赵六" in t for t in texts)  # other customers' messages are untouched
    # The erased customer's number is free for whoever holds it now.
    assert (
        await service.post("/v1/customers", {"full_name": "钱七", "phone": "13812345678"})
    ).status_code == 201


async def test_two_erasures_of_one_customer_at_once_erase_once_and_refuse_the_other(service: Service) -> None:
    customer_id = await register_customer(service)
    path = f"/v1/customers/{customer_id}/erasure"

    answers = await asyncio.gather(
        *(service.client.post(path, headers=service.owner_headers()) for _ in range(2))
    )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] < 300 and statuses[1] in (404, 409), [a.text for a in answers]
    async with service.runtime.sessions() as session:
        recorded = (await session.execute(select(erasures.c.customer_id))).scalars().all()
    assert recorded == [customer_id]
