"""HTTP load from `wrk` (Debian's `wrk` package), which costs the machine far less per request than a Python
client: an httpx client in the bench process spends as much CPU per request as the server it measures, and
on two cores that caps and distorts the figure. The client's and the server's CPU per request are measured
beside the throughput, so a reader can see that the ratio measures the service."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Requests rotate through the given paths; `done` prints one JSON line the bench reads.
LUA = """
local paths = %(paths)s
local n = 0
wrk.headers["Authorization"] = %(authorization)s
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format(
    'PITLANE {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
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


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def run_wrk(
    base_url: str,
    paths: list[str],
    *,
    authorization: str,
    connections: int,
    duration_s: float,
    server_pid: int,
) -> Load:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("this bench drives HTTP with wrk: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % {"paths": _lua_table(paths), "authorization": json.dumps(authorization)})
    try:
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_before = process_cpu_s(server_pid)
        done = subprocess.run(
            [
                wrk,
                "-t",
                "1",
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(duration_s))}s",
                "-s",
                script.name,
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        server_cpu_s = process_cpu_s(server_pid) - server_before
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(script.name)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("PITLANE ")]
    summary = json.loads(line.removeprefix("PITLANE "))
    if summary["non_2xx"] or summary["socket_errors"]:
        raise RuntimeError(f"wrk saw failures: {summary}\n{done.stdout}")
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


def _lua_table(items: list[str]) -> str:
    return "{" + ", ".join(json.dumps(item) for item in items) + "}"
