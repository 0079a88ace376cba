"""Registering, changing and reading customers and vehicles over HTTP; validation at the edge; roles."""

from __future__ import annotations

from profile_testing import Service, make_vin, register_customer, register_vehicle, wang
from sqlalchemy import func, select

from pitlane_customer_profile.adapters.tables import customers, vehicles
from pitlane_customer_profile.service_layer import limits
from pitlane_platform.schema import events, outbox


async def stored_rows(service: Service) -> tuple[int, int, int, int]:
    async with service.runtime.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(table))
            for table in (events, outbox, customers, vehicles)
        ]
    return tuple(counts)  # type: ignore[return-value]


REGISTERED_AS_GIVEN = (
    "wechat_id",
    "gender",
    "birthday",
    "source",
    "membership_tier",
    "preferred_services",
    "notes",
    "referrer_customer_id",
)


async def test_a_registered_customer_and_vehicle_are_found_by_plate_phone_and_vin(service: Service) -> None:
    referrer = await register_customer(service, full_name="李梅", phone="13700000000", other_phones=[])
    customer_id = await register_customer(service, referrer_customer_id=referrer)
    vin = make_vin(1)
    vehicle_id = await register_vehicle(
        service,
        customer_id,
        "粤b·d12345",
        vin,
        mileage_km=12000,
        insurance=[
            {
                "coverage": "commercial",
                "insurer": "中国平安",
                "expires_on": "2027-03-31",
                "policy_number": "PDAA2026",
            }
        ],
    )

    for params in ({"plate": "粤BD12345"}, {"phone": "13812345678"}, {"vin": vin.lower()}):
        response = await service.get("/v1/lookup", **params)
        assert response.status_code == 200, response.text
        profile = response.json()
        assert profile["customer"]["customer_id"] == customer_id
        assert profile["customer"]["full_name"] == "王建国"
        assert profile["customer"]["primary_phone"] == "+8613812345678"
        assert {p["phone"] for p in profile["customer"]["phones"]} == {"+8613812345678", "+8613900001111"}
        assert profile["customer"]["tags"] == ["价格敏感"]
        assert profile["customer"]["consents"] == {"sms:service": True}
        registered = profile["customer"]
        assert {name: registered[name] for name in REGISTERED_AS_GIVEN} == {
            "wechat_id": "wx_wangjg",
            "gender": "male",
            "birthday": "1982-04-17",
            "source": "walk_in",
            "membership_tier": "gold",
            "preferred_services": ["小保养"],
            "notes": "只在周末来店",
            "referrer_customer_id": referrer,
        }
        [vehicle] = profile["vehicles"]
        assert vehicle["vehicle_id"] == vehicle_id and vehicle["plate"] == "粤BD12345"
        assert vehicle["mileage_km"] == 12000
        assert vehicle["insurance"]["commercial"] == {
            "insurer": "中国平安",
            "policy_number": "PDAA2026",
            "expires_on": "2027-03-31",
        }


