"""Reminder bench (issue 14): re-evaluating 1,000,000 vehicles' schedules after a rule change
(reevaluation.py), and claiming and firing 100,000 due reminders (firing.py), each beside a raw SQL
baseline doing the same work in the same run, on fresh databases of the same servers. Targets: at least
0.5x the baseline's rate on both.

Run `python -m bench.reminder [--vehicles N] [--reminders N] [--workers C] [--quick]`; the last line is the
result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from typing import Any

from bench.common import bench_servers, fresh_database, print_json_line, print_table
from bench.reminder import firing, reevaluation

RATIO_MIN = 0.5  # issue 14: at least half the baseline's rate, on both


@dataclass(frozen=True)
class Options:
    vehicles: int
    reminders: int
    workers: int


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reminder", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--vehicles", type=int, default=1_000_000, help="vehicles to re-evaluate (default 1,000,000)"
    )
    parser.add_argument(
        "--reminders", type=int, default=100_000, help="due reminders to fire (default 100,000)"
    )
    parser.add_argument("--workers", type=int, default=8, help="concurrent firing workers (default 8)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 vehicles, 2,000 reminders")
    options = parser.parse_args(argv)
    if options.quick:
        return Options(vehicles=20_000, reminders=2_000, workers=options.workers)
    return Options(vehicles=options.vehicles, reminders=options.reminders, workers=options.workers)


def measure(options: Options) -> dict[str, Any]:
    with bench_servers() as servers:
        print(f"servers: {servers.description}", flush=True)
        with fresh_database(servers.postgres_admin_url, "bench_reevaluate_baseline") as url:
            reevaluation.prepare(url, options.vehicles)
            by_hand = asyncio.run(reevaluation.reevaluate_by_hand(url, options.vehicles))
        with fresh_database(servers.postgres_admin_url, "bench_reevaluate") as url:
            reevaluation.prepare(url, options.vehicles)
            service = asyncio.run(
                reevaluation.reevaluate_with_the_service(url, servers.nats_url, options.vehicles)
            )
        with fresh_database(servers.postgres_admin_url, "bench_fire_baseline") as url:
            firing.prepare(url, options.reminders)
            fired_by_hand = asyncio.run(firing.fire_by_hand(url, options.workers))
        with fresh_database(servers.postgres_admin_url, "bench_fire") as url:
            firing.prepare(url, options.reminders)
            fired = asyncio.run(firing.fire_with_the_service(url, servers.nats_url, options.workers))
    if by_hand.outcome != service.outcome:
        raise RuntimeError(
            "the service and the baseline re-evaluated to different schedules "
            f"(reminders, rungs, day timers, events): {service.outcome} and {by_hand.outcome}"
        )
    if (fired_by_hand.count, fired.count) != (options.reminders, options.reminders):
        raise RuntimeError(
            f"fired {fired_by_hand.count} by hand and {fired.count} by the service, not {options.reminders}"
        )
    ratio = {
        "reevaluate": service.per_second / by_hand.per_second,
        "fire": fired.per_second / fired_by_hand.per_second,
    }
    _, _, day_timers, events = service.outcome
    print_table(
        ["path", "count", "seconds", "per second"],
        [
            [label, run.vehicles, f"{run.elapsed_s:.1f}", f"{run.per_second:.0f}"]
            for label, run in (
                ("re-evaluating vehicles: raw SQL baseline", by_hand),
                ("re-evaluating vehicles: reminder (evaluate_many)", service),
            )
        ]
        + [
            [label, run.count, f"{run.elapsed_s:.1f}", f"{run.per_second:.0f}"]
            for label, run in (
                ("firing reminders: raw SQL baseline", fired_by_hand),
                ("firing reminders: reminder on the platform's timers", fired),
            )
        ],
    )
    print(f"both re-evaluations: {events} reminders rescheduled, {day_timers} day timers, the same schedules")
    met = {f"{name} at least {RATIO_MIN}x baseline": figure >= RATIO_MIN for name, figure in ratio.items()}
    for target, ok in met.items():
        print(f"{'met' if ok else 'MISSED'}: {target}")
    return {
        "bench": "reminder",
        "workers": options.workers,
        "servers": servers.description,
        "baseline": {
            "reevaluated_per_second": round(by_hand.per_second, 1),
            "fired_per_second": round(fired_by_hand.per_second, 1),
        },
        "service": {
            "reevaluated_per_second": round(service.per_second, 1),
            "fired_per_second": round(fired.per_second, 1),
        },
        "vehicles": options.vehicles,
        "reminders": options.reminders,
        "ratio": {name: round(figure, 3) for name, figure in ratio.items()},
        "met": met,
    }


def main(argv: list[str]) -> int:
    """Run the bench; the exit status is 1 when the service misses a target."""
    result = measure(parse_options(argv))
    print_json_line(result)
    return 0 if all(result["met"].values()) else 1
