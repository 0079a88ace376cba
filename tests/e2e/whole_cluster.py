"""The whole system as `pitlane up` runs it — embedded NATS (TLS, one user per service) and PostgreSQL, every
installed service as its own process, Caddy's HTTPS gateway in front — started through the same DevCluster
calls `run_up` makes, without its blocking loop (which stops everything when one child exits) and without
`pitlane demo`: a test kills and restarts single processes and counts what it sent alone.

Spans come from every process over OTLP/HTTP (the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) to a receiver
in the test process (`SpanCollector`). `settled()` is the positive signal the tests wait on: every outbox
published and every durable consumer of every stream caught up (nothing pending, nothing unacknowledged)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import psycopg
from nats.js import JetStreamContext
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from pitlane_events import stream_name
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.clock import write_clock_offset
from pitlane_platform.db import libpq_url
from pitlane_platform.devcluster import Child, DevCluster, ServerInUse
from pitlane_platform.embedded import LOOPBACK, database_url, free_port
from pitlane_platform.messaging.health import consumer_health
from pitlane_platform.security.nats_access import OPERATOR
from pitlane_platform.services import ServiceSpec, installed_services
from pitlane_platform.settings import DEV_JWT_SECRET, ServiceSettings
from pitlane_platform.testing.event_schemas import message_violations
from pitlane_platform.testing.servers import make_disposable

DEFAULTS = ServiceSettings.model_fields
SHANGHAI = ZoneInfo("Asia/Shanghai")
FETCH_AT_ONCE = 256  # stored messages requested at once when a test reads its streams back
STARTUP_ENVIRONMENT = {
    # Spans batched for a fifth of a second, not five: the test waits for them.
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    # The survey two hours after the hand-over in production; a second here (the durable timer still fires it).
    "NOTIFICATION_SURVEY_DELAY": "PT1S",
    # Five hundred visits from one front desk and one client address: no rate limit is under test here.
    "CUSTOMER_PROFILE_SEARCH_RATE_LIMIT": "100000/minute",
    "CUSTOMER_PROFILE_LOOKUP_RATE_LIMIT": "100000/minute",
    "WORKORDER_PUBLIC_RATE_LIMIT": "100000/minute",
    "NOTIFICATION_PUBLIC_RATE_LIMIT": "100000/minute",
}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]


class SpanCollector:
    """An OTLP/HTTP traces receiver (protobuf), as a collector or Jaeger's port 4318 is to the services."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        collector = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector._receive(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, free_port()), Receiver)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def traces_endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/traces"

    def _receive(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans += received

    def of_trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class WholeCluster:
    """`clock_offset_file` steers every service's clock (<PREFIX>CLOCK_OFFSET_FILE, as `pitlane demo` steers
    it): a scenario can serve a car months ago, then come back to the present."""

    dev: DevCluster
    nats: ServerInUse
    postgres: ServerInUse
    specs: list[ServiceSpec]
    spans: SpanCollector
    environment: dict[str, str]
    clock_offset_file: Path
    ports: dict[str, int] = field(default_factory=dict)

    def steer_clocks(self, offset: timedelta) -> None:
        write_clock_offset(self.clock_offset_file, offset)

    @property
    def gateway_url(self) -> str:
        assert self.dev.gateway is not None
        return self.dev.gateway.url

    def client(self) -> httpx.AsyncClient:
        """A frontend's connection: HTTPS to the gateway, verified against its exported CA."""
        assert self.dev.gateway is not None
        verify = ssl.create_default_context(cafile=str(self.dev.gateway.root_ca_file))
        limits = httpx.Limits(max_connections=32)
        return httpx.AsyncClient(base_url=self.gateway_url, verify=verify, timeout=60, limits=limits)

    def database(self, service: str) -> str:
        spec = next(spec for spec in self.specs if spec.name == service)
        return database_url(self.postgres.url, spec.database)

    def rows(self, service: str, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(libpq_url(self.database(service))) as connection:
            return connection.execute(sql, parameters).fetchall()

    @contextlib.asynccontextmanager
    async def jetstream(self) -> Any:
        """The operator's connection, as `pitlane status` and `pitlane dlq` connect."""
        assert self.dev.secured_nats is not None
        access = self.dev.secured_nats.client_access(OPERATOR)
        client = await nats.connect(
            self.nats.url, connect_timeout=5, max_reconnect_attempts=0, **access.connect_options()
        )
        try:
            yield client.jetstream()
        finally:
            await client.close()

    def child(self, service: str) -> Child:
        [child] = [child for child in self.dev.children if child.service == service]
        return child

    def kill_service(self, service: str) -> None:
        """SIGKILL: no shutdown work, no acks, no outbox flush, as when the machine loses the process."""
        child = self.child(service)
        child.process.kill()
        child.process.wait()
        self.dev.children.remove(child)

    def restart_service(self, service: str) -> None:
        spec = next(spec for spec in self.specs if spec.name == service)
        with environment(self.environment):
            self.dev.start_service(spec, self.nats.url, self.postgres.url, previous_port=self.ports[service])
        self.dev.wait_until_services_listen()

    def kill_nats(self) -> None:
        assert self.dev.nats is not None
        self.dev.nats.kill()

    def restart_nats(self) -> None:
        """On its port and file store, with its TLS and users, as `pitlane up` started it."""
        assert self.dev.nats is not None
        self.dev.nats.start()

    async def settled(self, timeout: float = 120.0) -> None:
        """Every service's outbox published, and each of its consumers caught up (`consumer_health`, as
        `pitlane status` reports it): nothing pending or unacknowledged in JetStream, nothing held back for a
        retry. A dead letter fails at once: a message given up on is one lost."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self.jetstream() as js:
            while lagging := await self._lagging(js):
                assert asyncio.get_running_loop().time() < deadline, f"not settled: {lagging}"
                await asyncio.sleep(0.2)

    async def _lagging(self, js: JetStreamContext) -> list[str]:
        lagging = []
        for spec in self.specs:
            url = libpq_url(self.database(spec.name))
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                cursor = await connection.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                [unpublished] = await cursor.fetchone() or (0,)
                consumers = await consumer_health(js, spec.name, connection)
            if unpublished:
                lagging.append(f"{spec.name} outbox: {unpublished} unpublished")
            for consumer in consumers:
                assert not (consumer.dead_letters or consumer.dead_lettered_aggregates), consumer
                if consumer.pending or consumer.held_aggregates or consumer.held_messages:
                    lagging.append(str(consumer))
        return lagging

    async def stream_marks(self) -> dict[str, int]:
        """Each service's stream's last sequence: where the messages a test is about to cause begin."""
        async with self.jetstream() as js:
            return {
                stream_name(spec.name): (await js.stream_info(stream_name(spec.name))).state.last_seq
                for spec in self.specs
            }

    async def published_since(self, marks: dict[str, int]) -> list[Any]:
        """Every message the streams stored after `marks` (RawStreamMsg: stream, seq, subject, headers, data),
        read FETCH_AT_ONCE at a time."""
        messages: list[Any] = []
        async with self.jetstream() as js:
            for stream, after in marks.items():
                last = (await js.stream_info(stream)).state.last_seq
                for first in range(after + 1, last + 1, FETCH_AT_ONCE):
                    sequences = range(first, min(first + FETCH_AT_ONCE, last + 1))
                    messages += await asyncio.gather(*(js.get_msg(stream, seq) for seq in sequences))
        return messages

    async def assert_published_since_conform(self, marks: dict[str, int]) -> int:
        """`message_violations` of every message the streams stored after `marks`: what one test published,
        each message checked once in a session (a message takes milliseconds of jsonschema's time; the
        session's streams hold tens of thousands). How many were checked."""
        messages = await self.published_since(marks)
        problems = [
            f"{message.stream} #{message.seq} {message.subject}: {problem}"
            for message in messages
            for problem in message_violations(message.subject, message.data or b"", message.headers)
        ]
        assert not problems, (
            "\n".join(problems[:20]) + f"\n({len(problems)} problems in {len(messages)} messages)"
        )
        return len(messages)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """The variables a service process inherits (DevCluster hands each child os.environ); NATS_URL and
    DATABASE_URL unset, so the embedded servers are started and this machine's own are never used."""
    saved = dict(os.environ)
    for name in ("NATS_URL", "DATABASE_URL", "PITLANE_PUBLIC_BASE_URL"):
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def whole_cluster(data_dir: Path) -> Iterator[WholeCluster]:
    """Start everything as `run_up` does, stop it as `run_up` does (gateway, services, PostgreSQL, NATS)."""
    spans = SpanCollector()
    specs = installed_services()
    data_dir.mkdir(parents=True)
    clock_offset_file = data_dir / "clock-offset"
    values = {
        **STARTUP_ENVIRONMENT,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": spans.traces_endpoint,
        **{f"{spec.env_prefix}CLOCK_OFFSET_FILE": str(clock_offset_file) for spec in specs},
    }
    dev = DevCluster(data_dir)
    gateway_port = free_port()
    dev.public_base_url = f"https://localhost:{gateway_port}"
    try:
        with environment(values):
            nats_server = dev.start_nats(None, specs)
            postgres = dev.start_postgres()
            make_disposable(postgres.url)
            for spec in specs:
                dev.start_service(spec, nats_server.url, postgres.url)
            dev.wait_until_services_listen()
            dev.start_gateway(gateway_port, specs)
        ports = {child.service: _port(child) for child in dev.children if child.service}
        yield WholeCluster(dev, nats_server, postgres, specs, spans, values, clock_offset_file, ports)
    finally:
        dev.stop()
        spans.close()


def _port(child: Child) -> int:
    assert child.http_url is not None
    return int(child.http_url.rsplit(":", 1)[1])


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    expect: int = 200,
    **options: Any,
) -> Any:
    """The answer's JSON (the response itself when it is not JSON), once its status is the one expected."""
    response = await client.request(method, path, headers=headers, **options)
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content and "json" in response.headers["content-type"] else response


class Branch:
    """A branch a test works at alone, so it counts only what it sent, with its staff's development tokens:
    the manager max, the advisor amy, the technician tom, the cashier fay (and an owner of every branch)."""

    def __init__(self, branch_id: str) -> None:
        self.id = branch_id
        self.work_orders = f"/api/workorder/v1/branches/{branch_id}/work-orders"
        self.manager = token("manager", sub="max", branches=[branch_id])
        self.advisor = token("advisor", sub="amy", branches=[branch_id])
        self.technician = token("technician", sub="tom", branches=[branch_id])
        self.finance = token("finance", sub="fay", branches=[branch_id])
        self.owner = token("owner", sub="olga", branches=["*"])

    async def open(self, client: httpx.AsyncClient) -> None:
        """Open every day 09:00–18:00, two bays, amy and tom on the staff; notification's quiet hours
        (21:00–08:00 by default) moved to one minute long past, so surveys go out whenever a test runs."""
        branch = {
            "branch_id": self.id,
            "name": "端到端店",
            "address": "上海市徐汇区",
            "timezone": "Asia/Shanghai",
            "opening_hours": [
                {"weekday": day, "opens_at": "09:00", "closes_at": "18:00"} for day in range(1, 8)
            ],
            "bays": [{"bay_id": "bay-1", "name": "1号工位"}, {"bay_id": "bay-2", "name": "2号工位"}],
            "slot_minutes": 60,
        }
        await call(client, "POST", "/api/workorder/v1/branches", self.manager, expect=201, json=branch)
        for staff_id, role in (("amy", "advisor"), ("tom", "technician")):
            staff = {"staff_id": staff_id, "display_name": staff_id, "role": role}
            path = f"/api/workorder/v1/branches/{self.id}/staff"
            await call(client, "POST", path, self.manager, expect=201, json=staff)
        now = datetime.now(SHANGHAI)
        quiet = {
            "starts": (now - timedelta(minutes=3)).strftime("%H:%M"),
            "ends": (now - timedelta(minutes=2)).strftime("%H:%M"),
        }
        await call(
            client, "PUT", f"/api/notification/v1/branches/{self.id}/quiet-hours", self.manager, json=quiet
        )

    async def oil_change(self, client: httpx.AsyncClient, work_order_id: str, price_fen: int) -> None:
        """An opened work order to its hand-over: tom dispatched, one progress step, QC passed, one line paid
        in cash, completed."""
        order = f"{self.work_orders}/{work_order_id}"
        await call(client, "POST", f"{order}/technicians", self.advisor, json={"technician_id": "tom"})
        await call(client, "POST", f"{order}/progress", self.technician, json={"text": "更换机油"})
        await call(client, "POST", f"{order}/quality-check", self.manager, json={"passed": True})
        line = {
            "item_code": "OIL",
            "name": "机油机滤",
            "category": "parts",
            "quantity": "1",
            "unit_price_fen": price_fen,
            "line_total_fen": price_fen,
        }
        paid = {"line_items": [line], "payments": [{"method": "cash", "amount_fen": price_fen}]}
        await call(client, "POST", f"{order}/settlement", self.finance, json={**paid, "total_fen": price_fen})
        await call(client, "POST", f"{order}/completion", self.advisor)


async def first_free_slot(client: httpx.AsyncClient, branch_id: str) -> str:
    """The first slot the public booking form offers, from tomorrow on: today's may all have begun, and a
    holiday has none."""
    for days in range(1, 15):
        on = local_today() + timedelta(days=days)
        answer = await call(
            client, "GET", f"/api/workorder/v1/public/branches/{branch_id}/slots", params={"on": str(on)}
        )
        free = [slot["start"] for slot in answer["slots"] if slot["bookable"]]
        if free:
            return str(free[0])
    raise AssertionError(f"no bookable slot at {branch_id} in two weeks")


def local_today() -> date:
    """Today in the chain's time zone, where KPI periods are days."""
    return datetime.now(SHANGHAI).date()


def token(role: str, *, sub: str, branches: list[str]) -> dict[str, str]:
    minted = mint_dev_token(
        DEV_JWT_SECRET,
        role=role,
        branches=branches,
        sub=sub,
        chain=DEFAULTS["chain_id"].default,
        ttl=timedelta(hours=1),
        issuer=DEFAULTS["jwt_issuer"].default,
        audience=DEFAULTS["jwt_audience"].default,
    )
    return {"Authorization": f"Bearer {minted}"}


async def eventually(
    check: Callable[[], Awaitable[Any]],
    what: str,
    timeout: float = 60.0,
) -> Any:
    """The check's first truthy answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (answer := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.2)
    return answer
