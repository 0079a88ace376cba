"""JSON logs on stderr, one object per line, each carrying the service and the trace it belongs to.

Every record gets `timestamp`, `level`, `logger`, `message`, `service`, and, when emitted inside a span,
`trace_id`/`span_id` (the ids an operator pastes into the trace viewer) and the HTTP `request_id`. Anything
passed as `extra={...}` becomes a field of its own.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# uvicorn's own loggers: their handlers are removed so their records reach ours through the root logger.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

# The X-Request-ID of the request being handled; set by the HTTP middleware.
request_id_var: ContextVar[str | None] = ContextVar("pitlane_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record arrives: test runners swap it per test, and a handler
    holding the stream of an earlier test would write to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _replaced) -> None:
        pass


class _TraceContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        request_id = request_id_var.get()
        if request_id is not None:
            record.request_id = request_id
        return True


def configure_logging(service_name: str, level: str | int = "INFO") -> None:
    """Route every logger (uvicorn's included) to one JSON handler on stderr. Safe to call again: the
    handler of an earlier call is replaced, handlers others installed (e.g. pytest's) are left alone."""
    formatter = JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        static_fields={"service": service_name},
        # uvicorn attaches an ANSI-coloured copy of each message; it is noise in JSON.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )
    # ISO 8601 in UTC with milliseconds, whatever the host's time zone.
    formatter.converter = time.gmtime
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"

    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_TraceContextFilter())

    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)

    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
