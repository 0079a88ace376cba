"""Workorder bench: work-order lifecycle commands over HTTP, beside a raw append baseline in the same run.

The workorder path is the real service as `pitlane up` runs it (uvicorn with uvloop and httptools, in its own
process, its relay publishing to JetStream meanwhile), driven by wrk (bench/load.py): W wrk threads of one
connection each run lifecycles one after another — check-in, dispatch, progress, add-on proposal, decision by
phone, quality check, settlement and completion, 8 commands — each command built from the previous answers.
The baseline does the storage work those commands cannot do without, by hand with plain psycopg: per command
one transaction that reads the stream's version, inserts the event row and its outbox row into the same
tables, and NOTIFYs; same number of concurrent writers. Run `python -m bench.workorder [--quick]`; the last
line of output is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import bench_servers, fresh_database, percentile, print_json_line, print_table
from bench.load import Load, profiling, run_wrk, running_service
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.db import libpq_url
from pitlane_platform.migrations import upgrade
from pitlane_workorder.bootstrap import MIGRATIONS, WorkorderSettings

COMMANDS_PER_LIFECYCLE = 8
BRANCH = "bench"
ENV_PREFIX = "WORKORDER_"
# The size of a typical work-order event envelope, so the baseline writes as many bytes as the app does.
EVENT_PADDING = "x" * 600
# Issue 9's targets: throughput at least 0.25x the raw append's, p99 within 5x.
THROUGHPUT_RATIO_MIN = 0.25
P99_RATIO_MAX = 5.0


@dataclass(frozen=True)
class Options:
    orders: int  # lifecycles of the baseline; the service runs for as long as the baseline took, at least
    clients: int
    duration_s: float
    cpu_profile: Path | None


@dataclass(frozen=True)
class Measured:
    commands: int
    elapsed_s: float
    latencies_s: list[float]

    @property
    def commands_per_s(self) -> float:
        return self.commands / self.elapsed_s

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies_s, fraction) * 1000


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workorder", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--orders", type=int, default=400, help="lifecycles of the raw baseline (default 400)"
    )
    parser.add_argument(
        "--clients", type=int, default=8, help="concurrent HTTP clients / writers (default 8)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of wrk load on the service (default 10)"
    )
    parser.add_argument(
        "--cpu-profile", type=Path, help="profile the service's CPU time in the measured run into this file"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 orders, 4 clients, 3 s")
    options, _others = parser.parse_known_args(argv)  # `python -m bench` passes every bench the same options
    if options.quick:
        options.orders, options.clients, options.duration = 40, 4, 3.0
    return Options(
        orders=options.orders,
        clients=options.clients,
        duration_s=options.duration,
        cpu_profile=options.cpu_profile,
    )


async def run_concurrently(jobs: int, clients: int, job: Callable[[int], Awaitable[list[float]]]) -> Measured:
    """Run `jobs` jobs on `clients` concurrent workers; each job returns its commands' latencies."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(jobs):
        queue.put_nowait(number)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            latencies.extend(await job(queue.get_nowait()))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Measured(len(latencies), time.perf_counter() - started, latencies)


# The workorder path ----------------------------------------------------------------------------------------

# One lifecycle after another on each wrk thread (one connection per thread, so a thread's Lua state is one
# sequential client): each command is built from what the previous answers returned.
LIFECYCLE_LUA = """
local tokens = %(tokens)s
local run = %(run)s
local base = %(base)s
local settlement = %(settlement)s
local step, order, add_on, revision, number = 0, nil, nil, nil, 0
local paths = {"", "/technicians", "/progress", "/add-ons", "", "/quality-check", "/settlement", "/completion"}
local roles = {"advisor", "advisor", "technician", "technician", "advisor", "manager", "finance", "advisor"}

local function body()
  if step == 0 then
    number = number + 1
    return string.format('{"customer_id": "c-%%s-%%d-%%d", "vehicle_id": "v-%%s-%%d-%%d", "plate": "沪A12345", '
      .. '"mileage_km": %%d, "complaint": "保养"}', run, thread_id, number, run, thread_id, number, 40000 + number)
  elseif step == 1 then return '{"technician_id": "tom", "bay_id": "bay-1"}'
  elseif step == 2 then return '{"text": "更换机油机滤"}'
  elseif step == 3 then
    return '{"item": "更换空气滤芯", "category": "parts", "price_fen": 8000, "reason": "滤芯发黑"}'
  elseif step == 4 then
    return string.format('{"decision": "approved", "method": "phone_call", "estimate_revision_seen": %%s}', revision)
  elseif step == 5 then return '{"passed": true}'
  elseif step == 6 then return string.format(settlement, add_on)
  else return "{}" end
end

request = function()
  local path = base
  if step > 0 then path = base .. "/" .. order end
  if step == 4 then path = path .. "/add-ons/" .. add_on .. "/decision" else path = path .. paths[step + 1] end
  local headers = {["Authorization"] = tokens[roles[step + 1]], ["Content-Type"] = "application/json"}
  return wrk.format("POST", path, headers, body())
end

response = function(status, headers, text)
  if status >= 300 then
    io.stderr:write(string.format("step %%d: %%d %%s\\n", step, status, text))
    step = 0
    return
  end
  if step == 0 then order = text:match('"work_order_id":"([^"]+)"') end
  if step == 3 then
    add_on = text:match('"add_on_id":"([^"]+)"')
    revision = text:match('"estimate_revision":(%%d+)')
  end
  step = (step + 1) %% 8
end

setup = function(thread)
  thread_count = (thread_count or 0) + 1
  thread:set("thread_number", thread_count)
end
init = function(args) thread_id = thread_number end
"""

