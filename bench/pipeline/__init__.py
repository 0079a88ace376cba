"""Pipeline bench: command → event store + outbox → relay → JetStream → consumer → projection, end to end.

The same flow is measured twice in one run on the same servers, each time on a fresh database and fresh
streams: written by hand with plain psycopg and nats-py (the baseline), and through libs/platform. Per path:
throughput (N events by W concurrent writers, from the first command's start to the last effect's commit) and
end-to-end latency (transaction commit → consumer's effect commit) at a steady offered load.
Run `python -m bench.pipeline [--quick]`; the last line of output is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.common import BenchServers, bench_servers, print_json_line, print_table
from bench.pipeline.baseline_pipeline import running_baseline
from bench.pipeline.measure import (
    Pipeline,
    SteadyLatency,
    Throughput,
    measure_steady_latency,
    measure_throughput,
    warm_up,
)
from bench.pipeline.platform_pipeline import running_platform

THROUGHPUT_RATIO_MIN = 0.8
P99_RATIO_MAX = 2.0
PATHS: dict[str, Callable[..., contextlib.AbstractAsyncContextManager[Pipeline]]] = {
    "baseline": running_baseline,
    "platform": running_platform,
}


@dataclass(frozen=True)
class Settings:
    events: int
    writers: int
    rate_eps: float
    duration_s: float
    warm_up_events: int


def parse_settings(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=5000, help="events written for throughput (default 5000)"
    )
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (default 8)")
    parser.add_argument(
        "--rate", type=float, default=200.0, help="offered load for latency, events/s (default 200)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of offered load (default 10)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 events, 2 s of offered load")
    options = parser.parse_args(argv)
    if options.quick:
        options.events, options.duration = 500, 2.0
    return Settings(
        events=options.events,
        writers=options.writers,
        rate_eps=options.rate,
        duration_s=options.duration,
        warm_up_events=max(10 * options.writers, options.events // 10),
    )


async def measure_throughputs(servers: BenchServers, settings: Settings) -> dict[str, Throughput]:
    results = {}
    for path, running in PATHS.items():
        async with running(servers, writers=settings.writers) as pipeline:
            await warm_up(pipeline, events=settings.warm_up_events, writers=settings.writers)
            results[path] = await measure_throughput(
                pipeline, events=settings.events, writers=settings.writers
            )
        print(
            f"  {path}: {results[path].events_per_s:.0f} events/s, {results[path].cpu_ms_per_event:.2f} ms CPU/event",
            flush=True,
        )
    return results


async def measure_latencies(servers: BenchServers, settings: Settings) -> dict[str, SteadyLatency]:
    results = {}
    for path, running in PATHS.items():
        async with running(servers, writers=settings.writers) as pipeline:
            await warm_up(pipeline, events=settings.warm_up_events, writers=settings.writers)
            results[path] = await measure_steady_latency(
                pipeline, rate_eps=settings.rate_eps, duration_s=settings.duration_s
            )
        print(f"  {path}: p50 {results[path].p50_ms:.1f} ms, p99 {results[path].p99_ms:.1f} ms", flush=True)
    return results


async def run(settings: Settings) -> dict[str, Any]:
    with bench_servers() as servers:
        print(f"pipeline bench on {servers.description}", flush=True)
        print(f"throughput: {settings.events} events by {settings.writers} writers", flush=True)
        throughputs = await measure_throughputs(servers, settings)
        print(f"latency: {settings.rate_eps:g} events/s offered for {settings.duration_s:g} s", flush=True)
        latencies = await measure_latencies(servers, settings)
    figures = {
        path: {
            "throughput_eps": round(throughputs[path].events_per_s, 1),
            "cpu_ms_per_event": round(throughputs[path].cpu_ms_per_event, 3),
            "p50_ms": round(latencies[path].p50_ms, 2),
            "p99_ms": round(latencies[path].p99_ms, 2),
            "max_ms": round(latencies[path].max_ms, 2),
            "achieved_eps": round(latencies[path].achieved_eps, 1),
        }
        for path in PATHS
    }
    ratio = {
        "throughput": round(figures["platform"]["throughput_eps"] / figures["baseline"]["throughput_eps"], 3),
        "p99_at_200eps": round(figures["platform"]["p99_ms"] / figures["baseline"]["p99_ms"], 3),
    }
    return {
        "bench": "pipeline",
        **figures,
        "ratio": ratio,
        "targets": {"throughput_ratio_min": THROUGHPUT_RATIO_MIN, "p99_ratio_max": P99_RATIO_MAX},
        "met": {
            "throughput": ratio["throughput"] >= THROUGHPUT_RATIO_MIN,
            "p99_at_200eps": ratio["p99_at_200eps"] <= P99_RATIO_MAX,
        },
        "settings": asdict(settings),
    }


def print_result(result: dict[str, Any]) -> None:
    baseline, platform, ratio, met = result["baseline"], result["platform"], result["ratio"], result["met"]
    rate = result["settings"]["rate_eps"]

    def verdict(name: str) -> str:
        return "met" if met[name] else "MISSED"

    print()
    print_table(
        ["", "baseline", "platform", "platform/baseline", "target"],
        [
            ["throughput, events/s", baseline["throughput_eps"], platform["throughput_eps"], ratio["throughput"],
             f">= {THROUGHPUT_RATIO_MIN} {verdict('throughput')}"],
            ["bench process CPU, ms/event", baseline["cpu_ms_per_event"], platform["cpu_ms_per_event"],
             round(platform["cpu_ms_per_event"] / baseline["cpu_ms_per_event"], 3), ""],
            [f"p50 at {rate:g} ev/s, ms", baseline["p50_ms"], platform["p50_ms"],
             round(platform["p50_ms"] / baseline["p50_ms"], 3), ""],
            [f"p99 at {rate:g} ev/s, ms", baseline["p99_ms"], platform["p99_ms"], ratio["p99_at_200eps"],
             f"<= {P99_RATIO_MAX} {verdict('p99_at_200eps')}"],
            [f"max at {rate:g} ev/s, ms", baseline["max_ms"], platform["max_ms"], "", ""],
            ["achieved load, events/s", baseline["achieved_eps"], platform["achieved_eps"], "", ""],
        ],
    )  # fmt: skip
    print()
    print_json_line(result)


def main(argv: list[str]) -> int:
    """Run the bench; the exit status is 1 when the platform path misses a target."""
    # Each path closes its NATS connections when it is done; that is no news worth a warning.
    logging.getLogger("pitlane_platform.messaging.connection").setLevel(logging.ERROR)
    result = asyncio.run(run(parse_settings(argv)))
    print_result(result)
    return 0 if all(result["met"].values()) else 1
