"""Registering, looking up and searching customers — and a database error that quotes the failing row —
leave no name, phone or plate in any log line: neither what pytest captures nor the JSON on stderr."""

from __future__ import annotations

import logging

import psycopg
import pytest
from profile_testing import Service

from pitlane_platform.db import libpq_url

NAME = "上官秘密"
PHONE = "13966665432"
PLATE = "沪A66Q88"


async def test_lookups_searches_and_a_database_error_log_no_personal_data(
    service: Service, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        registered = await service.post("/v1/customers", {"full_name": NAME, "phone": PHONE})
        assert registered.status_code == 201, registered.text
        customer_id = registered.json()["id"]
        vehicle = await service.post(
            "/v1/vehicles",
            {"owner_customer_id": customer_id, "plate": PLATE, "brand": "大众", "model": "朗逸"},
        )
        assert vehicle.status_code == 201, vehicle.text
        for params in ({"plate": PLATE}, {"phone": PHONE}):
            assert (await service.get("/v1/lookup", **params)).status_code == 200
        assert (await service.get("/v1/customers", name=NAME)).status_code == 200

        # PostgreSQL's message for a violated check quotes the whole failing row: name and phone.
        async with await psycopg.AsyncConnection.connect(
            libpq_url(service.settings.database_url), autocommit=True
        ) as admin:
            await admin.execute(
                "ALTER TABLE customers ADD CONSTRAINT no_secrets CHECK (full_name <> '二号秘密')"
            )
        refused = await service.post("/v1/customers", {"full_name": "二号秘密", "phone": "13966660000"})
        assert refused.status_code == 500

    logged = caplog.text + "".join(capfd.readouterr())
    assert "unhandled error in POST /v1/customers" in logged
    assert "/v1/lookup?…" in logged, "the lookups were logged, redacted"
    for secret in (NAME, PHONE, PLATE, "二号秘密", "13966660000"):
        assert secret not in logged, f"{secret!r} reached a log line"