SETTLEMENT = {
    "line_items": [
        {
            "item_code": "OIL",
            "name": "机油机滤",
            "category": "parts",
            "quantity": "1",
            "unit_price_fen": 38_000,
            "line_total_fen": 38_000,
        },
        {
            "item_code": "AIR",
            "name": "空气滤芯",
            "category": "parts",
            "quantity": "1",
            "unit_price_fen": 8_000,
            "line_total_fen": 8_000,
            "add_on_id": "ADD_ON",
        },
    ],
    "payments": [{"method": "wechat_pay", "amount_fen": 46_000}],
    "total_fen": 46_000,
}


def lifecycle_script(tokens: dict[str, str]) -> str:
    settlement = json.dumps(SETTLEMENT, ensure_ascii=False).replace("%", "%%").replace('"ADD_ON"', '"%s"')
    return LIFECYCLE_LUA % {
        "tokens": "{"
        + ", ".join(f"{role} = {json.dumps(f'Bearer {token}')}" for role, token in tokens.items())
        + "}",
        "base": json.dumps(f"/v1/branches/{BRANCH}/work-orders"),
        "settlement": json.dumps(settlement, ensure_ascii=False),
        "run": json.dumps(uuid.uuid4().hex[:8]),  # each wrk run opens orders for customers of its own
    }


