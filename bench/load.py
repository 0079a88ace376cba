"""HTTP load from `wrk` (Debian's `wrk` package), which costs the machine far less per request than a Python
client: an httpx client in the bench process spends as much CPU per request as the server it measures, and
on two cores that caps and distorts the figure. The client's and the server's CPU per request are measured
beside the throughput, so a reader can see that the ratio measures the service.

The requests come from a Lua script: `rotating_gets` for independent reads; a bench whose requests depend on
earlier answers (a work order's lifecycle) writes its own, run with one connection per wrk thread so that each
thread's Lua state is one sequential client."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pitlane_platform.embedded import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Prints one JSON line the bench reads; appended to every script.
SUMMARY_LUA = """
done = function(summary, latency, requests)
  io.write(string.format(
    'PITLANE {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

ROTATING_GETS_LUA = """
local paths = %(paths)s
local n = 0
wrk.headers["Authorization"] = %(authorization)s
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
"""


@dataclass(frozen=True)
class Load:
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    client_cpu_ms_per_request: float
    server_cpu_ms_per_request: float


def rotating_gets(paths: list[str], *, authorization: str) -> str:
    """A script that GETs the paths in turn, with one Authorization header."""
    return ROTATING_GETS_LUA % {"paths": lua_table(paths), "authorization": json.dumps(authorization)}


def lua_table(items: list[str]) -> str:
    return "{" + ", ".join(json.dumps(item) for item in items) + "}"


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def run_wrk(
    base_url: str,
    script: str,
    *,
    connections: int,
    duration_s: float,
    server_pid: int,
    threads: int = 1,
) -> Load:
    """Run wrk for `duration_s` with the Lua `script`; fails if any response was not 2xx."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("this bench drives HTTP with wrk: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script + SUMMARY_LUA)
    try:
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = process_cpu_s(server_pid)
        done = subprocess.run(
            [
                wrk,
                *("-t", str(threads), "-c", str(connections)),
                *("-d", f"{max(1, round(duration_s))}s", "-s", file.name),
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        server_cpu_s = process_cpu_s(server_pid) - server_before
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(file.name)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("PITLANE ")]
    summary = json.loads(line.removeprefix("PITLANE "))
    if summary["non_2xx"] or summary["socket_errors"]:
        raise RuntimeError(f"wrk saw failures: {summary}\n{done.stdout}\n{done.stderr}")
    requests = summary["requests"]
    client_cpu_s = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    return Load(
        requests=requests,
        per_second=round(requests / (summary["duration_us"] / 1e6), 1),
        p50_ms=round(summary["p50_us"] / 1000, 2),
        p99_ms=round(summary["p99_us"] / 1000, 2),
        client_cpu_ms_per_request=round(client_cpu_s * 1000 / requests, 3),
        server_cpu_ms_per_request=round(server_cpu_s * 1000 / requests, 3),
    )


@contextmanager
def running_service(
    factory: str, env: dict[str, str], *, cpu_profile: Path | None = None
) -> Iterator[tuple[str, int]]:
    """A service as `pitlane up` runs it: `uvicorn --factory <factory>` with uvloop and httptools in its own
    process, configured by `env`; yields its URL and pid once it is ready. With `cpu_profile`, the same
    server under bench/cpuprofile.py, which profiles what runs inside `profiling(pid, cpu_profile)`."""
    port = free_port()
    if cpu_profile is None:
        command = [
            *("-m", "uvicorn", "--factory", factory),
            *("--loop", "uvloop", "--http", "httptools"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--no-access-log", "--log-level", "warning"),
        ]
    else:
        command = ["-m", "bench.cpuprofile", str(cpu_profile), factory, str(port)]
    process = subprocess.Popen([sys.executable, *command], env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{factory} did not become ready")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def profiling(pid: int, cpu_profile: Path | None) -> Iterator[None]:
    """CPU-profile the server (started with `cpu_profile`) for the block's duration, then print where the
    CPU went; without a profile, nothing."""
    if cpu_profile is None:
        yield
        return
    cpu_profile.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    yield
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + 120
    while not cpu_profile.exists() or not cpu_profile.stat().st_size:
        if time.monotonic() > deadline:
            raise RuntimeError("the profiled server wrote no profile")
        time.sleep(0.2)
    time.sleep(0.5)  # the file is written in one call; let it finish
    profile = json.loads(cpu_profile.read_text())
    print(f"server CPU by part of the stack (yappi CPU clock, {profile['cpu_s']} s profiled):")
    for part, share in profile["shares"].items():
        print(f"  {share:6.1%}  {part}")
    print(f"  (top functions in {cpu_profile})")
