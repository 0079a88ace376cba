"""OpenTelemetry tracing: one tracer provider per process, W3C trace context across HTTP and NATS hops.

OpenTelemetry lets a process set its global tracer provider once and silently ignores later attempts, so
`setup_telemetry` creates the provider on the first call that names an exporter or endpoint and afterwards
only adds exporters to it. It can be called by the HTTP app, by each worker and by every test without
tracing going dark or being duplicated. With nowhere to send spans, nothing is set up: no SDK provider (which
would build a recording span per request for nobody), no HTTP instrumentation, no platform spans; the W3C
trace context is still carried from requests to messages.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import __version__ as sqlalchemy_instrumentation_version
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import Attributes
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

TRACER_NAME = "pitlane"
MESSAGING_SYSTEM = "nats"
# Probes hit these every few seconds; tracing them would bury the traces that matter.
UNTRACED_URLS = "/health,/ready"
OTLP_TRACES_PATH = "/v1/traces"
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OTLP_FROM_ENVIRONMENT = "<environment>"

_provider: TracerProvider | None = None
_adopted_provider = False  # an SDK provider registered before ours (opentelemetry-instrument): it exports
_otlp_endpoints: set[str] = set()
_exporters: weakref.WeakSet[SpanExporter] = weakref.WeakSet()
_instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def setup_telemetry(
    service_name: str,
    *,
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
    sample_ratio: float = 1.0,
) -> TracerProvider | None:
    """The process's tracer provider, created on the first call that has somewhere to send spans, and
    registered globally; None while there is nowhere (then no SDK provider exists and spans cost nothing).

    `otlp_endpoint` is the collector's base URL (e.g. `http://otel-collector:4318`); spans are batched and
    sent over OTLP/HTTP. Without it, OpenTelemetry's standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables
    are honoured, so processes started without settings (workers, test subprocesses) export too.
    `exporter` (e.g. an InMemorySpanExporter in tests) receives every span synchronously. Each endpoint and
    exporter is attached once however often this is called. The service name and `sample_ratio` (the share
    of new traces recorded; a caller's sampling decision is followed) of the first provider win: one process
    runs one service.
    """
    global _provider
    otlp_from_environment = otlp_endpoint is None and _standard_otlp_env_is_set()
    if _provider is None and not (otlp_endpoint or otlp_from_environment or exporter is not None):
        return None
    if _provider is None:
        _provider = _adopt_or_register_provider(service_name, sample_ratio)
    elif _provider.resource.attributes.get(SERVICE_NAME) != service_name:
        logger.warning(
            "telemetry already set up for service %r; spans of %r are reported under that name",
            _provider.resource.attributes.get(SERVICE_NAME),
            service_name,
        )
    if otlp_endpoint and otlp_endpoint not in _otlp_endpoints:
        _otlp_endpoints.add(otlp_endpoint)
        _provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(otlp_endpoint)))
        )
    elif otlp_from_environment and OTLP_FROM_ENVIRONMENT not in _otlp_endpoints:
        _otlp_endpoints.add(OTLP_FROM_ENVIRONMENT)
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the variables itself
    if exporter is not None and exporter not in _exporters:
        _exporters.add(exporter)
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    return _provider


def spans_are_exported() -> bool:
    """True once setup_telemetry attached an exporter, or adopted a provider someone else configured."""
    return bool(_otlp_endpoints or _exporters or _adopted_provider)


def _adopt_or_register_provider(service_name: str, sample_ratio: float) -> TracerProvider:
    # Under `opentelemetry-instrument` an SDK provider is already global; adding to it beats a replacement
    # that OpenTelemetry would refuse.
    global _adopted_provider
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        _adopted_provider = True
        return existing
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    trace.set_tracer_provider(provider)
    return provider


def _standard_otlp_env_is_set() -> bool:
    return any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES)


def _traces_url(otlp_endpoint: str) -> str:
    # The exporter uses an explicit endpoint verbatim, while operators write the collector's base URL.
    base = otlp_endpoint.rstrip("/")
    return base if base.endswith(OTLP_TRACES_PATH) else base + OTLP_TRACES_PATH


def instrument_app(app: FastAPI) -> None:
    """A server span per HTTP request (except the probes). Call before the app serves its first request."""
    # The per-message ASGI "http send"/"http receive" spans triple the span count and tell nothing the server
    # span does not.
    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"])


def instrument_engine(engine: AsyncEngine) -> None:
    """A client span per SQL statement on this engine; calling it again for the same engine does nothing.

    SQLAlchemyInstrumentor is a process-wide singleton that instruments only the engine of its first
    `instrument()` call, and tests create many engines, so each engine gets its own EngineTracer (the class
    the instrumentor itself uses). The instrumentation supports SQLAlchemy < 2.1 only, which we pin.
    """
    sync_engine = engine.sync_engine
    if sync_engine in _instrumented_engines:
        return
    _instrumented_engines.add(sync_engine)
    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", sqlalchemy_instrumentation_version)
    connections_usage = metrics.get_meter(
        "opentelemetry.instrumentation.sqlalchemy", sqlalchemy_instrumentation_version
    ).create_up_down_counter("db.client.connections.usage", unit="connections")
    EngineTracer(tracer, sync_engine, connections_usage)


def inject_trace_headers(context: Context | None = None) -> dict[str, str]:
    """W3C `traceparent`/`tracestate` of the current (or given) context, for an outbox row or NATS headers."""
    headers: dict[str, str] = {}
    propagate.inject(headers, context=context)
    return headers


def context_from_headers(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by message or HTTP headers; an empty context when they carry none."""
    # Header names are case-insensitive on the wire, but the propagator looks up the exact lowercase key.
    return propagate.extract({name.lower(): value for name, value in (headers or {}).items()})


@contextmanager
def start_span(
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
    attributes: Attributes = None,
) -> Iterator[Span]:
    """A span made current for the block; an exception escaping the block is recorded and marks it failed.

    While nothing exports spans, none is built (it would cost the hot paths for nothing); a given `context`
    is still made current, so the trace carried by a message flows on to the events its handler emits.
    """
    if not spans_are_exported():
        if context is None:
            yield trace.INVALID_SPAN
            return
        token = otel_context.attach(context)
        try:
            yield trace.INVALID_SPAN
        finally:
            otel_context.detach(token)
        return
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes) as span:
        yield span


