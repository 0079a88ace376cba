"""The audit trail: one row per authenticated request, in the service's own database (ADR 12).

Who (subject, role, branches), what (method, route template, the path parameters as resource ids), when
(UTC, wall clock), outcome (status code). Never the query string or the body: they hold phones and names.

`AuditMiddleware` (installed by `http.create_app`) notes each request whose route authenticated a caller —
refusals included (403, 404, 409, 422, 429) — once its response is sent; `AuditTrail` writes the notes in
batches on the DriverPool, off the request's path, and `audit_router` lets owners read them (`GET /v1/audit`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from psycopg.types.json import Jsonb
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import and_, func, literal, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitlane_platform.auth import PRINCIPAL_SCOPE_KEY, Principal, Role, require_roles
from pitlane_platform.db import DriverPool, execute_on_driver
from pitlane_platform.logging import request_id_var
from pitlane_platform.schema import audit_log

logger = logging.getLogger(__name__)

AUDIT_PATH = "/v1/audit"
# A batch is written when this many requests are waiting, or after FLUSH_INTERVAL_S, whichever comes first:
# one INSERT for many requests keeps the trail's cost per request to a list append.
FLUSH_BATCH_SIZE = 500
FLUSH_INTERVAL_S = 0.5
# While the database refuses the writes, notes wait in memory up to this many; readiness fails long before
# (`AuditTrail.backlog_age_s`), so a load balancer stops sending requests whose trail could not be kept.
MAX_PENDING = 100_000
RETRY_AFTER_FAILURE_S = 1.0
MAX_PAGE_SIZE = 500
BIGINT_MAX = 2**63 - 1

# One statement per batch; arrays in binary, as the outbox writes them (messaging/outbox.py).
INSERT_SQL = """
    INSERT INTO audit_log (occurred_at, subject, role, branches, method, route, resource_ids, status, request_id)
    SELECT * FROM unnest(
        %(occurred_ats)b::timestamptz[], %(subjects)b::text[], %(roles)b::text[], %(branches)b::jsonb[],
        %(methods)b::text[], %(routes)b::text[], %(resource_ids)b::jsonb[], %(statuses)b::int2[],
        %(request_ids)s::text[]
    )
