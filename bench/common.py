"""What every bench needs: servers of its own, fresh databases, percentiles, and printing results."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pitlane_platform.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    create_database,
    database_url,
    drop_database,
    server_version,
)

NATS_URL_ENV = "NATS_URL"
DATABASE_URL_ENV = "DATABASE_URL"


@dataclass(frozen=True)
class BenchServers:
    nats_url: str
    postgres_admin_url: str  # a database we may CREATE DATABASE from
    description: str


@contextlib.contextmanager
def bench_servers() -> Iterator[BenchServers]:
    """NATS and PostgreSQL for one bench run: those named by NATS_URL / DATABASE_URL when set (scratch servers:
    a bench recreates the streams it uses), otherwise embedded servers on free ports and a unix socket, whose
    temporary data directory is removed when the run ends. Never the machine's own servers."""
    with contextlib.ExitStack() as stack:
        scratch = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="pitlane-bench-", ignore_cleanup_errors=True)
            )
        )
        described = []
        if nats_url := os.environ.get(NATS_URL_ENV):
            described.append(f"nats-server from env {NATS_URL_ENV}")
        else:
            nats = stack.enter_context(EmbeddedNats(scratch / "nats"))
            nats_url = nats.url
            described.append(f"embedded nats-server {nats.version}")
        if postgres_admin_url := os.environ.get(DATABASE_URL_ENV):
            described.append(f"PostgreSQL {server_version(postgres_admin_url)} from env {DATABASE_URL_ENV}")
        else:
            postgres = stack.enter_context(EmbeddedPostgres(scratch / "postgres"))
            postgres_admin_url = postgres.admin_url
            described.append(f"embedded PostgreSQL {postgres.version}")
        yield BenchServers(nats_url, postgres_admin_url, " and ".join(described))


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, uniquely named database on the server, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create_database(admin_url, name)
    try:
        yield database_url(admin_url, name)
    finally:
        drop_database(admin_url, name)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0.99 for p99) of `values`, interpolating linearly between closest ranks."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    below, above = math.floor(rank), math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table: first column left-aligned, the figures right-aligned."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        return "  ".join(
            [
                first.ljust(widths[0]),
                *(cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)),
            ]
        )

    print(line(cells[0]))
    print("  ".join("-" * width for width in widths))
    for row in cells[1:]:
        print(line(row))


def print_json_line(result: dict[str, Any]) -> None:
    """The machine-readable result: one JSON object on the last line of a bench's output."""
    print(json.dumps(result, separators=(", ", ": ")), flush=True)
