"""Tracing and logging with an in-memory span exporter: HTTP server spans, trace context across hops, SQL
spans on a real PostgreSQL, trace ids in the JSON logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from pitlane_platform.auth import CurrentPrincipal, mint_dev_token
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.http import create_app
from pitlane_platform.logging import configure_logging
from pitlane_platform.messaging import eventstore, outbox
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.telemetry import (
    context_from_headers,
    current_trace_id,
    inject_trace_headers,
    instrument_engine,
    process_span,
    publish_span,
    setup_telemetry,
    start_span,
)
from platform_flow import context, create_tables, reading

SERVICE = "telemetry-test"
SETTINGS = ServiceSettings(
    service_name=SERVICE,
    database_url="postgresql://unused",
    nats_url="nats://unused",
    jwt_secret="telemetry-test-secret-of-32-bytes-or-more",
    chain_id="chain-1",
)


@pytest.fixture(scope="module")
def module_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_telemetry(SERVICE, exporter=exporter)
    return exporter


@pytest.fixture
def spans(module_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    module_exporter.clear()
    yield module_exporter
    module_exporter.clear()


def only(finished: Sequence[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    matching = [span for span in finished if span.kind is kind]
    assert len(matching) == 1, [(span.name, span.kind) for span in finished]
    return matching[0]


def trace_id_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return trace.format_trace_id(span.context.trace_id)


def test_setting_up_again_keeps_the_one_provider(module_exporter: InMemorySpanExporter) -> None:
    first = setup_telemetry(SERVICE, exporter=module_exporter)

    assert setup_telemetry(SERVICE) is first
    assert trace.get_tracer_provider() is first


@pytest.fixture(scope="module")
def client(module_exporter: InMemorySpanExporter) -> Iterator[TestClient]:
    router = APIRouter(prefix="/v1")

    @router.get("/work-orders/{work_order_id}")
    async def get_work_order(work_order_id: str) -> dict[str, str | None]:
        with start_span("load work order", attributes={"pitlane.work_order_id": work_order_id}):
            return {"trace_id": current_trace_id()}

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> str:
        return principal.user_id

    with TestClient(create_app(SETTINGS, title="t", version="0", routers=[router])) as test_client:
        yield test_client


def test_an_http_request_produces_a_server_span(client: TestClient, spans: InMemorySpanExporter) -> None:
    response = client.get("/v1/work-orders/wo-1", headers={"X-Request-ID": "req-7"})

    finished = spans.get_finished_spans()
    server = only(finished, SpanKind.SERVER)
    inner = only(finished, SpanKind.INTERNAL)
    assert server.name == "GET /v1/work-orders/{work_order_id}"
    assert server.attributes is not None and server.attributes["pitlane.request_id"] == "req-7"
    assert inner.parent is not None and server.context is not None
    assert inner.parent.span_id == server.context.span_id
    assert response.json()["trace_id"] == trace_id_of(server)


def test_an_authenticated_request_span_names_its_user_and_role(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    token = mint_dev_token(SETTINGS, role="advisor", branches=["b1"], sub="user-7")

    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json() == "user-7"

    attributes = only(spans.get_finished_spans(), SpanKind.SERVER).attributes
    assert attributes is not None
    assert (attributes["user.id"], attributes["user.roles"]) == ("user-7", ("advisor",))


def test_a_caller_traceparent_is_continued(client: TestClient, spans: InMemorySpanExporter) -> None:
    with start_span("frontend click", SpanKind.CLIENT):
        caller_headers = inject_trace_headers()
        caller_trace_id = current_trace_id()

    client.get("/v1/work-orders/wo-1", headers=caller_headers)

    assert trace_id_of(only(spans.get_finished_spans(), SpanKind.SERVER)) == caller_trace_id


def test_probes_are_not_traced(client: TestClient, spans: InMemorySpanExporter) -> None:
    client.get("/health")
    client.get("/ready")

    assert spans.get_finished_spans() == ()


def test_inject_then_extract_keeps_the_trace(spans: InMemorySpanExporter) -> None:
    with start_span("append events") as origin:
        headers = inject_trace_headers()
    # Header names may come back capitalised from a broker or proxy.
    carried = {name.title(): value for name, value in headers.items()}

    with start_span("continue", context=context_from_headers(carried)) as continued:
        pass

    assert headers["traceparent"].split("-")[1] == trace.format_trace_id(origin.get_span_context().trace_id)
    assert continued.get_span_context().trace_id == origin.get_span_context().trace_id
    continued_span = next(span for span in spans.get_finished_spans() if span.name == "continue")
    assert continued_span.parent is not None
    assert continued_span.parent.span_id == origin.get_span_context().span_id


def test_no_headers_start_a_new_trace(spans: InMemorySpanExporter) -> None:
    with start_span("orphan", context=context_from_headers(None)) as orphan:
        pass

    assert orphan.get_span_context().is_valid
    assert spans.get_finished_spans()[0].parent is None


def test_a_message_hop_is_publish_then_process_in_one_trace(spans: InMemorySpanExporter) -> None:
    subject = "workorder.b1.WorkOrderCompleted.v1"
    with start_span("POST /v1/work-orders/{id}/complete", SpanKind.SERVER):
        outbox_row_headers = inject_trace_headers()  # stored on the outbox row with the event
    with publish_span(subject, message_id="evt-1", context=context_from_headers(outbox_row_headers)):
        nats_headers = {"Nats-Msg-Id": "evt-1", **inject_trace_headers()}
    with process_span(
        subject, message_id="evt-1", headers=nats_headers, consumer_name="reminder.completions"
    ):
        pass

    finished = spans.get_finished_spans()
    request, publish, process = (
        only(finished, kind) for kind in (SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER)
    )
    assert {trace_id_of(publish), trace_id_of(process)} == {trace_id_of(request)}
    assert publish.parent is not None and request.context is not None
    assert publish.parent.span_id == request.context.span_id
    assert process.parent is not None and publish.context is not None
    assert process.parent.span_id == publish.context.span_id
    assert publish.name == f"publish {subject}"
    assert process.name == f"process {subject}"
    assert publish.attributes == {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": subject,
        "messaging.message.id": "evt-1",
    }
    assert process.attributes is not None
    assert process.attributes["messaging.consumer.group.name"] == "reminder.completions"
    assert process.attributes["messaging.operation.type"] == "process"


def test_an_exception_in_a_span_marks_it_failed(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), start_span("handle"):
        raise ValueError("bad event")

    failed = spans.get_finished_spans()[0]
    assert not failed.status.is_ok
    assert [event.name for event in failed.events] == ["exception"]


async def test_sql_statements_on_an_instrumented_engine_are_spans(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    engine = create_engine(database_url)
    instrument_engine(engine)
    instrument_engine(engine)  # a second call must not double the spans
    try:
        with start_span("unit of work") as unit_of_work:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    statements = [span for span in spans.get_finished_spans() if span.kind is SpanKind.CLIENT]
    assert len(statements) == 1
    assert statements[0].attributes is not None and "SELECT 1" in str(
        statements[0].attributes.get("db.statement")
    )
    assert statements[0].parent is not None
    assert statements[0].parent.span_id == unit_of_work.get_span_context().span_id


def test_logs_are_json_with_the_trace_id_inside_a_span(
    module_exporter: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(SERVICE, "INFO")
    logger = logging.getLogger("pitlane.test")

    with start_span("complete work order") as span:
        logger.info("work order completed", extra={"work_order_id": "wo-1"})
    logger.warning("outside any span")

    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines()[-2:])
    assert inside["message"] == "work order completed"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "pitlane.test"
    assert inside["service"] == SERVICE
    assert inside["work_order_id"] == "wo-1"
    assert inside["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert inside["span_id"] == trace.format_span_id(span.get_span_context().span_id)
    assert inside["timestamp"].endswith("Z")
    assert "trace_id" not in outside


def test_uvicorn_logs_go_through_the_json_handler(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler())  # what uvicorn's own config adds
    configure_logging(SERVICE, "INFO")

    logging.getLogger("uvicorn.error").info("Application startup complete.")

    lines = capsys.readouterr().err.splitlines()
    assert json.loads(lines[-1])["logger"] == "uvicorn.error"
    assert len(lines) == 1, "exactly one handler writes the record"


UNTRACED_APP = """
import json
from fastapi import APIRouter
from fastapi.testclient import TestClient
from opentelemetry import trace
from pitlane_platform.http import create_app
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.telemetry import inject_trace_headers, start_span

