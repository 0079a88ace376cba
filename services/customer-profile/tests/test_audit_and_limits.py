"""The audit trail of every authenticated request, owners reading it, and the per-user limits on lookups and
searches with their alert — against the real service, PostgreSQL and JetStream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from profile_testing import Service, make_phone, outbox_published, register_customer, serving
from sqlalchemy import text

from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_events import decode
from pitlane_events.customer_profile import LookupLimitReached
from pitlane_platform.messaging.streams import service_stream

CANDIDATES = 10_000
LOOKUP_LIMIT = 20


async def audit_rows(service: Service) -> list[dict[str, Any]]:
    """Every stored row, oldest first, exactly as stored."""
    await service.runtime.audit.flush()
    async with service.runtime.sessions() as session:
        rows = (await session.execute(text("SELECT * FROM audit_log ORDER BY id"))).mappings().all()
    return [dict(row) for row in rows]


def expected_row(row: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """`fields` plus what the test cannot know in advance (id, time, request id), checked for shape."""
    assert isinstance(row["id"], int)
    assert row["occurred_at"].tzinfo is not None
    assert abs(datetime.now(UTC) - row["occurred_at"]) < timedelta(minutes=1)
    assert isinstance(row["request_id"], str) and row["request_id"]
    return {"id": row["id"], "occurred_at": row["occurred_at"], "request_id": row["request_id"], **fields}


async def test_a_create_a_read_an_update_and_a_lookup_that_finds_nothing_are_on_the_trail_without_query_values(
    service: Service,
) -> None:
    customer_id = await register_customer(service)
    read = await service.get(f"/v1/customers/{customer_id}")
    version = read.json()["customer"]["version"]
    updated = await service.patch(
        f"/v1/customers/{customer_id}", {"expected_version": version, "notes": "新"}
    )
    missing = await service.get("/v1/lookup", phone="13700000000")
    assert (read.status_code, updated.status_code, missing.status_code) == (200, 200, 404)

    rows = await audit_rows(service)

    amy = {"subject": "amy", "role": "advisor", "branches": ["b1"]}
    assert rows == [
        expected_row(rows[0], **amy, method="POST", route="/v1/customers", resource_ids={}, status=201),
        expected_row(
            rows[1],
            **amy,
            method="GET",
            route="/v1/customers/{customer_id}",
            resource_ids={"customer_id": customer_id},
            status=200,
        ),
        expected_row(
            rows[2],
            **amy,
            method="PATCH",
            route="/v1/customers/{customer_id}",
            resource_ids={"customer_id": customer_id},
            status=200,
        ),
        expected_row(rows[3], **amy, method="GET", route="/v1/lookup", resource_ids={}, status=404),
    ]
    assert "13700000000" not in str(rows) and "王建国" not in str(rows)


async def test_requests_without_a_valid_token_are_not_on_the_trail(service: Service) -> None:
    assert (await service.client.get("/v1/lookup", params={"phone": "13700000000"})).status_code == 401

    assert await audit_rows(service) == []


async def test_the_trail_cannot_be_rewritten(service: Service) -> None:
    await service.get("/v1/lookup", phone="13700000000")
    await audit_rows(service)

    for statement in ("UPDATE audit_log SET status = 200", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        async with service.runtime.sessions() as session:
            with pytest.raises(Exception, match="append-only"):
                await session.execute(text(statement))


async def test_only_owners_read_the_trail_filtered_and_paged(service: Service) -> None:
    first = await register_customer(service)
    second = await register_customer(service, phone="13900002222", other_phones=[])
    for customer_id in (first, second, first):
        await service.get(f"/v1/customers/{customer_id}", sub="bob")
    await service.get("/v1/lookup", phone="13700000000", sub="bob")
    await service.runtime.audit.flush()
    owner = service.owner_headers()

    for role in ("advisor", "manager", "technician", "finance", "analyst"):
        refused = await service.client.get("/v1/audit", headers=service.headers(role))
        assert refused.status_code == 403, role
        assert refused.headers["content-type"] == "application/problem+json"
    await service.runtime.audit.flush()  # the refusals are on the trail too; the batch would land at any time

    page = (
        await service.client.get("/v1/audit", params={"subject": "bob", "limit": 2}, headers=owner)
    ).json()
    assert [(item["route"], item["status"]) for item in page["items"]] == [
        ("/v1/lookup", 404),
        ("/v1/customers/{customer_id}", 200),
    ]
    rest = (
        await service.client.get(
            "/v1/audit", params={"subject": "bob", "limit": 2, "before": page["next_before"]}, headers=owner
        )
    ).json()
    assert [item["resource_ids"] for item in rest["items"]] == [
        {"customer_id": second},
        {"customer_id": first},
    ]
    assert rest["next_before"] is None

    by_resource = (await service.client.get("/v1/audit", params={"resource_id": first}, headers=owner)).json()
    assert [(item["subject"], item["method"]) for item in by_resource["items"]] == [
        ("bob", "GET"),
        ("bob", "GET"),
    ]

    by_route_and_outcome = (
        await service.client.get("/v1/audit", params={"route": "/v1/lookup", "status": 404}, headers=owner)
    ).json()
    assert [item["subject"] for item in by_route_and_outcome["items"]] == ["bob"]

    now = datetime.now(UTC)
    in_the_past = {
        "since": (now - timedelta(hours=2)).isoformat(),
        "until": (now - timedelta(hours=1)).isoformat(),
    }
    assert (await service.client.get("/v1/audit", params=in_the_past, headers=owner)).json()["items"] == []
    recent = {"since": (now - timedelta(minutes=5)).isoformat(), "subject": "amy"}
    amys = (await service.client.get("/v1/audit", params=recent, headers=owner)).json()["items"]
    # amy registered the two customers, then was refused the trail in each of five roles
    assert (
        sorted((item["method"], item["status"]) for item in amys) == [("GET", 403)] * 5 + [("POST", 201)] * 2
    )

    naive = await service.client.get("/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=owner)
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.since"


async def alerts(nats_url: str) -> list[LookupLimitReached]:
    connection = await nats.connect(nats_url)
    try:
        stream = service_stream("customer-profile").name
        subscription = await connection.jetstream().pull_subscribe(
            "customer-profile.*.LookupLimitReached.>", stream=stream
        )
        try:
            messages = await subscription.fetch(10, timeout=1)
        except nats.errors.TimeoutError:
            return []
        return [decode(message.data).data for message in messages]  # type: ignore[misc]
    finally:
        await connection.close()


async def test_a_technician_trying_ten_thousand_phones_is_stopped_long_before_the_number_is_found(
    settings: CustomerProfileSettings, nats_url: str
) -> None:
    async with serving(settings, lookup_rate_limit=f"{LOOKUP_LIMIT}/hour") as service:
        await try_every_candidate_phone(service, nats_url)


async def try_every_candidate_phone(service: Service, nats_url: str) -> None:
    candidates = [make_phone(serial) for serial in range(CANDIDATES)]
    wanted = candidates[CANDIDATES // 2]
    await register_customer(service, phone=wanted, other_phones=[])
    technician = service.headers("technician", sub="tech-wang")

    answers: list[int] = []
    for phone in candidates:
        response = await service.client.get("/v1/lookup", params={"phone": phone}, headers=technician)
        answers.append(response.status_code)
        if response.status_code == 429:
            refused = response
            break
    found_wanted = await service.client.get("/v1/lookup", params={"phone": wanted}, headers=technician)

    assert answers == [404] * LOOKUP_LIMIT + [429]
    assert found_wanted.status_code == 429  # the number is never reached: the limit holds for the hour
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.json()["title"] == "Too many requests"

    rows = [row for row in await audit_rows(service) if row["subject"] == "tech-wang"]
    assert [(row["route"], row["status"], row["role"]) for row in rows] == [
        ("/v1/lookup", 404, "technician")
    ] * (LOOKUP_LIMIT) + [("/v1/lookup", 429, "technician")] * 2
    assert all(row["resource_ids"] == {} for row in rows)
    assert wanted not in str(rows)

    # The alert is queued before the 429 is answered: once per window, though refused twice. Only once all
    # of it was published is the stream read, so what it lacks was never sent, not just late.
    async with service.runtime.sessions() as session:
        queued = await session.scalar(
            text("SELECT count(*) FROM outbox WHERE subject LIKE :alert"),
            {"alert": f"%.{LookupLimitReached.event_type.split('.')[1]}.%"},
        )
    assert queued == 1
    await outbox_published(service)
    assert await alerts(nats_url) == [
        LookupLimitReached(
            user_id="tech-wang",
            role="technician",
            method="GET",
            route="/v1/lookup",
            limit=f"{LOOKUP_LIMIT} per 1 hour",
            window_s=3600,
        )
    ]


async def test_searches_are_limited_per_user_not_for_everyone(settings: CustomerProfileSettings) -> None:
    async with serving(settings, search_rate_limit="2/minute") as cp:
        statuses = [(await cp.get("/v1/customers", name="王")).status_code for _ in range(3)]
        other_user = (await cp.get("/v1/customers", sub="bob", name="王")).status_code

    assert statuses == [200, 200, 429]
    assert other_user == 200


def test_a_rate_setting_that_is_not_a_rate_is_refused_at_start_naming_the_field(
    settings: CustomerProfileSettings,
) -> None:
    with pytest.raises(ValueError, match="lookup_rate_limit"):
        CustomerProfileSettings(**{**settings.model_dump(), "lookup_rate_limit": "lots"})
