"""Search with paging, merging duplicates (history follows), masked phones for technicians, and the access
log of full-profile reads that owners query."""

from __future__ import annotations

from datetime import UTC, datetime

from profile_testing import (
    Producer,
    Service,
    completion,
    eventually,
    figures,
    register_customer,
    register_vehicle,
    stored_events,
)

from pitlane_events.customer_profile import CustomersMerged


async def test_search_by_name_phone_prefix_plate_fragment_and_tag_with_paging(service: Service) -> None:
    ids = []
    for n in range(5):
        ids.append(
            await register_customer(
                service,
                full_name=f"张{n}",
                phone=f"1370000000{n}",
                other_phones=[],
                tags=["注重品质"] if n % 2 == 0 else ["价格敏感"],
            )
        )
        await register_vehicle(service, ids[-1], f"沪A1234{n}")
    await register_customer(service, full_name="李四", phone="13900000009", other_phones=[], tags=[])

    page = (await service.get("/v1/customers", name="张", limit=2, offset=2)).json()
    assert page["total"] == 5 and [hit["full_name"] for hit in page["items"]] == ["张2", "张3"]
    by_phone = (await service.get("/v1/customers", phone_prefix="1370000000")).json()
    assert by_phone["total"] == 5
    by_plate = (await service.get("/v1/customers", plate="1234")).json()
    assert by_plate["total"] == 5 and by_plate["items"][0]["plates"] == ["沪A12340"]
    by_tag_and_name = (await service.get("/v1/customers", tag="注重品质", name="张")).json()
    assert [hit["full_name"] for hit in by_tag_and_name["items"]] == ["张0", "张2", "张4"]
    assert (await service.get("/v1/customers")).status_code == 422


async def test_merging_duplicates_moves_phones_vehicles_and_history(
    service: Service, producer: Producer
) -> None:
    survivor = await register_customer(service, other_phones=[], tags=["注重品质"])
    duplicate = await register_customer(
        service, full_name="王建国", phone="13700000000", other_phones=[], tags=["价格敏感"]
    )
    vehicle_id = await register_vehicle(service, duplicate, "沪A12345")
    await producer.publish(
        completion(
            work_order_id="wo-1",
            customer_id=duplicate,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=30_000,
            completed_at=datetime(2026, 3, 1, tzinfo=UTC),
            total_fen=12_300,
        ),
        aggregate_id="wo-1",
        version=5,
    )

    async def visit_counted() -> bool:
        return (await figures(service, duplicate))[0] == 1

    await eventually(visit_counted)
    response = await service.post(
        f"/v1/customers/{survivor}/merge", {"merged_customer_ids": [duplicate], "reason": "同一人"}
    )
    assert response.status_code == 200, response.text
    [merged] = await stored_events(service, survivor, CustomersMerged)
    assert (merged["data"]["merged_customer_ids"], merged["data"]["reason"]) == ([duplicate], "同一人")

    for params in ({"phone": "13700000000"}, {"plate": "沪A12345"}, {"phone": "13812345678"}):
        profile = (await service.get("/v1/lookup", **params)).json()
        assert profile["customer"]["customer_id"] == survivor
    assert sorted(profile["customer"]["tags"]) == ["价格敏感", "注重品质"]
    assert [v["plate"] for v in profile["vehicles"]] == ["沪A12345"]
    assert [v["work_order_id"] for v in profile["visits"]] == ["wo-1"]
    assert (profile["figures"]["visit_count"], profile["figures"]["total_spend_fen"]) == (1, 12_300)
    assert (await service.get(f"/v1/customers/{duplicate}")).status_code == 404
    assert (await service.patch(f"/v1/customers/{duplicate}", {"notes": "x"})).status_code == 404

    # A later visit reported under the old id counts for the survivor.
    await producer.publish(
        completion(
            work_order_id="wo-2",
            customer_id=duplicate,
            vehicle_id=vehicle_id,
            plate="沪A12345",
            mileage_km=31_000,
            completed_at=datetime(2026, 4, 1, tzinfo=UTC),
            total_fen=100,
        ),
        aggregate_id="wo-2",
        version=5,
    )

    async def followed() -> bool:
        return await figures(service, survivor) == (2, 12_400)

    await eventually(followed)


async def test_technicians_see_masked_phones_and_cannot_write(service: Service) -> None:
    customer_id = await register_customer(service)
    profile = (await service.get("/v1/lookup", "technician", plate="沪A00000")).json()
    assert profile["status"] == 404
    await register_vehicle(service, customer_id, "沪A00000")

    profile = (await service.get("/v1/lookup", "technician", plate="沪A00000")).json()
    assert profile["customer"]["primary_phone"] == "138****5678"
    assert profile["customer"]["wechat_id"] is None
    assert {p["phone"] for p in profile["customer"]["phones"]} == {"138****5678", "139****1111"}
    hits = (await service.get("/v1/customers", "technician", name="王")).json()["items"]
    assert hits[0]["primary_phone"] == "138****5678"
    assert (await service.get("/v1/customers", "technician", phone_prefix="138")).status_code == 422
    assert (
        await service.patch(f"/v1/customers/{customer_id}", {"notes": "x"}, role="technician")
    ).status_code == 403
    assert (await service.get(f"/v1/customers/{customer_id}", "analyst")).status_code == 403
    full = (await service.get(f"/v1/customers/{customer_id}", "advisor")).json()
    assert full["customer"]["primary_phone"] == "+8613812345678"
    assert full["customer"]["wechat_id"] == "wx_wangjg"


async def test_every_full_profile_read_is_logged_and_only_owners_query_the_log(service: Service) -> None:
    customer_id = await register_customer(service)
    await register_vehicle(service, customer_id, "沪A12345")
    await service.get(f"/v1/customers/{customer_id}", "advisor", sub="amy")
    await service.get("/v1/lookup", "technician", sub="tom", plate="沪A12345")
    await service.get("/v1/customers", "advisor", sub="amy", name="王")  # a search is not a full profile

    assert (await service.get("/v1/profile-reads", "manager")).status_code == 403
    log = (
        await service.client.get(
            "/v1/profile-reads", params={"customer_id": customer_id}, headers=service.owner_headers()
        )
    ).json()
    assert [(r["reader_user_id"], r["reader_role"], r["via"]) for r in log] == [
        ("tom", "technician", "plate"),
        ("amy", "advisor", "id"),
    ]
    by_reader = (
        await service.client.get(
            "/v1/profile-reads", params={"reader_user_id": "tom"}, headers=service.owner_headers()
        )
    ).json()
    assert [r["customer_id"] for r in by_reader] == [customer_id]