router = APIRouter()

@router.get("/probe")
async def probe() -> dict[str, object]:
    with start_span("inner") as inner:
        return {"request_span_recording": trace.get_current_span().is_recording(),
                "inner_recording": inner.is_recording(),
                "carried": inject_trace_headers().get("traceparent")}

settings = ServiceSettings(service_name="untraced", database_url="postgresql://unused", nats_url="nats://unused")
app = create_app(settings, title="t", version="0", routers=[router])
with TestClient(app) as client:
    body = client.get(
        "/probe", headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    ).json()
print(json.dumps({**body, "provider": type(trace.get_tracer_provider()).__name__,
                  "middleware": [m.cls.__name__ for m in app.user_middleware]}))
"""


def test_with_nowhere_to_send_spans_no_provider_no_instrumentation_no_span_and_the_trace_still_flows() -> (
    None
):
    # A process of its own: the tracer provider is process-global, and this module's tests set one up.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED_APP], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["provider"] == "ProxyTracerProvider"  # no SDK provider
    assert "OpenTelemetryMiddleware" not in outcome["middleware"]
    assert outcome["request_span_recording"] is False and outcome["inner_recording"] is False
    # The caller's trace still reaches what the request writes (outbox rows inject this context).
    assert outcome["carried"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_the_event_store_and_outbox_statements_are_spans_named_by_what_they_do(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    """The hot-path statements run on the driver, beside SQLAlchemy's instrumentation: each is one client
    span named after its operation, so a trace shows where a command spent its time."""
    await create_tables(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await eventstore.append(session, "vehicle-t", 0, [reading("vehicle-t", 10)], context())
            envelope = context().envelope(
                reading("vehicle-u", 5), aggregate_id="vehicle-u", aggregate_version=1
            )
            await outbox.enqueue(session, [envelope])
            await eventstore.stream_version(session, "vehicle-t")
            await eventstore.load(session, "vehicle-t")
    finally:
        await engine.dispose()
    named = [
        (span.name, (span.attributes or {}).get("db.operation.name"))
        for span in spans.get_finished_spans()
        if span.kind is SpanKind.CLIENT
    ]
    assert named == [
        (f"{operation} postgresql", operation)
        for operation in ["append", "enqueue", "stream version", "load stream"]
    ]
