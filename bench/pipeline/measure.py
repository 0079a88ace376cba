"""The two measurements, run the same way on either path: throughput, and latency at a steady offered load."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from bench.common import percentile
from bench.pipeline.timeline import Timeline

EFFECTS_TIMEOUT_S = 180.0


class Pipeline(Protocol):
    """A running writer → outbox → relay → JetStream → consumer → projection pipeline on fresh servers state."""

    timeline: Timeline

    async def record_mileage(self, vehicle_id: str, mileage_km: int) -> None:
        """One command: append one event to the new stream `vehicle_id` and note when its transaction committed."""


@dataclass(frozen=True)
class Throughput:
    events: int
    writers: int
    events_per_s: float
    cpu_ms_per_event: float  # this process's CPU time (writers, relay and consumer together) per event


@dataclass(frozen=True)
class SteadyLatency:
    offered_eps: float
    achieved_eps: float
    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float


async def warm_up(pipeline: Pipeline, *, events: int, writers: int) -> None:
    """Open every connection, fill statement caches and let the relay and consumer settle; not measured."""
    await _write_concurrently(pipeline, _commands("warm-up", events), writers)
    await pipeline.timeline.wait_for_effects(events, EFFECTS_TIMEOUT_S)
    pipeline.timeline.reset()
    # What a service does after start-up: what is loaded by now stays out of every later collection.
    gc.collect()
    gc.freeze()


async def measure_throughput(pipeline: Pipeline, *, events: int, writers: int) -> Throughput:
    """`events` commands by `writers` concurrent writers as fast as they go; events/s is counted from the
    first command's start to the last effect's commit."""
    timeline = pipeline.timeline
    timeline.reset()
    started, cpu_started = time.monotonic(), time.process_time()
    await _write_concurrently(pipeline, _commands("throughput", events), writers)
    await timeline.wait_for_effects(events, EFFECTS_TIMEOUT_S)
    return Throughput(
        events,
        writers,
        events_per_s=events / (timeline.last_effect_committed() - started),
        cpu_ms_per_event=(time.process_time() - cpu_started) * 1000 / events,
    )


async def measure_steady_latency(pipeline: Pipeline, *, rate_eps: float, duration_s: float) -> SteadyLatency:
    """Commands started on a fixed schedule of `rate_eps` for `duration_s` (open loop: a slow command never
    delays the next one), and the end-to-end latency of each event."""
    timeline = pipeline.timeline
    timeline.reset()
    events = round(rate_eps * duration_s)
    started = time.monotonic()
    async with asyncio.TaskGroup() as commands:
        for number, (vehicle_id, mileage_km) in enumerate(_commands("steady", events)):
            delay = started + number / rate_eps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            commands.create_task(pipeline.record_mileage(vehicle_id, mileage_km))
    written_s = time.monotonic() - started
    await timeline.wait_for_effects(events, EFFECTS_TIMEOUT_S)
    latencies_ms = [latency * 1000 for latency in timeline.latencies_s()]
    return SteadyLatency(
        offered_eps=rate_eps,
        achieved_eps=events / written_s,
        events=len(latencies_ms),
        p50_ms=percentile(latencies_ms, 0.50),
        p99_ms=percentile(latencies_ms, 0.99),
        max_ms=max(latencies_ms),
    )


def _commands(phase: str, count: int) -> Iterator[tuple[str, int]]:
    return ((f"vehicle-{phase}-{number}", 10_000 + number) for number in range(count))


async def _write_concurrently(pipeline: Pipeline, commands: Iterator[tuple[str, int]], writers: int) -> None:
    async def writer() -> None:
        for vehicle_id, mileage_km in commands:  # one shared iterator: each command is taken by one writer
            await pipeline.record_mileage(vehicle_id, mileage_km)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(writers):
            tasks.create_task(writer())
