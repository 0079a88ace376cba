"""Every route's input guards: bodies bounded before they are read, NUL characters refused by field name,
and the logs that carry no query string, customer-link token or quoted database row."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi import APIRouter, Form, UploadFile
from fastapi.testclient import TestClient
from pydantic import BaseModel

from pitlane_platform.http import create_app
from pitlane_platform.logging import describe_exception, redact_url
from pitlane_platform.security.links import sign_claims
from pitlane_platform.settings import ServiceSettings

PROBLEM = "application/problem+json"
LIMIT = 4096


class Note(BaseModel):
    text: str
    tags: list[str] = []


def api_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/notes/{note_id}")
    async def add_note(note_id: str, note: Note, lang: str = "zh") -> str:
        return note.text

    @router.post("/forms")
    async def form(name: str = Form()) -> str:
        return name

    @router.post("/uploads")
    async def upload(file: UploadFile) -> int:
        return len(await file.read())

    @router.get("/crash")
    async def crash(phone: str) -> None:
        raise psycopg.errors.CheckViolation(f"Failing row contains ({phone})")

    return router


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = ServiceSettings(
        service_name="guards-test",
        database_url="postgresql://unused",
        nats_url="nats://unused",
        max_body_bytes=LIMIT,
    )
    app = create_app(
        settings,
        title="guards",
        version="0",
        routers=[api_router()],
        max_body_bytes={"/v1/uploads": 4 * LIMIT},
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    return problem


def test_a_declared_length_over_the_limit_is_a_413_before_anything_is_read(client: TestClient) -> None:
    read = 0

    def body() -> Iterator[bytes]:
        nonlocal read
        for _ in range(100):
            read += 1024
            yield b"x" * 1024

    response = client.post(
        "/v1/notes/n1",
        content=body(),
        headers={"content-length": str(100 * 1024), "content-type": "text/plain"},
    )

    assert_problem(response, 413)
    assert str(LIMIT) in response.json()["detail"]


def test_a_chunked_body_is_cut_at_the_limit(client: TestClient) -> None:
    chunks = (b'{"text": "' + b"x" * 1024 for _ in range(10))  # no Content-Length: sent chunked

    json_body = client.post("/v1/notes/n1", content=chunks, headers={"content-type": "application/json"})
    upload = client.post(
        "/v1/notes/n1", content=(b"x" * 1024 for _ in range(10)), headers={"content-type": "text/plain"}
    )

    assert_problem(json_body, 413)
    assert_problem(upload, 413)


def test_an_upload_route_takes_its_own_larger_limit(client: TestClient) -> None:
    accepted = client.post("/v1/uploads", files={"file": ("a.bin", b"x" * (2 * LIMIT))})
    refused = client.post("/v1/uploads", files={"file": ("a.bin", b"x" * (5 * LIMIT))})

    assert (accepted.status_code, accepted.json()) == (200, 2 * LIMIT)
    assert_problem(refused, 413)


def test_a_body_limit_for_an_unknown_path_is_refused_at_start() -> None:
    settings = ServiceSettings(service_name="t", database_url="postgresql://unused", nats_url="nats://unused")
    with pytest.raises(ValueError, match="/v1/nowhere"):
        create_app(
            settings, title="t", version="0", routers=[api_router()], max_body_bytes={"/v1/nowhere": 1}
        )


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"url": "/v1/notes/n1", "json": {"text": "a\x00b"}}, "body.text"),
        ({"url": "/v1/notes/n1", "json": {"text": "ok", "tags": ["x", "\x00"]}}, "body.tags.1"),
        ({"url": "/v1/notes/n1?lang=z%00h", "json": {"text": "ok"}}, "query.lang"),
        ({"url": "/v1/notes/n%001", "json": {"text": "ok"}}, "path.note_id"),
        ({"url": "/v1/forms", "data": {"name": "a\x00"}}, "body.name"),
    ],
)
def test_a_nul_character_anywhere_is_a_422_naming_the_field(
    client: TestClient, request_kwargs: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post(**request_kwargs), 422)

    assert [error["field"] for error in problem["errors"]] == [field]


def test_text_that_merely_spells_an_escape_passes(client: TestClient) -> None:
    response = client.post("/v1/notes/n1", json={"text": "\\u0000 is how JSON writes NUL"})

    assert (response.status_code, response.json()) == (200, "\\u0000 is how JSON writes NUL")


def test_a_database_error_is_logged_without_the_row_it_quotes(
    client: TestClient, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        response = client.get("/v1/crash", params={"phone": "+8613900001111"})

    assert_problem(response, 500)
    logged = (
        caplog.text + "".join(str(vars(record)) for record in caplog.records) + "".join(capfd.readouterr())
    )
    assert "unhandled error in GET /v1/crash" in logged
    assert "CheckViolation" in logged and "SQLSTATE 23514" in logged
    assert "13900001111" not in logged


def test_urls_lose_their_query_strings_and_customer_link_tokens() -> None:
    token = sign_claims("a-link-secret-of-32-bytes-or-more!", "customer-link", {"w": "wo-1"})
    assert (
        redact_url('"GET /v1/lookup?phone=%2B8613900001111 HTTP/1.1" 200')
        == '"GET /v1/lookup?… HTTP/1.1" 200'
    )
    assert (
        redact_url(f"GET http://cp/c/{token}/media/sha256:ab?lang=en")
        == "GET http://cp/c/…/media/sha256:ab?…"
    )


def test_a_validation_error_is_described_by_location_and_kind_only() -> None:
    phone = "+86" + "13900001111"  # built, so the traceback's quoted source line does not hold it
    try:
        Note.model_validate({"text": [phone]})
    except ValueError as error:
        described = describe_exception(error)

    assert "text: string_type" in described
    assert phone not in described