async def test_bad_plate_vin_or_phone_is_a_422_naming_the_field_and_stores_nothing(service: Service) -> None:
    customer_id = await register_customer(service)
    before = await stored_rows(service)
    bad_vin = make_vin(2)[:8] + ("0" if make_vin(2)[8] != "0" else "1") + make_vin(2)[9:]

    cases = [
        ("/v1/customers", wang(phone="12345"), "phone"),
        (
            "/v1/vehicles",
            {"owner_customer_id": customer_id, "plate": "XX12345", "brand": "大众", "model": "朗逸"},
            "plate",
        ),
        (
            "/v1/vehicles",
            {
                "owner_customer_id": customer_id,
                "plate": "沪A12345",
                "vin": bad_vin,
                "brand": "大众",
                "model": "朗逸",
            },
            "vin",
        ),
    ]
    for path, body, field in cases:
        response = await service.post(path, body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in [error["field"].split(".")[-1] for error in response.json()["errors"]], response.text
    assert (await service.get("/v1/lookup", plate="沪A1234")).status_code == 422
    assert await stored_rows(service) == before


async def test_a_registration_with_1800_preferred_services_is_a_422_naming_the_field_and_stores_nothing(
    service: Service,
) -> None:
    before = await stored_rows(service)
    services = [f"{n}号保养套餐".ljust(limits.PREFERRED_SERVICE_LENGTH, "精") for n in range(1800)]

    response = await service.post("/v1/customers", wang(preferred_services=services))

    assert response.status_code == 422, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == ["body.preferred_services"]
    assert "at most 50" in problem["errors"][0]["message"]
    assert (await service.get("/v1/lookup", phone="13812345678")).status_code == 404
    assert (await service.get("/v1/customers", name="王建国")).json()["total"] == 0
    assert await stored_rows(service) == before  # no event, no outbox row, no customer


async def test_updates_change_only_what_is_given_and_a_stale_version_is_a_409(service: Service) -> None:
    customer_id = await register_customer(service)
    profile = (await service.get(f"/v1/customers/{customer_id}")).json()
    version = profile["customer"]["version"]

    response = await service.patch(
        f"/v1/customers/{customer_id}",
        {"expected_version": version, "full_name": "王建华", "tags": ["注重品质"], "phone": "13900001111"},
    )
    assert response.status_code == 200, response.text
    stale = await service.patch(f"/v1/customers/{customer_id}", {"expected_version": version, "notes": "x"})
    assert stale.status_code == 409

    customer = (await service.get(f"/v1/customers/{customer_id}")).json()["customer"]
    assert customer["full_name"] == "王建华"
    assert customer["tags"] == ["注重品质"]
    assert customer["primary_phone"] == "+8613900001111"
    assert {p["phone"] for p in customer["phones"]} == {"+8613900001111", "+8613812345678"}
    assert customer["notes"] == "只在周末来店"


async def test_an_update_of_every_field_changes_each_of_them(service: Service) -> None:
    customer_id = await register_customer(service, registered_at_branch_id="b1")
    referrer = await register_customer(service, full_name="李梅", phone="13700000000", other_phones=[])
    changes = {
        "full_name": "王建华",
        "phone": "13900001111",  # the customer's other phone becomes the primary one
        "other_phones": ["13600000006"],
        "wechat_id": "wx_wangjh",
        "gender": "unspecified",
        "birthday": "1983-05-18",
        "referrer_customer_id": referrer,
        "membership_tier": "platinum",
        "tags": ["注重品质", "车队"],
        "preferred_services": ["四轮定位", "喷漆"],
        "notes": "工作日也来",
        "consents": [
            {"channel": "sms", "purpose": "service", "granted": False},
            {"channel": "wechat", "purpose": "marketing", "granted": True},
        ],
    }

    response = await service.patch(f"/v1/customers/{customer_id}", changes)

    assert response.status_code == 200, response.text
    customer = (await service.get(f"/v1/customers/{customer_id}")).json()["customer"]
    assert {
        name: customer[name] for name in changes if name not in ("phone", "other_phones", "consents")
    } == {name: value for name, value in changes.items() if name not in ("phone", "other_phones", "consents")}
    assert customer["primary_phone"] == "+8613900001111"
    assert sorted(p["phone"] for p in customer["phones"]) == ["+8613600000006", "+8613900001111"]
    assert customer["consents"] == {"sms:service": False, "wechat:marketing": True}
    # What the update does not name stays as registered.
    assert (customer["source"], customer["registered_at_branch_id"]) == ("walk_in", "b1")


async def test_an_update_naming_an_unknown_referrer_or_another_customers_phone_changes_nothing(
    service: Service,
) -> None:
    customer_id = await register_customer(service)
    other = await register_customer(
        service, full_name="李梅", phone="13700000000", other_phones=["13700000001"]
    )
    before = (await service.get(f"/v1/customers/{customer_id}")).json()["customer"]
    stored_before = await stored_rows(service)

    unknown_referrer = await service.patch(
        f"/v1/customers/{customer_id}", {"notes": "x", "referrer_customer_id": "no-such-customer"}
    )
    taken_phones = [
        await service.patch(f"/v1/customers/{customer_id}", {"notes": "x", **change})
        for change in ({"phone": "13700000000"}, {"phone": "13700000001"}, {"other_phones": ["13700000001"]})
    ]

    assert unknown_referrer.status_code == 422, unknown_referrer.text
    assert [e["field"] for e in unknown_referrer.json()["errors"]] == ["referrer_customer_id"]
    assert [(r.status_code, r.json()["detail"]) for r in taken_phones] == [
        (409, f"phone: +8613700000000 already belongs to customer {other}"),
        (409, f"phone: +8613700000001 already belongs to customer {other}"),
        (409, f"other_phones: +8613700000001 already belongs to customer {other}"),
    ]
    assert (await service.get(f"/v1/customers/{customer_id}")).json()["customer"] == before
    assert await stored_rows(service) == stored_before


async def test_a_phone_or_plate_of_someone_else_is_a_conflict(service: Service) -> None:
    first = await register_customer(service)
    await register_vehicle(service, first, "沪A12345")
    taken = await service.post("/v1/customers", wang(other_phones=[]))
    assert (taken.status_code, taken.json()["detail"]) == (
        409,
        f"phone: +8613812345678 already belongs to customer {first}",
    )
    other = await register_customer(service, phone="13700000000", other_phones=[])
    response = await service.post(
        "/v1/vehicles", {"owner_customer_id": other, "plate": "沪a12345", "brand": "大众", "model": "朗逸"}
    )
    assert response.status_code == 409 and "plate" in response.json()["detail"]


async def test_vehicle_mileage_history_owner_change_and_mileage_going_back(service: Service) -> None:
    first = await register_customer(service)
    second = await register_customer(service, phone="13700000000", other_phones=[], full_name="李梅")
    vehicle_id = await register_vehicle(service, first, "沪A12345", mileage_km=10000)

    assert (await service.patch(f"/v1/vehicles/{vehicle_id}", {"mileage_km": 15000})).status_code == 200
    backwards = await service.patch(f"/v1/vehicles/{vehicle_id}", {"mileage_km": 9000})
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "mileage_km"
    assert (
        await service.patch(f"/v1/vehicles/{vehicle_id}", {"owner_customer_id": second})
    ).status_code == 200

    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    assert vehicle["owner_customer_id"] == second
    assert [r["mileage_km"] for r in vehicle["mileage_history"]] == [15000, 10000]
    assert (await service.get("/v1/lookup", plate="沪A12345")).json()["customer"]["customer_id"] == second


async def test_custom_fields_are_checked_against_the_chain_schema(service: Service) -> None:
    schema = [
        {"key": "company", "label": "单位", "type": "text"},
        {"key": "fleet_size", "label": "车队规模", "type": "number"},
    ]
    assert (
        await service.client.put("/v1/custom-fields", json=schema, headers=service.headers("advisor"))
    ).status_code == 403
    assert (
        await service.client.put(
            "/v1/custom-fields", json=schema, headers=service.headers("owner", branches=("*",))
        )
    ).status_code == 200

    bad = await service.post("/v1/customers", wang(custom_fields={"fleet_size": "很多"}))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "custom_fields.fleet_size"
    unknown = await service.post("/v1/customers", wang(custom_fields={"shoe_size": "42"}))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "custom_fields.shoe_size"
    customer_id = await register_customer(service, custom_fields={"company": "张江高科", "fleet_size": "12"})
    customer = (await service.get(f"/v1/customers/{customer_id}")).json()["customer"]
    assert customer["custom_fields"] == {"company": "张江高科", "fleet_size": "12"}


async def test_a_vehicle_update_changes_every_given_detail_and_a_stale_version_is_a_409(
    service: Service,
) -> None:
    owner = await register_customer(service)
    vehicle_id = await register_vehicle(service, owner, "沪A12345", make_vin(1), mileage_km=10000)
    version = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()["version"]
    changes = {
        "plate": "沪B54321",
        "vin": make_vin(2),
        "brand": "丰田",
        "model": "凯美瑞",
        "model_year": 2020,
        "energy_type": "hybrid",
        "purchase_date": "2020-05-01",
        "registration_date": "2020-05-10",
        "insurance": [{"coverage": "compulsory", "insurer": "中国人保", "expires_on": "2027-01-31"}],
    }

    updated = await service.patch(f"/v1/vehicles/{vehicle_id}", {"expected_version": version, **changes})
    assert updated.status_code == 200, updated.text
    stale = await service.patch(
        f"/v1/vehicles/{vehicle_id}", {"expected_version": version, "model": "卡罗拉"}
    )
    assert stale.status_code == 409, stale.text
    assert stale.json()["type"] == "urn:pitlane:problem:concurrent-modification"
    assert vehicle_id in stale.json()["detail"]
    # Its own plate and VIN given again are no conflict; what is not given stays.
    again = await service.patch(
        f"/v1/vehicles/{vehicle_id}", {"plate": "沪B54321", "vin": make_vin(2), "model": "卡罗拉"}
    )
    assert again.status_code == 200, again.text

    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    assert {name: vehicle[name] for name in changes if name != "insurance"} == {
        **{name: value for name, value in changes.items() if name != "insurance"},
        "model": "卡罗拉",
    }
    assert vehicle["insurance"] == {
        "compulsory": {"insurer": "中国人保", "policy_number": None, "expires_on": "2027-01-31"}
    }
    assert vehicle["mileage_km"] == 10000 and vehicle["owner_customer_id"] == owner
    assert (await service.get("/v1/lookup", plate="沪B54321")).json()["customer"]["customer_id"] == owner
    assert (await service.get("/v1/lookup", plate="沪A12345")).status_code == 404


async def test_a_vehicle_update_to_another_vehicles_plate_or_vin_or_to_no_customer_is_refused(
    service: Service,
) -> None:
    owner = await register_customer(service)
    vehicle_id = await register_vehicle(service, owner, "沪A12345", make_vin(1))
    other = await register_vehicle(service, owner, "沪B54321", make_vin(2))

    for change in ({"plate": "沪b54321"}, {"vin": make_vin(2)}):
        taken = await service.patch(f"/v1/vehicles/{vehicle_id}", change)
        assert taken.status_code == 409, taken.text
        assert next(iter(change)) in taken.json()["detail"] and other in taken.json()["detail"]
    nobody = await service.patch(f"/v1/vehicles/{vehicle_id}", {"owner_customer_id": "no-such-customer"})
    assert nobody.status_code == 422, nobody.text
    assert [error["field"] for error in nobody.json()["errors"]] == ["owner_customer_id"]

    vehicle = (await service.get(f"/v1/vehicles/{vehicle_id}")).json()
    assert (vehicle["plate"], vehicle["vin"], vehicle["owner_customer_id"], vehicle["version"]) == (
        "沪A12345",
        make_vin(1),
        owner,
        1,
    )
