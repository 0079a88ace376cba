"""A service under a bench's load, profiled by CPU time (yappi's CPU clock), not wall clock: samplers such as
py-spy count the moments a process waits for a shared core as work, which on these machines over-counts.

`python -m bench.cpuprofile <out.json> <module:factory> <port>` serves the ASGI factory as `pitlane up` does
(uvicorn, uvloop, httptools). The profile covers only what happens between SIGUSR1 (start afresh) and SIGUSR2
(stop and write), so a bench profiles its measured run and not start-up or warm-up. The result is each
function's own CPU time (yappi's `tsub`) summed per part of the stack (`PARTS`), and the top functions.
Profiling slows every call, so the shares matter, not the absolute times.
"""

from __future__ import annotations

import json
import signal
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import uvicorn
import yappi

# The first match of a function's file path names its part of the stack.
PARTS = (
    ("sqlalchemy", "SQLAlchemy"),
    ("greenlet", "SQLAlchemy"),
    ("psycopg_pool", "psycopg"),
    ("psycopg", "psycopg"),
    ("opentelemetry", "OpenTelemetry"),
    ("starlette", "Starlette/FastAPI"),
    ("fastapi", "Starlette/FastAPI"),
    ("uvicorn", "uvicorn + httptools"),
    ("httptools", "uvicorn + httptools"),
    ("jwt", "JWT verification"),
    ("pitlane_platform/auth", "JWT verification"),
    ("pydantic", "pydantic"),
    ("pitlane_events", "pitlane_events (envelopes, JSON)"),
    ("pitlane_platform", "pitlane_platform"),
    ("pitlane_", "the service's own code"),
    ("asyncio", "asyncio / uvloop"),
    ("uvloop", "asyncio / uvloop"),
    ("logging", "logging"),
    ("json", "json"),
)


def part_of(path: str) -> str:
    for needle, part in PARTS:
        if needle in path:
            return part
    return "other (stdlib, builtins)"


def breakdown() -> dict[str, Any]:
    stats = yappi.get_func_stats()
    by_part: dict[str, float] = defaultdict(float)
    functions, inclusive = [], []
    for stat in stats:
        by_part[part_of(stat.module)] += stat.tsub
        name = f"{stat.module}:{stat.lineno} {stat.name}"
        functions.append((stat.tsub, name))
        inclusive.append((stat.ttot, name))
    total = sum(by_part.values()) or 1.0
    return {
        "cpu_s": round(total, 3),
        "shares": {
            part: round(seconds / total, 3) for part, seconds in sorted(by_part.items(), key=lambda x: -x[1])
        },
        "top_functions": [
            {"share": round(seconds / total, 4), "function": name}
            for seconds, name in sorted(functions, reverse=True)[:40]
        ],
        # A function's CPU time with everything it called (coroutines: while they ran, not while they waited).
        "top_inclusive": [
            {"share": round(seconds / total, 4), "function": name}
            for seconds, name in sorted(inclusive, reverse=True)[:60]
        ],
    }


def main(argv: list[str]) -> None:
    out, factory, port = Path(argv[0]), argv[1], int(argv[2])
    yappi.set_clock_type("cpu")

    def start(*_: object) -> None:
        yappi.clear_stats()
        yappi.start()

    def stop(*_: object) -> None:
        yappi.stop()
        out.write_text(json.dumps(breakdown(), indent=2, ensure_ascii=False))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    uvicorn.run(
        factory,
        factory=True,
        loop="uvloop",
        http="httptools",
        host="127.0.0.1",
        port=port,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
