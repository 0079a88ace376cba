"""Async SQLAlchemy on psycopg 3: one engine per service, sessions for units of work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from opentelemetry.trace import SpanKind
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from pitlane_platform.telemetry import start_span


def sqlalchemy_url(url: str) -> str:
    """Accept `postgresql://…` (as libpq, pgserver and operators write it) and use the psycopg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a plain libpq URL, for psycopg connections outside SQLAlchemy (LISTEN)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def execute_on_driver(
    session: AsyncSession, operation: str, sql: str, parameters: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """Run one fixed statement of the platform's hot path on the session's own psycopg connection, in its
    transaction, and return its first row (None if it returns none, or no rows at all).

    Why: going through SQLAlchemy costs several times the CPU of the statement itself (parameter processing,
    and PostgreSQL INSERT … ON CONFLICT constructs are recompiled on every call), and these statements run for
    every event written and every message consumed. psycopg prepares them on the server after a few calls.
    The SQL uses psycopg's `%(name)s` placeholders. A span keeps the statement visible in traces.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    with start_span(
        f"{operation} postgresql",
        SpanKind.CLIENT,
        attributes={"db.system.name": "postgresql", "db.operation.name": operation},
    ):
        cursor = await driver.execute(sql, parameters)
        return await cursor.fetchone() if cursor.description is not None else None
