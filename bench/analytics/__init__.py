"""Analytics bench (issue 15), on a chain's history of 1,000,000 events published on the producers' streams
(history.py):

- rebuilding the read models from the streams (`pitlane analytics rebuild`) beside a raw fetch-and-insert of
  the same facts (rebuild.py); target: at least 0.8x the baseline's rate;
- the headline KPI query over the rebuilt facts beside the same figures computed by one raw SQL over the raw
  visits (headline.py); target: the service answers at least 10x faster.

Run `python -m bench.analytics [--events N] [--quick]`; the last line is the result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.analytics import headline, history, rebuild
from bench.common import bench_servers, fresh_database, print_json_line, print_table

REBUILD_RATIO_MIN = 0.8  # issue 15: the rebuild at least 0.8x the raw fetch-and-insert
HEADLINE_SPEEDUP_MIN = 10.0  # issue 15: the projection answers at least 10x faster than one raw SQL


def parse_options(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analytics", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events in the history (default 1,000,000)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30,000 events")
    options = parser.parse_args(argv)
    return 30_000 if options.quick else int(options.events)


def measure(events: int) -> dict[str, Any]:
    with bench_servers() as servers:
        print(f"servers: {servers.description}", flush=True)
        published = asyncio.run(history.publish(servers.nats_url, events))
        print(
            f"history: {published.events} events ({published.visits} visits by {published.customers} customers): "
            + ", ".join(f"{source} {count}" for source, count in published.per_source.items()),
            flush=True,
        )
        with fresh_database(servers.postgres_admin_url, "bench_rebuild_baseline") as url:
            rebuild.migrate(url)
            by_hand = asyncio.run(rebuild.by_hand(url, servers.nats_url))
        with fresh_database(servers.postgres_admin_url, "bench_rebuild") as url:
            rebuild.migrate(url)
            service = asyncio.run(rebuild.with_the_service(url, servers.nats_url))
            answered = asyncio.run(headline.measure(url))
    if by_hand.digest != service.digest:
        differing = sorted(
            table for table in service.digest if service.digest[table] != by_hand.digest[table]
        )
        raise RuntimeError(f"the rebuild and the baseline left different facts in: {', '.join(differing)}")
    if (by_hand.events, service.events) != (published.events, published.events):
        raise RuntimeError(
            f"read {by_hand.events} by hand and {service.events} in the rebuild, not {published.events}"
        )
    ratio = {
        "rebuild": service.per_second / by_hand.per_second,
        "headline": answered.raw_seconds / answered.service_seconds,
    }
    print_table(
        ["path", "events", "seconds", "events per second"],
        [
            [label, run.events, f"{run.seconds:.1f}", f"{run.per_second:.0f}"]
            for label, run in (
                ("rebuild: raw fetch-and-insert baseline", by_hand),
                ("rebuild: pitlane analytics rebuild", service),
            )
        ],
    )
    print_table(
        ["query", "median ms", "runs"],
        [
            [
                "headline: one raw SQL over the raw visits",
                f"{answered.raw_seconds * 1000:.1f}",
                answered.runs,
            ],
            [
                "headline: the service's answer (/v1/kpis)",
                f"{answered.service_seconds * 1000:.1f}",
                answered.runs,
            ],
        ],
    )
    print(
        f"both rebuilds left the same facts: {', '.join(f'{t} {n}' for t, (n, _) in service.digest.items())}"
    )
    print(f"the figures both headline queries give: {answered.figures}")
    met = {
        f"rebuild at least {REBUILD_RATIO_MIN}x baseline": ratio["rebuild"] >= REBUILD_RATIO_MIN,
        f"headline at least {HEADLINE_SPEEDUP_MIN}x faster than raw SQL": ratio["headline"]
        >= HEADLINE_SPEEDUP_MIN,
    }
    for target, ok in met.items():
        print(f"{'met' if ok else 'MISSED'}: {target}")
    return {
        "bench": "analytics",
        "servers": servers.description,
        "events": published.events,
        "visits": published.visits,
        "baseline": {
            "rebuild_events_per_second": round(by_hand.per_second, 1),
            "headline_raw_sql_ms": round(answered.raw_seconds * 1000, 2),
        },
        "service": {
            "rebuild_events_per_second": round(service.per_second, 1),
            "headline_ms": round(answered.service_seconds * 1000, 2),
        },
        # Each target's figure over its baseline: the rebuild's rate over the raw rate; for the headline, the raw
        # query's time over the service's (how many times faster the service answers).
        "ratio": {name: round(figure, 3) for name, figure in ratio.items()},
        "met": met,
    }


def main(argv: list[str]) -> int:
    """Run the bench; the exit status is 1 when the service misses a target."""
    result = measure(parse_options(argv))
    print_json_line(result)
    return 0 if all(result["met"].values()) else 1
