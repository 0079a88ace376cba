"""The database, two ways: async SQLAlchemy on psycopg 3 (one engine per service, sessions for units of work
that use SQLAlchemy's queries), and a pool of plain psycopg connections for the platform's hot paths, whose
transactions cost what their statements cost (`DriverPool`). Both run the platform's fixed statements on
the driver (`execute_on_driver`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from opentelemetry.trace import SpanKind
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
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
    # No pool_pre_ping: it costs a round trip per checkout. A connection the server dropped (a restart) fails
    # its next use once and is discarded by the pool; consumers retry that as an outage (messaging/faults.py).
    # hide_parameters: SQLAlchemy's errors quote a statement's parameters (names, phones), and errors are logged.
    return create_async_engine(
        sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size, hide_parameters=True
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def advisory_lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (bigint) for a named leadership, e.g. `outbox-relay:workorder`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class DriverTransaction:
    """One transaction on a plain psycopg connection of a DriverPool: what `eventstore.append`,
    `outbox.enqueue` and `execute_on_driver` take where they take a session."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection


class DriverPool:
    """Plain psycopg connections for units of work on fixed SQL (no ORM session, no greenlet bridge): an
    SQLAlchemy session costs about a millisecond of CPU per transaction on these machines, several times the
    statements of a command like an append (docs/benchmarks.md)."""

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        # A checkout waits at most 10 s: an unreachable database is an error to retry, not a hang.
        self._pool = AsyncConnectionPool(
            libpq_url(url), min_size=1, max_size=max_size, timeout=10.0, open=False
        )

    async def open(self) -> None:
        await self._pool.open(wait=True)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DriverTransaction]:
        """Commits when the block ends, rolls back if it raises; the connection goes back to the pool."""
        async with self._pool.connection() as connection:
            yield DriverTransaction(connection)


Unit = AsyncSession | DriverTransaction
"""A unit of work the platform's statements run in: an SQLAlchemy session's transaction, or a driver one."""

_DRIVER = "pitlane.driver_connection"


async def driver_connection(unit: Unit) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under the unit's current transaction (for a session, looked up once per
    transaction)."""
    if isinstance(unit, DriverTransaction):
        return unit.connection
    session = unit
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    raw = await (await session.connection()).get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    session.info[_DRIVER] = (session.sync_session.get_transaction(), driver)
    return driver


async def execute_on_driver(
    unit: Unit, operation: str, sql: str, parameters: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """Run one fixed statement of the platform's hot path on the unit's psycopg connection, in its
    transaction, and return its first row (None if it returns none, or no rows at all).

    Why: going through SQLAlchemy costs several times the CPU of the statement itself (parameter processing,
    and PostgreSQL INSERT … ON CONFLICT constructs are recompiled on every call), and these statements run for
    every event written and every message consumed. psycopg prepares them on the server after a few calls.
    The SQL uses psycopg's `%(name)s` placeholders. A span keeps the statement visible in traces.
    """
    driver = await driver_connection(unit)
    with _statement_span(operation):
        cursor = await driver.execute(sql, parameters)
        return await cursor.fetchone() if cursor.description is not None else None


async def fetch_on_driver(
    unit: Unit, operation: str, sql: str, parameters: Mapping[str, Any], *, as_dicts: bool = False
) -> list[Any]:
    """Like `execute_on_driver`, for a query: every row it returns, as tuples or (`as_dicts`) as dicts
    keyed by column name."""
    driver = await driver_connection(unit)
    with _statement_span(operation):
        async with driver.cursor(row_factory=dict_row if as_dicts else tuple_row) as cursor:
            await cursor.execute(sql, parameters)
            return await cursor.fetchall()


def json_rows(documents: Any) -> Jsonb:
    """A parameter carrying many rows as one JSON document (for `jsonb_to_recordset` and the like): psycopg
    would adapt a list element by element in Python. Datetimes, dates and UUIDs are written as PostgreSQL
    reads them; a Decimal as its exact text."""
    return Jsonb(documents, dumps=_dumps_rows)


def _dumps_rows(value: Any) -> bytes:
    return orjson.dumps(value, default=_decimal_text)


def _decimal_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} does not go into a row")


def _statement_span(operation: str) -> AbstractContextManager[Any]:
    return start_span(
        f"{operation} postgresql",
        SpanKind.CLIENT,
        attributes={"db.system.name": "postgresql", "db.operation.name": operation},
    )