"""


@dataclass(frozen=True, slots=True)
class AuditNote:
    """One authenticated request, as the trail keeps it."""

    occurred_at: datetime
    principal: Principal
    method: str
    route: str
    resource_ids: Mapping[str, str]
    status: int
    request_id: str | None


class AuditTrail:
    """Collects notes and writes them in batches on the DriverPool; one per service process."""

    def __init__(self, driver: DriverPool, sessions: async_sessionmaker[Any]) -> None:
        self.sessions = sessions
        self._driver = driver
        self._pending: list[AuditNote] = []
        self._oldest_pending_at: float | None = None
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._dropped = 0

    def record(self, note: AuditNote) -> None:
        """Never blocks and never fails the request: the note is written by `run` shortly after."""
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.error("ALERT audit trail backlog full: %d requests not recorded", self._dropped)
            return
        if not self._pending:
            self._oldest_pending_at = time.monotonic()
        self._pending.append(note)
        if len(self._pending) >= FLUSH_BATCH_SIZE:
            self._wake.set()

    def backlog_age_s(self) -> float:
        """How long the oldest unwritten note has waited (0 when none wait)."""
        return 0.0 if self._oldest_pending_at is None else time.monotonic() - self._oldest_pending_at

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop`, then write what is left."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                logger.warning(
                    "audit trail: writing %d notes failed; retrying", len(self._pending), exc_info=True
                )
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)
        await self.flush()

    async def flush(self) -> None:
        """Write every waiting note now (tests call it before reading the trail)."""
        async with self._flush_lock:
            while self._pending:
                batch = self._pending[:FLUSH_BATCH_SIZE]
                async with self._driver.transaction() as unit:
                    await execute_on_driver(unit, "audit", INSERT_SQL, _insert_parameters(batch))
                del self._pending[: len(batch)]
                self._oldest_pending_at = time.monotonic() if self._pending else None


def _insert_parameters(batch: list[AuditNote]) -> dict[str, list[Any]]:
    return {
        "occurred_ats": [note.occurred_at for note in batch],
        "subjects": [note.principal.user_id for note in batch],
        "roles": [str(note.principal.role) for note in batch],
        "branches": [Jsonb(sorted(note.principal.branches)) for note in batch],
        "methods": [note.method for note in batch],
        "routes": [note.route for note in batch],
        "resource_ids": [Jsonb(dict(note.resource_ids)) for note in batch],
        "statuses": [note.status for note in batch],
        "request_ids": [note.request_id for note in batch],
    }


class AuditMiddleware:
    """Notes every request whose route authenticated its caller (`auth.authenticate_first` leaves the
    principal on the scope), with the status it was answered with. Requests without a valid token are not
    authenticated and not noted; an exception that escapes is noted as the 500 the request middleware
    answers. Installed inside `RequestContextMiddleware`, so the request id is known."""

    def __init__(self, app: ASGIApp, trail: AuditTrail) -> None:
        self.app = app
        self.trail = trail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        occurred_at = datetime.now(UTC)
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            principal: Principal | None = scope.get(PRINCIPAL_SCOPE_KEY)
            if principal is not None:
                route = scope.get("route")
                self.trail.record(
                    AuditNote(
                        occurred_at=occurred_at,
                        principal=principal,
                        method=scope["method"],
                        # The template, never the path: a path may be matched by several routes' values.
                        route=str(getattr(route, "path", scope["path"])),
                        # A NUL in a path parameter is refused (422) but still on the trail: written as
                        # the text \x00, since PostgreSQL's jsonb cannot hold it and one such note would
                        # fail its whole batch, again and again.
                        resource_ids={
                            name: str(value).replace("\x00", "\\x00")
                            for name, value in scope.get("path_params", {}).items()
                        },
                        status=status,
                        request_id=request_id_var.get(),
                    )
                )


class AuditRecord(BaseModel):
    """One authenticated request."""

    id: int = Field(description="increasing within this service; pass the last one seen as `before`")
    occurred_at: datetime = Field(description="when the request arrived (UTC)")
    subject: str = Field(description="the token's user id")
    role: Role
    branches: list[str] = Field(description="the token's branches; `*` is every branch")
    method: str
    route: str = Field(description="the route template, e.g. /v1/customers/{customer_id}")
    resource_ids: dict[str, str] = Field(description="the route's path parameters")
    status: int = Field(description="the HTTP status the request was answered with")
    request_id: str | None = Field(description="the X-Request-ID, to find the request's logs and trace")


class AuditPage(BaseModel):
    items: list[AuditRecord] = Field(description="newest first")
    next_before: int | None = Field(description="pass as `before` for the next page; null on the last page")


def audit_router(trail: AuditTrail) -> APIRouter:
    """`GET /v1/audit` for owners: newest first, filtered, paged by id (`before`)."""
    router = APIRouter(tags=["audit"])

    @router.get(AUDIT_PATH, summary="The audit trail of authenticated requests, newest first (owners only)")
    async def read_audit_trail(
        _owner: Annotated[Principal, Depends(require_roles(Role.OWNER))],
        subject: Annotated[str | None, Query(min_length=1, max_length=200, description="a user id")] = None,
        route: Annotated[
            str | None, Query(min_length=1, max_length=300, description="a route template, exactly")
        ] = None,
        resource_id: Annotated[
            str | None, Query(min_length=1, max_length=200, description="any path parameter equal to this")
        ] = None,
        since: Annotated[AwareDatetime | None, Query(description="at or after (with a UTC offset)")] = None,
        until: Annotated[AwareDatetime | None, Query(description="before (with a UTC offset)")] = None,
        status: Annotated[int | None, Query(ge=100, le=599, description="the outcome's status code")] = None,
        before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="ids below this")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    ) -> AuditPage:
        conditions: list[Any] = []
        if subject is not None:
            conditions.append(audit_log.c.subject == subject)
        if route is not None:
            conditions.append(audit_log.c.route == route)
        if since is not None:
            conditions.append(audit_log.c.occurred_at >= since)
        if until is not None:
            conditions.append(audit_log.c.occurred_at < until)
        if status is not None:
            conditions.append(audit_log.c.status == status)
        if before is not None:
            conditions.append(audit_log.c.id < before)
        if resource_id is not None:
            values = func.jsonb_each_text(audit_log.c.resource_ids).table_valued("value")
            conditions.append(
                select(literal(1)).select_from(values).where(values.c.value == resource_id).exists()
            )
        query = (
            select(audit_log).where(and_(True, *conditions)).order_by(audit_log.c.id.desc()).limit(limit + 1)
        )
        async with trail.sessions() as session:
            rows = (await session.execute(query)).mappings().all()
        items = [AuditRecord.model_validate(dict(row)) for row in rows[:limit]]
        return AuditPage(items=items, next_before=items[-1].id if len(rows) > limit else None)

    return router
