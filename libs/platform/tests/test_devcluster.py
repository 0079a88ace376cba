"""`pitlane up` and `pitlane status` as a developer runs them: real processes, real servers, real signals."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
import pytest

from pitlane_platform.db import libpq_url
from pitlane_platform.devcluster import DevCluster, nats_access, read_state
from pitlane_platform.embedded import RESERVED_PORTS, drop_database, free_port
from pitlane_platform.services import ServiceSpec
from pitlane_platform.testing.jetstream import run_in_fresh_loop
from pitlane_platform.testing.servers import TestServers
from platform_flow import server_data_dir, wait_until

PITLANE = str(Path(sys.executable).parent / "pitlane")
STARTUP_TIMEOUT_S = 60


def embedded_only_env() -> dict[str, str]:
    """This machine's environment without NATS_URL/DATABASE_URL, so `pitlane up` embeds its own servers."""
    return {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "PITLANE_DATA_DIR")}


class RunningUp:
    """A `pitlane up` subprocess whose output is read line by line on a thread."""

    def __init__(self, data_dir: Path, gateway_port: int | None = None) -> None:
        self.process = subprocess.Popen(
            [PITLANE, "up", "--data-dir", str(data_dir), "--gateway-port", str(gateway_port or free_port())],
            env=embedded_only_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_url_table(self) -> dict[str, str]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.output)
                continue
            self.output.append(line)
            if line.startswith("Ctrl-C stops everything"):
                table = "".join(self.output)
                return {
                    "nats": re.search(r"^  NATS\s+(\S+)", table, re.MULTILINE).group(1),  # type: ignore[union-attr]
                    "postgres": re.search(r"^  PostgreSQL\s+(\S+)", table, re.MULTILINE).group(1),  # type: ignore[union-attr]
                }
        pytest.fail(f"no URL table within {STARTUP_TIMEOUT_S}s:\n{''.join(self.output)}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


def pitlane_status(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PITLANE, "status", "--data-dir", str(data_dir)],
        env=embedded_only_env(),
        capture_output=True,
        text=True,
    )


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def operator_options(data_dir: Path) -> dict[str, Any]:
    """The `pitlane up` NATS demands TLS and a user: the operator's, as the CLI connects."""
    state = read_state(data_dir)
    assert state is not None
    return nats_access(state).connect_options()


async def create_stream_with_a_message(nats_url: str, options: dict[str, Any]) -> None:
    connection = await nats.connect(nats_url, **options)
    try:
        jetstream = connection.jetstream()
        # A stream no service declares: installed services declare their own streams at start.
        await jetstream.add_stream(name="UP_PROBE", subjects=["up-probe.>"])
        await jetstream.publish("up-probe.b1.Probed.v1", b"opened")
    finally:
        await connection.close()


async def read_first_message(nats_url: str, options: dict[str, Any]) -> bytes:
    connection = await nats.connect(nats_url, **options)
    try:
        return (await connection.jetstream().get_msg("UP_PROBE", 1)).data or b""
    finally:
        await connection.close()


@pytest.fixture
def scratch() -> Iterator[Path]:
    with server_data_dir() as directory:
        yield directory


def test_up_runs_servers_that_keep_their_data_across_restarts(scratch: Path) -> None:
    data_dir = scratch / "pitlane"
    assert pitlane_status(data_dir).returncode == 1

    first = RunningUp(data_dir)
    try:
        urls = first.wait_for_url_table()
        assert int(urls["nats"].rsplit(":", 1)[1]) not in RESERVED_PORTS
        assert "host=" in urls["postgres"]  # a unix socket in the data dir, no TCP port
        run_in_fresh_loop(create_stream_with_a_message(urls["nats"], operator_options(data_dir)))
        with psycopg.connect(urls["postgres"], autocommit=True) as conn:
            conn.execute("CREATE TABLE customer (name text)")
            conn.execute("INSERT INTO customer VALUES ('Li Wei')")

        running = pitlane_status(data_dir)
        assert running.returncode == 0, running.stdout
        assert urls["nats"] in running.stdout and "answers" in running.stdout
        # Each service's relay backlog and its consumers' pending, held-back and dead-lettered counts.
        assert "customer-profile: relay lag" in running.stdout and "0 parked" in running.stdout
        assert "consumer customer-profile_visits: 0 pending" in running.stdout

        second = subprocess.run(
            [PITLANE, "up", "--data-dir", str(data_dir), "--gateway-port", str(free_port())],
            env=embedded_only_env(),
            capture_output=True,
            text=True,
        )
        assert second.returncode == 1
        assert f"already runs on {data_dir}" in second.stderr
    finally:
        exit_code = first.interrupt()

    assert exit_code == 0, "".join(first.output)
    state = json.loads((data_dir / "state.json").read_text())
    assert "stopped_at" in state
    for pid in (state["pid"], state["nats"]["pid"], state["postgres"]["pid"]):
        assert not process_exists(pid)
    assert pitlane_status(data_dir).returncode == 1

    again = RunningUp(data_dir)
    try:
        urls_again = again.wait_for_url_table()
        assert urls_again["nats"] == urls["nats"], "the NATS port is kept while it is free"
        assert (
            run_in_fresh_loop(read_first_message(urls_again["nats"], operator_options(data_dir))) == b"opened"
        )
        with psycopg.connect(urls_again["postgres"]) as conn:
            assert conn.execute("SELECT name FROM customer").fetchall() == [("Li Wei",)]
    finally:
        assert again.interrupt() == 0, "".join(again.output)


SERVICE_MODULE = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app():
    async def settings(request):
        print("settings asked for", flush=True)
        names = ["DATABASE_URL", "NATS_URL", "ENV", "SERVICE_NAME"]
        return JSONResponse({name: os.environ[f"ECHO_{name}"] for name in names})

    return Starlette(routes=[Route("/settings", settings)])
"""


async def test_a_service_runs_as_a_child_with_its_settings_and_prefixed_output(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    pitlane_servers: TestServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "echo_service.py").write_text(SERVICE_MODULE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    cluster = DevCluster(tmp_path)
    # A unique name: its database lives on the session's server, which other test sessions may share.
    spec = ServiceSpec(
        name=f"echo-{uuid.uuid4().hex[:8]}", env_prefix="ECHO_", asgi_factory="echo_service:create_app"
    )
    try:
        cluster.start_service(spec, pitlane_servers.nats_url, pitlane_servers.postgres_admin_url)
        cluster.wait_until_services_listen()
        [child] = cluster.children
        assert child.http_url is not None
        async with httpx.AsyncClient() as client:
            settings = (await client.get(f"{child.http_url}/settings")).json()
        assert settings["NATS_URL"] == pitlane_servers.nats_url
        assert settings["ENV"] == "dev" and settings["SERVICE_NAME"] == spec.name
        assert settings["DATABASE_URL"].startswith("postgresql+psycopg://")
        with psycopg.connect(libpq_url(settings["DATABASE_URL"])) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (spec.database,)
        printed = ""

        async def relayed_with_its_prefix():  # by the cluster's output thread, as it reads the child's line
            nonlocal printed
            printed += capfd.readouterr().out
            return f"[{spec.name}] settings asked for" in printed

        await wait_until(relayed_with_its_prefix)
    finally:
        cluster.stop()
        drop_database(pitlane_servers.postgres_admin_url, spec.database)