def prepare_branch(url: str, tokens: dict[str, str]) -> None:
    """The branch with 8 bays, an advisor and a technician, created through the API (not timed)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['manager']}"}) as client:
        branch = {
            "branch_id": BRANCH,
            "name": "基准门店",
            "address": "上海",
            "bays": [{"bay_id": f"bay-{n}", "name": f"{n}号"} for n in range(1, 9)],
        }
        client.post("/v1/branches", json=branch).raise_for_status()
        for staff_id, role in (("amy", "advisor"), ("tom", "technician")):
            staff = {"staff_id": staff_id, "display_name": staff_id, "role": role}
            client.post(f"/v1/branches/{BRANCH}/staff", json=staff).raise_for_status()


def measure_workorder(database_url: str, nats_url: str, options: Options) -> Load:
    with tempfile.TemporaryDirectory(prefix="workorder-bench-blobs-") as blobs:
        settings = WorkorderSettings(database_url=database_url, nats_url=nats_url, blob_dir=Path(blobs))
        tokens = {
            role: mint_dev_token(settings, role=role, branches=[BRANCH], sub=sub, ttl=timedelta(hours=2))
            for role, sub in (
                ("manager", "max"),
                ("advisor", "amy"),
                ("technician", "tom"),
                ("finance", "fay"),
            )
        }
        env = {
            f"{ENV_PREFIX}DATABASE_URL": database_url,
            f"{ENV_PREFIX}NATS_URL": nats_url,
            f"{ENV_PREFIX}ENV": "dev",
            f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
            f"{ENV_PREFIX}BLOB_DIR": blobs,
        }
        with running_service(
            "pitlane_workorder.bootstrap:create_app", env, cpu_profile=options.cpu_profile
        ) as (url, pid):
            prepare_branch(url, tokens)
            script = lifecycle_script(tokens)

            def drive(duration_s: float) -> Load:
                return run_wrk(
                    url,
                    script,
                    threads=options.clients,
                    connections=options.clients,
                    duration_s=duration_s,
                    server_pid=pid,
                )

            drive(2.0)  # warm-up
            with profiling(pid, options.cpu_profile):
                return drive(options.duration_s)


# The raw append baseline -----------------------------------------------------------------------------------


async def measure_baseline(database_url: str, options: Options) -> Measured:
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)  # the same tables and indexes as the service
    connections = [
        await psycopg.AsyncConnection.connect(libpq_url(database_url)) for _ in range(options.clients)
    ]
    free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def append(stream_id: str, event_type: str) -> float:
        connection = await free.get()
        started = time.perf_counter()
        try:
            async with connection.transaction():
                row = await (
                    await connection.execute(
                        "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = %s", (stream_id,)
                    )
                ).fetchone()
                version = (row[0] if row else 0) + 1
                event_id = uuid.uuid4()
                envelope = json.dumps(
                    {"event_type": event_type, "aggregate_id": stream_id, "data": {"padding": EVENT_PADDING}}
                )
                await connection.execute(
                    "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, occurred_at, envelope)"
                    " VALUES (%s, %s, %s, %s, 1, now(), %s)",
                    (stream_id, version, event_id, event_type, envelope),
                )
                await connection.execute(
                    "INSERT INTO outbox (event_id, subject, headers, payload) VALUES (%s, %s, '{}', %s)",
                    (event_id, f"workorder.{BRANCH}.{event_type}.v1", envelope.encode()),
                )
                await connection.execute("SELECT pg_notify('pitlane_outbox', '')")
            return time.perf_counter() - started
        finally:
            free.put_nowait(connection)

    async def lifecycle(number: int) -> list[float]:
        stream_id = str(uuid.uuid4())
        return [await append(stream_id, f"Command{step}") for step in range(COMMANDS_PER_LIFECYCLE)]

    try:
        await run_concurrently(max(2, options.orders // 10), options.clients, lifecycle)  # warm-up
        return await run_concurrently(options.orders, options.clients, lifecycle)
    finally:
        for connection in connections:
            await connection.close()


def measure(options: Options) -> dict[str, Any]:
    with bench_servers() as servers:
        print(f"servers: {servers.description}", flush=True)
        with fresh_database(servers.postgres_admin_url, "bench_workorder_baseline") as url:
            baseline = asyncio.run(measure_baseline(url, options))
        with fresh_database(servers.postgres_admin_url, "bench_workorder") as url:
            service = measure_workorder(url, servers.nats_url, options)
    throughput_ratio = service.per_second / baseline.commands_per_s
    p99_ratio = service.p99_ms / baseline.ms(0.99)
    print_table(
        ["path", "commands", "commands/s", "p50 ms", "p99 ms", "client CPU ms/cmd", "server CPU ms/cmd"],
        [
            [
                "raw append baseline",
                baseline.commands,
                f"{baseline.commands_per_s:.1f}",
                f"{baseline.ms(0.5):.2f}",
                f"{baseline.ms(0.99):.2f}",
                "",
                "",
            ],
            [
                "workorder over HTTP (wrk)",
                service.requests,
                service.per_second,
                service.p50_ms,
                service.p99_ms,
                service.client_cpu_ms_per_request,
                service.server_cpu_ms_per_request,
            ],
        ],
    )
    met = {
        f"throughput at least {THROUGHPUT_RATIO_MIN}x baseline": throughput_ratio >= THROUGHPUT_RATIO_MIN,
        f"p99 within {P99_RATIO_MAX}x baseline": p99_ratio <= P99_RATIO_MAX,
    }
    for target, ok in met.items():
        print(f"{'met' if ok else 'MISSED'}: {target}")
    return {
        "bench": "workorder",
        "clients": options.clients,
        "servers": servers.description,
        "baseline": {
            "commands": baseline.commands,
            "per_second": round(baseline.commands_per_s, 1),
            "p50_ms": round(baseline.ms(0.5), 2),
            "p99_ms": round(baseline.ms(0.99), 2),
        },
        "service": asdict(service),
        "ratio": {"throughput": round(throughput_ratio, 3), "p99": round(p99_ratio, 3)},
        "met": met,
    }


def main(argv: list[str]) -> int:
    """Run the bench; the exit status is 1 when the service misses a target."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = measure(parse_options(argv))
    print_json_line(result)
    return 0 if all(result["met"].values()) else 1
