"""pytest plugin: real NATS and PostgreSQL for every test.

Fixtures:
- `pitlane_servers` (session): the session's servers (`.nats_url`, `.postgres_admin_url`, `.nats_source`,
  `.postgres_source`), each started when a test first needs it; see testing/servers.py for the choice.
- `nats_url`: the NATS URL, with every JetStream stream, KV bucket and object store deleted before the test.
- `database_url`: a `postgresql+psycopg://` URL of a new, empty database of this test, dropped afterwards.
- `make_database`: `make_database("workorder")` → the URL of another new database, dropped after the test.
- `embedded_nats_factory`: `embedded_nats_factory()` → a started EmbeddedNats of this test alone, to kill
  and restart (options such as `max_payload=65536` go to EmbeddedNats); stopped after the test.
- `database_proxy` (async): a started DatabaseProxy in front of `database_url`; give the code under test
  `database_proxy.url`, then `await database_proxy.cut()` / `restore()`; closed after the test. See
  testing/dbproxy.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pitlane_platform.db import sqlalchemy_url
from pitlane_platform.embedded import EmbeddedNats, create_database, drop_database
from pitlane_platform.embedded import database_url as url_of_database
from pitlane_platform.testing.dbproxy import DatabaseProxy
from pitlane_platform.testing.jetstream import delete_all_streams, run_in_fresh_loop
from pitlane_platform.testing.servers import TestServers

_SERVERS = pytest.StashKey[TestServers]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SERVERS] = TestServers(announce=lambda line: _write_to_terminal(config, line))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    servers = config.stash.get(_SERVERS, None)
    if servers is not None and (summary := servers.summary()):
        terminalreporter.write_line(summary)


@pytest.fixture(scope="session")
def pitlane_servers(pytestconfig: pytest.Config) -> Iterator[TestServers]:
    servers = pytestconfig.stash[_SERVERS]
    yield servers
    servers.close()


@pytest.fixture
def nats_url(pitlane_servers: TestServers) -> str:
    url = pitlane_servers.nats_url
    if pitlane_servers.nats_is_shared and _xdist_worker_count() > 1:
        pytest.fail(
            "NATS_URL is one server for all pytest-xdist workers, and each test starts by deleting every "
            "stream on it: run without -n, or unset NATS_URL so each worker gets its own server"
        )
    run_in_fresh_loop(delete_all_streams(url))
    return url


@pytest.fixture
def make_database(pitlane_servers: TestServers) -> Iterator[Callable[[str], str]]:
    admin_url = pitlane_servers.postgres_admin_url
    created: list[str] = []

    def make(purpose: str = "test") -> str:
        name = unique_database_name(purpose)
        create_database(admin_url, name)
        created.append(name)
        return sqlalchemy_url(url_of_database(admin_url, name))

    yield make
    for name in created:
        drop_database(admin_url, name)


@pytest.fixture
def database_url(make_database: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    return make_database(request.node.name)


@pytest.fixture
def embedded_nats_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedNats]]:
    started: list[EmbeddedNats] = []

    def start(**options: Any) -> EmbeddedNats:
        server = EmbeddedNats(tmp_path / f"nats-{len(started)}", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest_asyncio.fixture
async def database_proxy(database_url: str) -> AsyncIterator[DatabaseProxy]:
    # pytest_asyncio.fixture, not pytest.fixture: works in strict mode too. It runs on the default fixture
    # loop (this repo: the session loop, as the tests), and the proxy forwards only while that loop runs.
    async with DatabaseProxy(database_url) as proxy:
        yield proxy


def unique_database_name(purpose: str) -> str:
    """`purpose` made a valid identifier, plus a random suffix: unique across tests, xdist workers and
    concurrent sessions sharing one server, and still telling whose database it is."""
    slug = re.sub(r"[^a-z0-9]+", "_", purpose.lower()).strip("_")[:40] or "test"
    if slug[0].isdigit():
        slug = f"db_{slug}"
    return f"{slug}_{uuid.uuid4().hex[:12]}"


def _xdist_worker_count() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def _write_to_terminal(config: pytest.Config, line: str) -> None:
    """Print past output capturing, so the servers a run used show up in its log as they start."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # e.g. a pytest-xdist worker, which has no terminal of its own
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        # Progress dots may be mid-line (in -q mode the reporter cannot tell): start on a line of our own.
        reporter.write_line(f"\n{line}")
