"""The test fixtures hand out real, isolated NATS and PostgreSQL servers (pitlane_platform.testing.plugin)."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pitlane_platform.db import create_engine, libpq_url
from pitlane_platform.embedded import RESERVED_PORTS, EmbeddedNats, EmbeddedPostgres
from pitlane_platform.testing.jetstream import run_in_fresh_loop
from pitlane_platform.testing.servers import TestServers
from platform_flow import server_data_dir


async def stream_names(url: str) -> list[str]:
    connection = await nats.connect(url)
    try:
        return [str(stream.config.name) for stream in await connection.jsm().streams_info()]
    finally:
        await connection.close()


async def test_nats_url_is_a_jetstream_server(nats_url: str) -> None:
    connection = await nats.connect(nats_url)
    try:
        jetstream = connection.jetstream()
        await jetstream.add_stream(name="ORDERS", subjects=["orders.>"])
        ack = await jetstream.publish("orders.created", b"order 1", headers={"Nats-Msg-Id": "order-1"})
        stored = await jetstream.get_msg("ORDERS", ack.seq)
        assert stored.data == b"order 1"
        assert stored.subject == "orders.created"
    finally:
        await connection.close()


async def test_a_test_leaves_a_stream_and_a_kv_bucket_behind(nats_url: str) -> None:
    assert await stream_names(nats_url) == []
    connection = await nats.connect(nats_url)
    try:
        jetstream = connection.jetstream()
        await jetstream.add_stream(name="LEFTOVER", subjects=["leftover.>"])
        await jetstream.create_key_value(bucket="leftover")
    finally:
        await connection.close()


def test_the_next_sync_test_sees_no_streams(nats_url: str) -> None:
    assert run_in_fresh_loop(stream_names(nats_url)) == []


async def test_the_next_async_test_sees_no_streams_either(nats_url: str) -> None:
    assert await stream_names(nats_url) == []


async def test_database_url_is_an_empty_database_of_this_test(database_url: str) -> None:
    assert make_url(database_url).drivername == "postgresql+psycopg"
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            tables = await conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
            assert tables.scalar() == 0
            await conn.execute(text("CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL)"))
            await conn.execute(text("INSERT INTO customer VALUES (1, 'Li Wei')"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT name FROM customer WHERE id = 1"))).scalar() == "Li Wei"
    finally:
        await engine.dispose()


databases_seen: list[str] = []


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_its_own_database_which_is_dropped_afterwards(
    run: int, database_url: str, pitlane_servers: TestServers
) -> None:
    name = make_url(database_url).database
    assert name is not None and name not in databases_seen
    with psycopg.connect(libpq_url(pitlane_servers.postgres_admin_url)) as admin:
        existing = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}
    assert name in existing
    assert not existing & set(databases_seen), "the previous test's database must be dropped"
    databases_seen.append(name)


def test_make_database_creates_more_databases(make_database: Callable[[str], str]) -> None:
    workorder, reminder = make_database("workorder"), make_database("reminder")
    assert make_url(workorder).database != make_url(reminder).database
    assert make_url(workorder).database.startswith("workorder_")  # type: ignore[union-attr]
    for url in (workorder, reminder):
        with psycopg.connect(libpq_url(url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (make_url(url).database,)


def test_servers_we_start_are_not_on_the_default_ports(pitlane_servers: TestServers) -> None:
    """Each server the plugin started itself stays off 4222/5432; one named by an env URL is its owner's choice,
    so only that one is left unchecked (the other is still checked)."""
    nats_is_ours = not pitlane_servers.nats_source.startswith("env")
    postgres_is_ours = not pitlane_servers.postgres_source.startswith("env")
    if not (nats_is_ours or postgres_is_ours):
        pytest.skip("both servers are named by NATS_URL/DATABASE_URL: their ports are their owner's choice")
    if nats_is_ours:
        nats_address = make_url(pitlane_servers.nats_url.replace("nats://", "nats+x://"))
        assert nats_address.port not in RESERVED_PORTS
    if postgres_is_ours:
        postgres = make_url(pitlane_servers.postgres_admin_url)
        socket_dir = postgres.query.get("host")
        if socket_dir:  # embedded: a unix socket in a directory of our own, no TCP port at all
            assert postgres.port is None
            assert not str(socket_dir).startswith(("/var/run/postgresql", "/run/postgresql"))
        else:
            assert postgres.port not in RESERVED_PORTS


def test_sources_are_described(pitlane_servers: TestServers) -> None:
    assert pitlane_servers.nats_source.startswith(("embedded nats-server", "env NATS_URL", "testcontainers"))
    assert pitlane_servers.postgres_source.startswith(
        ("embedded PostgreSQL", "env DATABASE_URL", "testcontainers")
    )
    summary = pitlane_servers.summary()
    assert summary is not None and "nats-server" in summary and "PostgreSQL" in summary


async def test_killed_nats_restarts_on_its_port_with_its_file_store(
    embedded_nats_factory: Callable[[], EmbeddedNats],
) -> None:
    server = embedded_nats_factory()
    url, pid = server.url, server.pid
    connection = await nats.connect(url)
    jetstream = connection.jetstream()
    await jetstream.add_stream(name="WORKORDER", subjects=["workorder.>"], storage="file")
    for number in range(50):
        await jetstream.publish("workorder.b1.WorkOrderCompleted.v1", f"event {number}".encode())
    await connection.close()

    server.kill()
    assert server.pid is None
    server.restart()

    assert server.url == url and server.pid != pid
    connection = await nats.connect(url)
    try:
        jetstream = connection.jetstream()
        assert (await jetstream.stream_info("WORKORDER")).state.messages == 50
        assert (await jetstream.get_msg("WORKORDER", 50)).data == b"event 49"
    finally:
        await connection.close()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with server_data_dir() as directory:
        yield directory


def test_embedded_postgres_started_again_keeps_its_data(data_dir: Path) -> None:
    postgres = EmbeddedPostgres(data_dir / "postgres").start()
    try:
        url = postgres.create_database("garage")
        assert postgres.create_database("garage") == url  # idempotent
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bay (name text)")
            conn.execute("INSERT INTO bay VALUES ('bay 1')")
        postgres.stop()
        postgres.start()
        with psycopg.connect(postgres.url_for("garage")) as conn:
            assert conn.execute("SELECT name FROM bay").fetchall() == [("bay 1",)]
        postgres.drop_database("garage")
        with psycopg.connect(postgres.admin_url) as admin:
            assert admin.execute("SELECT 1 FROM pg_database WHERE datname = 'garage'").fetchone() is None
    finally:
        postgres.stop()


CONCURRENT_SESSION_TESTS = textwrap.dedent(
    """
    import asyncio

    import nats
    import psycopg

    from pitlane_platform.db import libpq_url


    async def _roundtrip(url):
        connection = await nats.connect(url)
        jetstream = connection.jetstream()
        assert await connection.jsm().streams_info() == []
        await jetstream.add_stream(name="ORDERS", subjects=["orders.>"])
        await jetstream.publish("orders.created", b"inner")
        await connection.close()


    def test_nats(nats_url):
        print("inner nats", nats_url)
        asyncio.run(_roundtrip(nats_url))


    def test_postgres(database_url):
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
            assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    """
)


async def test_a_concurrent_test_session_gets_servers_of_its_own(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "test_inner.py").write_text(CONCURRENT_SESSION_TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # exactly the plugin under test, as named by -p
    inner = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pytest", "-p", "pitlane_platform.testing.plugin", "-p", "no:cacheprovider"),
        *("-q", "-s", "test_inner.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # Meanwhile this session keeps using its own servers, with a stream of the same name as the inner one.
    connection = await nats.connect(nats_url)
    try:
        jetstream = connection.jetstream()
        await jetstream.add_stream(name="ORDERS", subjects=["orders.>"])
        await jetstream.publish("orders.created", b"outer")
        output = (await asyncio.wait_for(inner.communicate(), timeout=120))[0].decode()
        assert inner.returncode == 0, output
        assert "2 passed" in output
        assert "pitlane: tests ran against real nats-server" in output
        assert f"inner nats {nats_url}\n" not in output
        ours = await jetstream.stream_info("ORDERS")
        assert ours.state.messages == 1 and (await jetstream.get_msg("ORDERS", 1)).data == b"outer"
    finally:
        await connection.close()
    with psycopg.connect(libpq_url(database_url)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_postgresql_we_start_trades_crash_safety_for_speed_but_still_waits_for_each_commit(
    pitlane_servers: TestServers,
) -> None:
    if not pitlane_servers.postgres_source.startswith("embedded"):
        pytest.skip("a server from DATABASE_URL or testcontainers is not ours to reconfigure")
    with psycopg.connect(libpq_url(pitlane_servers.postgres_admin_url)) as admin:
        settings = {
            name: admin.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "full_page_writes", "synchronous_commit")
        }
    assert settings == {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "on"}
