"""Profile bench: the front desk's lookup by plate (`GET /v1/lookup?plate=`, the whole 360° view in one
response) against a read model of N customers, each with a vehicle and three visits.

Measured twice in one run on the same database: through the real service (uvicorn process started the way
`pitlane up` starts it, JWT auth, the access-log write, JSON shaping), driven by wrk (bench/load.py), and as
the raw SQL baseline of the same lookup (`baseline.py`) on plain psycopg. Same plates; throughput at 16
concurrent clients, latency at 1.
Run `python -m bench.profile [--customers 100000] [--quick]`; the last line of output is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from bench.common import bench_servers, fresh_database, percentile, print_json_line, print_table
from bench.load import Load, profiling, rotating_gets, run_wrk, running_service
from bench.profile.baseline import lookup_by_plate
from bench.profile.seed import plate_of, seed
from pitlane_customer_profile.bootstrap import ENV_PREFIX, MIGRATIONS, CustomerProfileSettings
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.db import libpq_url, sqlalchemy_url
from pitlane_platform.migrations import upgrade

# Issue 9's targets: throughput at 16 clients at least half the raw SQL's, p50 at 1 client within 3x.
THROUGHPUT_RATIO_MIN = 0.5
P50_RATIO_MAX = 3.0


@dataclass(frozen=True)
class Settings:
    customers: int
    requests: int
    concurrency: int
    duration_s: float
    cpu_profile: Path | None


@dataclass(frozen=True)
class Figures:
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float


def parse_settings(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers", type=int, default=100_000, help="customers in the read model (default 100000)"
    )
    parser.add_argument("--requests", type=int, default=5_000, help="lookups per path (default 5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of wrk load per measurement (default 10)"
    )
    parser.add_argument(
        "--cpu-profile", type=Path, help="profile the service's CPU time at 16 clients into this file"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10,000 customers, 500 lookups")
    options, _others = parser.parse_known_args(argv)  # `python -m bench` passes every bench the same options
    if options.quick:
        options.customers, options.requests, options.duration = 10_000, 500, 3.0
    return Settings(
        customers=options.customers,
        requests=options.requests,
        concurrency=options.concurrency,
        duration_s=options.duration,
        cpu_profile=options.cpu_profile,
    )


async def measure(
    lookup: Callable[[int, str], Awaitable[None]], plates: list[str], concurrency: int
) -> Figures:
    """Run every plate through `lookup(client_index, plate)` with `concurrency` clients; latency per lookup."""
    latencies: list[float] = []
    queue = iter(plates)

    async def client(index: int) -> None:
        for plate in queue:
            started = time.perf_counter()
            await lookup(index, plate)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Figures(
        requests=len(latencies),
        per_second=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 2),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
    )


async def run(settings: Settings) -> dict[str, Any]:
    with (
        bench_servers() as servers,
        fresh_database(servers.postgres_admin_url, "profile_bench") as database_url,
    ):
        print(f"servers: {servers.description}", flush=True)
        await asyncio.to_thread(upgrade, sqlalchemy_url(database_url), MIGRATIONS)
        started = time.perf_counter()
        await asyncio.to_thread(seed, database_url, settings.customers)
        seeding_s = time.perf_counter() - started
        print(f"seeded {settings.customers} customers in {seeding_s:.1f} s", flush=True)

        random.seed(4)
        plates = [plate_of(random.randrange(settings.customers)) for _ in range(settings.requests)]
        warm_up = plates[: max(settings.concurrency * 10, len(plates) // 10)]

        connections = [
            await psycopg.AsyncConnection.connect(libpq_url(database_url))
            for _ in range(settings.concurrency)
        ]
        try:

            async def raw(index: int, plate: str) -> None:
                await lookup_by_plate(connections[index], plate)

            await measure(raw, warm_up, settings.concurrency)
            baseline = await measure(raw, plates, settings.concurrency)
            baseline_alone = await measure(raw, plates[: len(plates) // 5], 1)
        finally:
            for connection in connections:
                await connection.close()

        env = {
            f"{ENV_PREFIX}DATABASE_URL": sqlalchemy_url(database_url),
            f"{ENV_PREFIX}NATS_URL": servers.nats_url,
            f"{ENV_PREFIX}ENV": "dev",
            f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
            # One bench user does thousands of lookups a second: the limiter still counts every one (its cost
            # is measured), with a rate no bench run reaches.
            f"{ENV_PREFIX}LOOKUP_RATE_LIMIT": "100000000/hour",
        }
        service_settings = CustomerProfileSettings(database_url=database_url, nats_url=servers.nats_url)  # type: ignore[call-arg]
        token = mint_dev_token(
            service_settings, role="advisor", branches=["b1"], sub="bench", ttl=timedelta(hours=2)
        )
        paths = [f"/v1/lookup?plate={quote(plate)}" for plate in plates]
        with running_service(
            "pitlane_customer_profile.bootstrap:create_app", env, cpu_profile=settings.cpu_profile
        ) as (url, pid):
            async with httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                # One full response checked by hand: wrk only counts statuses.
                checked = await client.get(paths[0])
                if checked.status_code != 200 or not checked.json()["visits"]:
                    raise RuntimeError(f"lookup: {checked.status_code} {checked.text[:200]}")

            def drive(connections: int, duration_s: float) -> Load:
                return run_wrk(
                    url,
                    rotating_gets(paths, authorization=f"Bearer {token}"),
                    connections=connections,
                    duration_s=duration_s,
                    server_pid=pid,
                )

            await asyncio.to_thread(drive, settings.concurrency, 2.0)  # warm-up
            with profiling(pid, settings.cpu_profile):
                service = await asyncio.to_thread(drive, settings.concurrency, settings.duration_s)
            service_alone = await asyncio.to_thread(drive, 1, settings.duration_s)

    throughput_ratio = service.per_second / baseline.per_second
    p50_ratio = service_alone.p50_ms / baseline_alone.p50_ms
    return {
        "bench": "profile",
        "customers": settings.customers,
        "concurrency": settings.concurrency,
        "seeding_s": round(seeding_s, 1),
        "servers": servers.description,
        "baseline": asdict(baseline),
        "baseline_1_client": asdict(baseline_alone),
        "service": asdict(service),
        "service_1_client": asdict(service_alone),
        "ratio": {
            "throughput_16_clients": round(throughput_ratio, 3),
            "p50_1_client": round(p50_ratio, 3),
        },
        "met": {
            f"throughput at least {THROUGHPUT_RATIO_MIN}x baseline": throughput_ratio >= THROUGHPUT_RATIO_MIN,
            f"p50 at 1 client within {P50_RATIO_MAX}x baseline": p50_ratio <= P50_RATIO_MAX,
        },
    }


def print_result(result: dict[str, Any]) -> None:
    print()
    print(f"lookup by plate, {result['customers']} customers, {result['concurrency']} concurrent clients")
    print_table(
        [
            "path",
            "clients",
            "lookups",
            "lookups/s",
            "p50 ms",
            "p99 ms",
            "client CPU ms/req",
            "server CPU ms/req",
        ],
        [
            [
                name,
                clients,
                f["requests"],
                f["per_second"],
                f["p50_ms"],
                f["p99_ms"],
                f.get("client_cpu_ms_per_request", ""),
                f.get("server_cpu_ms_per_request", ""),
            ]
            for name, clients, f in (
                ("raw SQL baseline", result["concurrency"], result["baseline"]),
                ("service over HTTP (wrk)", result["concurrency"], result["service"]),
                ("raw SQL baseline", 1, result["baseline_1_client"]),
                ("service over HTTP (wrk)", 1, result["service_1_client"]),
            )
        ],
    )
    for target, met in result["met"].items():
        print(f"{'met' if met else 'MISSED'}: {target}")
    print_json_line(result)


def main(argv: list[str]) -> int:
    """Run the bench; the exit status is 1 when the service misses a target."""
    logging.getLogger("pitlane_platform.messaging.connection").setLevel(logging.ERROR)
    result = asyncio.run(run(parse_settings(argv)))
    print_result(result)
    return 0 if all(result["met"].values()) else 1
