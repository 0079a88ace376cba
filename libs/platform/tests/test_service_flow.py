"""A service built the platform's way (app factory, auth, runtime with relay) against real servers:
one trace from the HTTP request through the relay to a consumer in another process; auth failures and
conflicts change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from pitlane_platform.auth import Principal, Role, mint_dev_token, require_branch_access, require_roles
from pitlane_platform.http import create_app
from pitlane_platform.messaging import eventstore
from pitlane_platform.messaging.streams import stream_name
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.schema import events, outbox
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.telemetry import instrument_engine, setup_telemetry
from platform_flow import (
    PRODUCER,
    applied_counts,
    context,
    create_tables,
    probe_consumer,
    probe_durable,
    reading,
    wait_until,
)

PROCESSES = Path(__file__).parent / "processes"


class MileageReading(BaseModel):
    mileage_km: int = Field(ge=0, le=2_000_000)
    expected_version: int = Field(ge=0)


def build_service(settings: ServiceSettings) -> tuple[ServiceRuntime, FastAPI]:
    runtime = ServiceRuntime(settings)
    router = APIRouter(prefix="/v1")

    @router.post("/branches/{branch_id}/vehicles/{vehicle_id}/mileage", status_code=201)
    async def record_mileage(
        branch_id: str,
        vehicle_id: str,
        body: MileageReading,
        principal: Annotated[Principal, Depends(require_roles(Role.ADVISOR, Role.MANAGER))],
    ) -> dict[str, int]:
        require_branch_access(principal, branch_id)
        async with runtime.sessions() as session, session.begin():
            [stored] = await eventstore.append(
                session, vehicle_id, body.expected_version, [reading(vehicle_id, body.mileage_km)], context()
            )
        return {"version": stored.aggregate_version}

    app = create_app(
        settings, title="probe", version="test", routers=[router], readiness_checks=runtime.readiness_checks()
    )
    return runtime, app


class OtlpReceiver:
    """A collector stand-in speaking real OTLP/HTTP: it decodes what exporters send and keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
async def service(database_url, nats_url):
    await create_tables(database_url)
    settings = ServiceSettings(
        service_name=PRODUCER, database_url=database_url, nats_url=nats_url, relay_poll_interval_s=0.2
    )
    runtime, app = build_service(settings)
    async with runtime.lifespan():
        instrument_engine(runtime.engine)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://probe"
        ) as client:
            yield settings, runtime, client


def bearer(
    settings: ServiceSettings, *, role: str = "advisor", branches: tuple[str, ...] = ("b1",), **kw
) -> dict:
    return {
        "Authorization": f"Bearer {mint_dev_token(settings, role=role, branches=branches, sub='u1', **kw)}"
    }


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Set up before the service is built: the app is instrumented only when something exports spans."""
    exporter = InMemorySpanExporter()
    setup_telemetry(PRODUCER, exporter=exporter)
    return exporter


async def test_one_trace_spans_request_relay_and_a_consumer_in_another_process(
    exporter, service, database_url, nats_url
):
    settings, runtime, client = service
    receiver = OtlpReceiver()
    consumer = subprocess.Popen(
        [
            sys.executable,
            str(PROCESSES / "run_consumer.py"),
            "--database-url",
            database_url,
            "--nats-url",
            nats_url,
        ],
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )
    try:
        response = await client.post(
            "/v1/branches/b1/vehicles/v-1/mileage",
            headers=bearer(settings),
            json={"mileage_km": 1234, "expected_version": 0},
        )
        assert response.status_code == 201, response.text

        async def applied_in_the_other_process():
            return len(await applied_counts(runtime.sessions)) == 1

        await wait_until(applied_in_the_other_process)

        async def consumer_span_exported():
            return any(span.kind == 5 for span in receiver.spans)  # SPAN_KIND_CONSUMER

        await wait_until(consumer_span_exported)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(10)
        receiver.close()

    spans = exporter.get_finished_spans()
    [request_span] = [s for s in spans if s.kind == SpanKind.SERVER and "mileage" in s.name]
    [publish_span] = [s for s in spans if s.kind == SpanKind.PRODUCER]
    [consumer_span] = [s for s in receiver.spans if s.kind == 5]
    trace_id = request_span.context.trace_id
    assert publish_span.context.trace_id == trace_id
    assert int.from_bytes(consumer_span.trace_id, "big") == trace_id
    assert int.from_bytes(consumer_span.parent_span_id, "big") == publish_span.context.span_id
    assert any(s.kind == SpanKind.CLIENT and s.context.trace_id == trace_id for s in spans), (
        "no database span"
    )


async def count_rows(runtime: ServiceRuntime) -> tuple[int, int]:
    async with runtime.sessions() as session:
        stored = (await session.execute(select(func.count()).select_from(events))).scalar_one()
        queued = (await session.execute(select(func.count()).select_from(outbox))).scalar_one()
    return stored, queued


@pytest.mark.parametrize(
    ("case", "expected_status"),
    [("no token", 401), ("bad signature", 401), ("expired", 401), ("other branch", 403), ("technician", 403)],
)
async def test_refused_requests_change_nothing(service, case, expected_status):
    settings, runtime, client = service
    headers = {
        "no token": {},
        "bad signature": {"Authorization": bearer(settings)["Authorization"][:-4] + "AAAA"},
        "expired": bearer(settings, ttl=timedelta(seconds=-60)),
        "other branch": bearer(settings, branches=("b2",)),
        "technician": bearer(settings, role="technician"),
    }[case]
    response = await client.post(
        "/v1/branches/b1/vehicles/v-1/mileage", headers=headers, json={"mileage_km": 1, "expected_version": 0}
    )
    assert response.status_code == expected_status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count_rows(runtime) == (0, 0)


async def test_a_concurrent_modification_is_a_409_problem_and_a_bad_field_a_422(service):
    settings, runtime, client = service
    url = "/v1/branches/b1/vehicles/v-2/mileage"
    assert (
        await client.post(url, headers=bearer(settings), json={"mileage_km": 5, "expected_version": 0})
    ).status_code == 201
    conflict = await client.post(url, headers=bearer(settings), json={"mileage_km": 6, "expected_version": 0})
    assert conflict.status_code == 409
    assert "expected at version 0, found 1" in conflict.json()["detail"]

    invalid = await client.post(url, headers=bearer(settings), json={"mileage_km": -1, "expected_version": 1})
    assert invalid.status_code == 422
    assert "body.mileage_km" in invalid.text
    assert await count_rows(runtime) == (1, 1)


async def test_a_consumer_starts_before_its_producer_ever_ran(database_url, nats_url):
    """Services start in any order: the runtime declares the streams it consumes, as their producers would."""
    await create_tables(database_url)
    settings = ServiceSettings(service_name="analytics", database_url=database_url, nats_url=nats_url)
    runtime = ServiceRuntime(settings, consumers=[probe_consumer()])
    async with runtime.lifespan():
        assert runtime.nats is not None
        js = runtime.nats.jetstream()
        consumed = await js.stream_info(stream_name(PRODUCER))
        assert consumed.config.subjects == [f"{PRODUCER}.>"]
        assert (await js.consumer_info(stream_name(PRODUCER), probe_durable())).config.durable_name
