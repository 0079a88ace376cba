"""The OpenAPI document tells the truth: schemathesis drives every operation and holds each answer to it."""

from __future__ import annotations

from profile_testing import Service

from pitlane_platform.auth import mint_dev_token
from pitlane_platform.testing.openapi_check import assert_answers_as_documented


async def test_every_operation_answers_as_its_document_says(service: Service) -> None:
    # An owner reaches every operation; a technician meets the masked views and the 403s.
    owner = mint_dev_token(service.settings, role="owner", branches=["*"], sub="openapi-owner")
    technician = mint_dev_token(service.settings, role="technician", branches=["b1"], sub="openapi-tech")

    # The sweep of hostile inputs (sent with the owner's token) runs on a customer and a vehicle that exist.
    customer = await service.post("/v1/customers", {"full_name": "测试", "phone": "13812345678"})
    customer_id = customer.json()["id"]
    vehicle = await service.post(
        "/v1/vehicles",
        {"owner_customer_id": customer_id, "plate": "沪A12345", "brand": "大众", "model": "朗逸"},
    )
    assert vehicle.status_code == 201, vehicle.text

    await assert_answers_as_documented(
        service.app,
        tokens=[owner, technician],
        known_path_parameters={"customer_id": customer_id, "vehicle_id": vehicle.json()["id"]},
    )


async def test_paging_past_its_bounds_is_a_422_naming_the_field(service: Service) -> None:
    too_deep = str(2**63)  # one past PostgreSQL's bigint: once a 500 from the database
    for path, params in (
        ("/v1/customers", {"name": "张", "offset": too_deep}),
        ("/v1/profile-reads", {"offset": too_deep}),
        ("/v1/customers", {"name": "张", "limit": "101"}),
    ):
        response = await service.client.get(path, params=params, headers=service.owner_headers())

        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in response.json()["errors"]] == [f"query.{next(reversed(params))}"]


async def test_without_a_token_malformed_input_is_a_401_not_a_422(service: Service) -> None:
    lookup = await service.client.get("/v1/lookup", params={"plate": "not a plate"})
    register = await service.client.post(
        "/v1/customers", content=b"{\x80}", headers={"content-type": "application/json"}
    )
    upload = await service.client.post("/v1/imports", files={"file": ("c.csv", b"\xff" * 64)})

    assert [r.status_code for r in (lookup, register, upload)] == [401, 401, 401]
    with_token = await service.client.post(
        "/v1/customers",
        content=b"{\x80}",
        headers={"content-type": "application/json"} | service.owner_headers(),
    )
    assert (with_token.status_code, with_token.json()["errors"][0]["field"]) == (422, "body")
