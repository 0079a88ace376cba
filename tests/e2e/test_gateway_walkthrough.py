"""`make up` behind its gateway (issue 12, ADR 14), as a developer runs it: real `make`, real `pitlane up`,
real Caddy, NATS over TLS and PostgreSQL, driven with the README's own curl walkthrough."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pitlane_platform.embedded import free_port

REPO = Path(__file__).resolve().parents[2]
PITLANE = str(Path(sys.executable).parent / "pitlane")
STARTUP_TIMEOUT_S = 120
WALKTHROUGH_MARKER = "<!-- gateway-walkthrough"


class MakeUp:
    """`make up` in its own process group, so Ctrl-C (SIGINT to the group) reaches it as from a terminal."""

    def __init__(self, data_dir: Path, gateway_port: int) -> None:
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("NATS_URL", "DATABASE_URL", "PITLANE_PUBLIC_BASE_URL")
        }
        # Without the demo chain (libs/platform/tests/test_demo.py plays it): the walkthrough starts from nothing.
        environment |= {
            "PITLANE_DATA_DIR": str(data_dir),
            "PITLANE_GATEWAY_PORT": str(gateway_port),
            "PITLANE_DEMO": "0",
        }
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "up"],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_url_table(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.output)
                continue
            self.output.append(line)
            if line.startswith("Ctrl-C stops everything"):
                return "".join(self.output)
        pytest.fail(f"no URL table within {STARTUP_TIMEOUT_S}s:\n{''.join(self.output)}")

    def interrupt(self) -> str:
        """Ctrl-C; what `pitlane up` printed until it ended. make itself dies of the SIGINT (exit -2), as it
        does in a terminal; `pitlane up` stops everything in order and says so."""
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=60)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)


def walkthrough(gateway_url: str, root_ca: Path) -> str:
    """The README's walkthrough block, pointed at this run's gateway and CA."""
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(WALKTHROUGH_MARKER) :]
    script = block[block.index("```sh\n") + len("```sh\n") : block.index("\n```", block.index("```sh"))]
    assert script.startswith("GW=https://localhost:8443\nCA=.pitlane/gateway/root-ca.crt\n"), script
    script = script.replace("GW=https://localhost:8443", f"GW={gateway_url}", 1)
    script = script.replace("CA=.pitlane/gateway/root-ca.crt", f"CA={root_ca}", 1)
    return script.replace(".venv/bin/pitlane", PITLANE)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tmp_path: as root, pgserver opens the path's parents to its own OS user.
    with tempfile.TemporaryDirectory(prefix="pitlane-gateway-", ignore_cleanup_errors=True) as directory:
        yield Path(directory) / "pitlane"


@pytest.mark.slow
def test_make_up_serves_the_walkthrough_at_one_https_url_that_survives_a_restart(data_dir: Path) -> None:
    port = free_port()
    first = MakeUp(data_dir, port)
    try:
        table = first.wait_for_url_table()
        origins = set(re.findall(r"https://[^/\s)]+", table))
        assert origins == {f"https://localhost:{port}"}, table  # one https URL, the gateway's
        gateway = origins.pop()
        state = json.loads((data_dir / "state.json").read_text())
        root_ca = Path(state["gateway"]["root_ca_file"])
        assert root_ca == data_dir / "gateway" / "root-ca.crt" and str(root_ca) in table
        service_ports = {name: child["port"] for name, child in state["services"].items()}

        script = walkthrough(gateway, root_ca) + '\necho "LINK=$LINK"\n'
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert '{"status":"ok"}' in ran.stdout and "<title>" in ran.stdout, ran.stdout
        [link] = re.findall(r"^LINK=(\S+)$", ran.stdout, re.MULTILINE)
        assert link.startswith(f"{gateway}/c/"), link

        with httpx.Client(verify=ssl.create_default_context(cafile=root_ca), timeout=30) as client:
            page = client.get(link)
            assert page.status_code == 200
            headers = page.headers
            assert headers["strict-transport-security"] == "max-age=31536000"
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "no-referrer" and "server" not in headers
            dashboard = client.get(
                f"{gateway}/dashboard"
            )  # analytics' page, its charts' script served locally
            assert dashboard.status_code == 200 and '<html lang="zh-CN">' in dashboard.text
            [script] = re.findall(r'<script src="([^"]*echarts[^"]*)"', dashboard.text)
            assert client.get(f"{gateway}{script}" if script.startswith("/") else script).status_code == 200
            assert client.get(f"{gateway}/v1/customers").status_code == 404  # only through /api/<service>/
        with httpx.Client(timeout=10) as plain:  # plain HTTP on the gateway's port is not served
            assert plain.get(f"http://127.0.0.1:{port}/api/workorder/health").status_code == 400
    finally:
        stopped = first.interrupt()
    assert stopped.rstrip().endswith("stopped."), stopped

    again = MakeUp(data_dir, port)
    try:
        table = again.wait_for_url_table()
        assert set(re.findall(r"https://[^/\s)]+", table)) == {gateway}
        state = json.loads((data_dir / "state.json").read_text())
        assert {name: child["port"] for name, child in state["services"].items()} == service_ports
        with httpx.Client(
            verify=ssl.create_default_context(cafile=root_ca), timeout=30
        ) as client:  # the CA exported before still works
            assert client.get(f"{gateway}/api/workorder/health").json() == {"status": "ok"}
            reopened = client.get(link)  # the link a customer got before the restart
            assert reopened.status_code == 200 and "<title>" in reopened.text
    finally:
        stopped = again.interrupt()
    assert stopped.rstrip().endswith("stopped."), stopped
