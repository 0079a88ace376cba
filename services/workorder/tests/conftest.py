"""Fixtures: the workorder app against real PostgreSQL and NATS (from the platform's pytest plugin)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pitlane_platform.clock import FixedClock
from pitlane_workorder.bootstrap import WorkorderSettings, build

# Tests run with --import-mode=importlib, which puts no test directory on sys.path; the harness is shared.
sys.path.insert(0, str(Path(__file__).parent))

from workorder_harness import MONDAY_8AM, Harness


async def running(database_url: str, nats_url: str, tmp_path: Path, **changes: Any) -> AsyncIterator[Harness]:
    settings = WorkorderSettings(
        database_url=database_url,
        nats_url=nats_url,
        env="test",
        jwt_secret="workorder-test-jwt-secret-of-32-bytes-or-more",
        link_secret="workorder-test-link-secret-of-32-bytes-or-more",
        public_base_url="https://shop.example.cn/",
        relay_poll_interval_s=0.2,
        blob_dir=tmp_path / "blobs",
        no_show_sweep_interval_s=3600,  # tests sweep explicitly, on their own clock
        **changes,
    )
    clock = FixedClock(MONDAY_8AM)
    service = build(settings, clock=clock)
    async with (
        service.app.router.lifespan_context(service.app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.app), base_url="http://workorder"
        ) as client,
    ):
        yield Harness(settings, service, client, clock)


@pytest.fixture
async def harness(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async for running_harness in running(database_url, nats_url, tmp_path):
        yield running_harness


@pytest.fixture
async def api_only(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """An API process without the relay and the consumers: what it writes stays in the outbox."""
    async for running_harness in running(database_url, nats_url, tmp_path, run_background=False):
        yield running_harness


@pytest.fixture
async def branch(harness: Harness) -> Harness:
    await harness.open_branch()
    return harness
