"""The app factory: problem+json for every kind of error, probes, request ids, the OpenAPI document."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from pitlane_platform import http
from pitlane_platform.errors import (
    ConcurrencyError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from pitlane_platform.http import create_app
from pitlane_platform.settings import ServiceSettings

PROBLEM = "application/problem+json"


class Vehicle(BaseModel):
    plate: str = Field(min_length=5)


class RegisterVehicle(BaseModel):
    customer_id: str
    vehicle: Vehicle


def api_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/vehicles", status_code=201)
    async def register_vehicle(command: RegisterVehicle) -> dict[str, str]:
        return {"plate": command.vehicle.plate}

    @router.get("/work-orders")
    async def list_work_orders(limit: int = 50) -> list[str]:
        return []

    @router.get("/work-orders/{work_order_id}")
    async def get_work_order(work_order_id: str) -> dict[str, str]:
        raise NotFoundError(f"work order {work_order_id}")

    @router.post("/work-orders/{work_order_id}/complete")
    async def complete(work_order_id: str) -> None:
        raise ConflictError(f"work order {work_order_id} is awaiting approval and cannot be completed")

    @router.post("/work-orders/{work_order_id}/check-in")
    async def check_in(work_order_id: str) -> None:
        raise ConcurrencyError(f"workorder-{work_order_id}", expected_version=3, actual_version=4)

    @router.delete("/customers/{customer_id}")
    async def erase(customer_id: str) -> None:
        raise ForbiddenError("only owners erase customers")

    @router.post("/appointments")
    async def book() -> None:
        raise InvalidInputError("slot_start", "must be within the branch's opening hours")

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("password=hunter2 in SELECT * FROM customers")

    return router


async def database() -> None:
    """A readiness check that is always fine."""


async def nats() -> None:
    raise ConnectionRefusedError("nats://10.0.0.7:4222 refused")


def settings() -> ServiceSettings:
    return ServiceSettings(
        service_name="http-test", database_url="postgresql://unused", nats_url="nats://unused"
    )


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(settings(), title="http-test", version="1.2.3", routers=[api_router()])
    # The 500 case must come back as a response, not as the exception re-raised into the test.
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    return problem


def test_a_body_that_breaks_the_schema_is_a_problem_naming_each_field(client: TestClient) -> None:
    response = client.post("/v1/vehicles", json={"vehicle": {"plate": "A1"}})

    problem = assert_problem(response, 422)
    fields = {error["field"]: error["message"] for error in problem["errors"]}
    assert set(fields) == {"body.customer_id", "body.vehicle.plate"}
    assert "at least 5" in fields["body.vehicle.plate"]
    assert "A1" not in response.text, "the rejected input is not echoed back"


def test_a_body_that_cannot_be_read_at_all_is_a_422_naming_the_body(client: TestClient) -> None:
    for unreadable in (b"{\x80}", b"{broken"):  # not UTF-8; not JSON
        response = client.post(
            "/v1/vehicles", content=unreadable, headers={"content-type": "application/json"}
        )

        problem = assert_problem(response, 422)
        assert [error["field"].split(".")[0] for error in problem["errors"]] == ["body"]


def test_a_bad_query_parameter_is_named_too(client: TestClient) -> None:
    problem = assert_problem(client.get("/v1/work-orders", params={"limit": "many"}), 422)

    assert [error["field"] for error in problem["errors"]] == ["query.limit"]


@pytest.mark.parametrize(
    ("method", "path", "status", "title", "detail"),
    [
        ("GET", "/v1/work-orders/wo-1", 404, "Not found", "work order wo-1"),
        ("POST", "/v1/work-orders/wo-1/complete", 409, "Conflict", "awaiting approval"),
        (
            "POST",
            "/v1/work-orders/wo-1/check-in",
            409,
            "Concurrent modification",
            "expected at version 3, found 4",
        ),
        ("DELETE", "/v1/customers/c-1", 403, "Forbidden", "only owners"),
        ("POST", "/v1/appointments", 422, "Invalid input", "opening hours"),
    ],
)
def test_domain_errors_map_to_their_status(
    client: TestClient, method: str, path: str, status: int, title: str, detail: str
) -> None:
    problem = assert_problem(client.request(method, path), status)

    assert problem["title"] == title
    assert detail in problem["detail"]
    assert problem["type"].startswith("urn:pitlane:problem:")
    assert problem["instance"] == path


def test_invalid_input_names_its_field(client: TestClient) -> None:
    problem = assert_problem(client.post("/v1/appointments"), 422)

    assert problem["errors"] == [
        {"field": "slot_start", "message": "must be within the branch's opening hours"}
    ]


def test_an_unexpected_exception_is_a_500_problem_without_internals(client: TestClient) -> None:
    response = client.get("/v1/crash", headers={"X-Request-ID": "req-crash-1"})

    assert_problem(response, 500)
    assert "hunter2" not in response.text and "SELECT" not in response.text
    assert response.headers["x-request-id"] == "req-crash-1"


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    problem = assert_problem(client.get("/v1/no-such-thing"), 404)

    assert problem["type"] == "about:blank"
    assert problem["title"] == "Not Found"


def test_a_wrong_method_is_a_405_problem_with_allow(client: TestClient) -> None:
    response = client.put("/v1/work-orders")

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


def test_request_ids_are_echoed_or_made_up(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "front-desk-42"})
    made_up = client.get("/health")
    refused = client.get("/health", headers={"X-Request-ID": "x" * 500})

    assert echoed.headers["x-request-id"] == "front-desk-42"
    assert len(made_up.headers["x-request-id"]) == 32
    assert refused.headers["x-request-id"] != "x" * 500


def test_health_answers_while_the_process_runs(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_every_check_passes() -> None:
    app = create_app(settings(), title="t", version="0", routers=[], readiness_checks=[database])

    with TestClient(app) as client:
        response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": ["database"]}


def test_not_ready_names_the_failing_dependency_and_hides_its_message() -> None:
    app = create_app(settings(), title="t", version="0", routers=[], readiness_checks=[database, nats])

    with TestClient(app) as client:
        response = client.get("/ready")

    problem = assert_problem(response, 503)
    assert problem["failing_checks"] == ["nats"]
    assert "nats (ConnectionRefusedError)" in problem["detail"]
    assert "10.0.0.7" not in response.text


def test_a_check_that_hangs_counts_as_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "READINESS_CHECK_TIMEOUT_SECONDS", 0.05)

    async def postgres() -> None:
        await asyncio.sleep(10)

    app = create_app(settings(), title="t", version="0", routers=[], readiness_checks=[postgres])
    with TestClient(app) as client:
        problem = assert_problem(client.get("/ready"), 503)

    assert problem["detail"] == "not ready: postgres (timed out)"


def test_openapi_lists_the_problem_responses_on_every_api_route(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    problem_content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}

    api_operations = [
        (path, method, operation)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    ]
    assert len(api_operations) == 8
    for path, method, operation in api_operations:
        for status in ("403", "404", "409", "422"):
            response = operation["responses"].get(status)
            assert response is not None, f"{method} {path} lacks {status}"
            assert response["content"] == problem_content
        assert "401" not in operation["responses"]  # no operation here demands a token (test_auth.py)
    problem_schema = document["components"]["schemas"]["ProblemDetails"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem_schema["properties"])
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ProblemDetails" in str(document["paths"]["/ready"]["get"]["responses"]["503"])


DOCS_MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.mark.parametrize("root_path", ["", "/api/http-test"])
def test_docs_load_only_what_the_service_itself_serves(root_path: str) -> None:
    app = create_app(settings(), title="http-test", version="1.2.3", routers=[api_router()])
    with TestClient(app, root_path=root_path) as client:
        page = client.get("/docs")

        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        referenced = re.findall(r"""(?:src|href)="([^"]*)"|url: '([^']*)'""", page.text)
        urls = [src_or_href or url for src_or_href, url in referenced]
        assert len(urls) == 4  # script, style sheet, icon, the OpenAPI document
        assert not re.search(r"https?:|//", page.text.replace("<!DOCTYPE html>", ""))
        for url in urls:
            assert url.startswith(root_path + "/"), url
            # The test client plays the proxy: it sends the path without the prefix it strips.
            response = client.get(url.removeprefix(root_path))
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith(DOCS_MEDIA_TYPES[Path(url).suffix]), url
            assert response.content
        assert client.get("/docs/assets/__init__.py").status_code == 404
        assert client.get("/redoc").status_code == 404  # its scripts would come from a CDN
