"""The database proxy (pitlane_platform.testing.dbproxy) cuts a real PostgreSQL away and brings it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pitlane_platform.db import create_engine, libpq_url
from pitlane_platform.testing.dbproxy import DatabaseProxy, Upstream
from platform_flow import wait_until

CONNECT_TIMEOUT_S = 5
FAILS_FAST_S = 2.0  # well under CONNECT_TIMEOUT_S: the proxy refused, no timeout fired


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
    )


async def scalar(conn: psycopg.AsyncConnection[Any], sql: str) -> Any:
    row = await (await conn.execute(sql)).fetchone()
    assert row is not None
    return row[0]


async def test_a_query_goes_through_the_proxy_and_a_cut_breaks_it_and_refuses_new_connections(
    database_proxy: DatabaseProxy,
) -> None:
    async with await connect(database_proxy.url) as conn:
        assert await scalar(conn, "SELECT 1") == 1
        assert conn.info.host == str(database_proxy.socket_dir)  # through the proxy, not around it
        assert database_proxy.open_connections == 1

        await database_proxy.cut()

        assert database_proxy.open_connections == 0
        with pytest.raises(psycopg.OperationalError):
            await conn.execute("SELECT 1")
        assert conn.broken

    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        await connect(database_proxy.url)
    assert time.monotonic() - started < FAILS_FAST_S


async def test_after_restore_new_connections_work_and_cut_ones_stay_closed(
    database_proxy: DatabaseProxy,
) -> None:
    cut_conn = await connect(database_proxy.url)
    await database_proxy.cut()
    await database_proxy.restore()

    async with await connect(database_proxy.url) as conn:
        assert await scalar(conn, "SELECT 41 + 1") == 42
    with pytest.raises(psycopg.OperationalError):
        await cut_conn.execute("SELECT 1")
    await cut_conn.close()


async def test_a_cut_ends_the_server_side_too_and_releases_its_locks(
    database_proxy: DatabaseProxy, database_url: str
) -> None:
    async with await connect(database_url) as direct:  # around the proxy: sees what the server sees
        await direct.execute("CREATE TABLE visits (id int)")
        await direct.execute("SET lock_timeout = '2s'")
        proxied = await connect(database_proxy.url)
        backend_pid = proxied.info.backend_pid
        await proxied.execute("BEGIN")
        await proxied.execute("LOCK TABLE visits IN ACCESS EXCLUSIVE MODE")
        alive = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {backend_pid}"
        assert await scalar(direct, alive) == 1

        await database_proxy.cut()

        async def backend_ended() -> bool:
            return await scalar(direct, alive) == 0

        await wait_until(backend_ended, timeout=10, interval=0.05)
        async with direct.transaction():  # would time out while the cut transaction held its lock
            await direct.execute("LOCK TABLE visits IN ACCESS EXCLUSIVE MODE")
        await proxied.close()


async def query_retrying_once(engine: AsyncEngine, sql: str) -> Any:
    """As a service would: a connection the pool handed out may have died meanwhile (no pre-ping); SQLAlchemy
    then invalidates the pool and the next attempt connects anew."""
    for attempt in range(2):
        try:
            async with engine.connect() as conn:
                return (await conn.execute(text(sql))).scalar_one()
        except DBAPIError as error:
            if attempt or not error.connection_invalidated:
                raise
    raise AssertionError("unreachable")


async def test_an_engine_fails_while_cut_and_recovers_after_restore(database_proxy: DatabaseProxy) -> None:
    engine = create_engine(database_proxy.url, pool_size=2)
    try:
        before = await query_retrying_once(engine, "SELECT pg_backend_pid()")

        await database_proxy.cut()
        started = time.monotonic()
        with pytest.raises(DBAPIError) as failure:
            await query_retrying_once(engine, "SELECT 1")
        assert isinstance(failure.value.orig, psycopg.OperationalError)
        assert time.monotonic() - started < FAILS_FAST_S

        await database_proxy.restore()
        after = await query_retrying_once(engine, "SELECT pg_backend_pid()")
        assert after != before  # a new server connection: the one from before the cut is gone
        assert database_proxy.open_connections == 1  # the pool's connection, through the proxy
    finally:
        await engine.dispose()


async def test_cut_and_restore_are_idempotent_and_counted(database_proxy: DatabaseProxy) -> None:
    assert not database_proxy.is_cut and database_proxy.cuts == 0
    await database_proxy.cut()
    await database_proxy.cut()
    assert database_proxy.is_cut and database_proxy.cuts == 1
    await database_proxy.restore()
    await database_proxy.restore()
    assert not database_proxy.is_cut
    async with await connect(database_proxy.url) as conn:
        assert await scalar(conn, "SELECT 1") == 1
    await database_proxy.cut()
    assert database_proxy.cuts == 2


async def test_leaving_closes_every_connection_and_removes_the_socket_dir(database_url: str) -> None:
    async with DatabaseProxy(database_url) as proxy:
        conn = await connect(proxy.url)
        assert await scalar(conn, "SELECT 1") == 1
        socket_dir = proxy.socket_dir
        assert proxy.socket_path.exists()
    assert not socket_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        await conn.execute("SELECT 1")
    await conn.close()


async def test_the_url_keeps_driver_credentials_database_and_options() -> None:
    given = "postgresql+psycopg://app:p%40ss@db.example:6543/orders?application_name=relay&sslmode=prefer"
    async with DatabaseProxy(given) as proxy:
        url = make_url(proxy.url)
        assert (url.drivername, url.username, url.password) == ("postgresql+psycopg", "app", "p@ss")
        assert (url.host, url.port, url.database) == (None, None, "orders")
        assert dict(url.query) == {
            "application_name": "relay",
            "sslmode": "prefer",
            "host": str(proxy.socket_dir),
            "port": "5432",
        }
        assert proxy.upstream == Upstream(host="db.example", port=6543)
        # libpq reads it too (psycopg parses without connecting).
        params = psycopg.conninfo.conninfo_to_dict(libpq_url(proxy.url))
        assert (params["host"], params["port"], params["dbname"]) == (str(proxy.socket_dir), "5432", "orders")


def test_the_upstream_is_read_as_libpq_would() -> None:
    unix = Upstream.of_url("postgresql+psycopg://postgres:@/db?host=/tmp/pg")
    assert unix.unix_path is not None and str(unix.unix_path) == "/tmp/pg/.s.PGSQL.5432"
    on_port = Upstream.of_url("postgresql://postgres:@/db?host=/tmp/pg&port=5433")
    assert on_port.unix_path is not None and on_port.unix_path.name == ".s.PGSQL.5433"
    assert Upstream.of_url("postgresql://u@localhost/db") == Upstream(host="localhost", port=5432)
    with pytest.raises(ValueError, match="several"):
        Upstream.of_url("postgresql://u@/db?host=h1,h2")
    with pytest.raises(ValueError, match="no host"):
        Upstream.of_url("postgresql://u@/db")


@pytest.fixture
async def echo_server() -> AsyncIterator[int]:
    """A TCP server that echoes: the proxy forwards bytes, whatever speaks them."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_forwards_to_a_tcp_server_and_cuts_that_too(echo_server: int) -> None:
    async with DatabaseProxy(f"postgresql://u@127.0.0.1:{echo_server}/db") as proxy:
        reader, writer = await asyncio.open_unix_connection(proxy.socket_path)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"

        await proxy.cut()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the proxy
        writer.close()

        reader, writer = await asyncio.open_unix_connection(proxy.socket_path)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # accepted and closed at once
        writer.close()