def current_trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(span_context.trace_id) if span_context.is_valid else None


@contextmanager
def publish_span(
    subject: str,
    *,
    message_id: str,
    context: Context | None = None,
    subject_template: str | None = None,
) -> Iterator[Span]:
    """PRODUCER span around publishing one message to JetStream.

    The outbox relay passes the context stored on the outbox row, so the publish joins the trace of the
    request that produced the event; headers injected inside the block make the consumer its child.
    """
    with start_span(
        _messaging_span_name("publish", subject, subject_template),
        SpanKind.PRODUCER,
        context=context,
        attributes=_messaging_attributes("send", "publish", subject, message_id, subject_template),
    ) as span:
        yield span


@contextmanager
def process_span(
    subject: str,
    *,
    message_id: str,
    headers: Mapping[str, str] | None,
    consumer_name: str,
    subject_template: str | None = None,
) -> Iterator[Span]:
    """CONSUMER span around handling one message, continuing the trace found in its headers."""
    attributes = _messaging_attributes("process", "process", subject, message_id, subject_template)
    attributes["messaging.consumer.group.name"] = consumer_name
    with start_span(
        _messaging_span_name("process", subject, subject_template),
        SpanKind.CONSUMER,
        context=context_from_headers(headers),
        attributes=attributes,
    ) as span:
        yield span


def _messaging_span_name(operation_name: str, subject: str, subject_template: str | None) -> str:
    # Semantic conventions: "{operation} {destination}", preferring the low-cardinality template.
    return f"{operation_name} {subject_template or subject}"


def _messaging_attributes(
    operation_type: str, operation_name: str, subject: str, message_id: str, subject_template: str | None
) -> dict[str, str]:
    attributes = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation_name,
        "messaging.destination.name": subject,
        "messaging.message.id": message_id,
    }
    if subject_template is not None:
        attributes["messaging.destination.template"] = subject_template
    return attributes
