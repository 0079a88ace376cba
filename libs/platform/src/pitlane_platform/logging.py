"""JSON logs on stderr, one object per line, each carrying the service and the trace it belongs to.

Every record gets `timestamp`, `level`, `logger`, `message`, `service`, and, when emitted inside a span,
`trace_id`/`span_id` (the ids an operator pastes into the trace viewer) and the HTTP `request_id`. Anything
passed as `extra={...}` becomes a field of its own.

No personal data or secret reaches a line: a traceback names a database or validation error by its kind,
never by its message (PostgreSQL's messages quote the failing row, SQLAlchemy's the statement's parameters,
pydantic's the rejected input); uvicorn writes no access log; and the URLs that uvicorn, httpx and the
platform log lose their query strings (lookups and searches carry phone numbers, plates and names there) and
every signed link token in their paths (`/c/<token>`, `/n/s/<token>`, `/r/<token>`…: a bearer secret that
opens a customer's data).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from contextvars import ContextVar
from types import TracebackType

import psycopg
import pydantic
import sqlalchemy.exc
from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# uvicorn's own loggers: their handlers are removed so their records reach ours through the root logger.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")
# uvicorn's access log: off. Each connection writes it when the logger has a handler anywhere up its chain,
# whatever `--no-access-log` said, so routing it to the root handler would switch it back on. Every line
# would carry a path, and paths carry link tokens; the audit trail records authenticated requests.
UVICORN_ACCESS_LOGGER = "uvicorn.access"

# Loggers that write request URLs: each record's message is redacted before any handler sees it.
URL_LOGGERS = ("uvicorn.error", "httpx")
# A query string (`?phone=…`, `?attribution=<token>`).
QUERY_STRING = re.compile(r"\?[^\s\"']*")
# A path segment shaped like a signed link token (security/links.py: `<base64url claims>.<base64url
# signature>`), whichever route carries it: a rule on the token rather than a list of prefixes, so a new
# page behind a link is covered the day it is added. Both parts at least 16 long: `openapi.json` is no token.
LINK_TOKEN_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}(?=[/?#\s\"']|$)")
# Errors whose messages quote input or stored data; a traceback gives their kind only.
DATA_QUOTING_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.Error,
    sqlalchemy.exc.StatementError,
    pydantic.ValidationError,
)

# The X-Request-ID of the request being handled; set by the HTTP middleware.
request_id_var: ContextVar[str | None] = ContextVar("pitlane_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def redact_url(text: str) -> str:
    """`text` with every query string and every path segment shaped like a link token replaced by `…`."""
    return LINK_TOKEN_SEGMENT.sub("…", QUERY_STRING.sub("?…", text))


def describe_exception(error: BaseException) -> str:
    """A traceback of `error` and the exceptions that led to it, each database or validation error named
    by its kind (with PostgreSQL's SQLSTATE, or pydantic's error locations and types) instead of its
    message."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\nThe above exception led to the following one:\n\n".join(
        _one_traceback(link) for link in reversed(chain)
    )


def _one_traceback(error: BaseException) -> str:
    frames = "".join(traceback.format_tb(error.__traceback__))
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    return f"Traceback (most recent call last):\n{frames}{kind}: {_safe_message(error)}"


def _safe_message(error: BaseException) -> str:
    if isinstance(error, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['type']}" for item in error.errors()
        )
    if isinstance(error, DATA_QUOTING_ERRORS):
        cause = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error
        sqlstate = getattr(cause, "sqlstate", None)
        return f"(message withheld: it may quote personal data){f' SQLSTATE {sqlstate}' if sqlstate else ''}"
    return str(error)


class _RedactedJsonFormatter(JsonFormatter):
    """Every exception a record carries (`logger.exception`, `exc_info=`) told as `describe_exception` does."""

    def formatException(
        self, ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
    ) -> str:
        return describe_exception(ei[1]) if ei[1] is not None else ""


class _UrlRedactingFilter(logging.Filter):
    """On a logger that writes URLs: its records' messages, redacted, before any handler (pytest's too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_url(record.getMessage()), None
        return True


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
    formatter = _RedactedJsonFormatter(
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
    access_logger = logging.getLogger(UVICORN_ACCESS_LOGGER)
    access_logger.handlers.clear()
    access_logger.propagate = False
    access_logger.disabled = True
    for name in URL_LOGGERS:
        url_logger = logging.getLogger(name)
        if not any(isinstance(f, _UrlRedactingFilter) for f in url_logger.filters):
            url_logger.addFilter(_UrlRedactingFilter())
