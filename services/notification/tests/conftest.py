"""Fixtures: the notification service against real PostgreSQL and NATS (from the platform's pytest plugin),
on a fixed clock, with the recording provider on every channel unless a test gives others."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib, which puts no test directory on sys.path; the harness is shared.
sys.path.insert(0, str(Path(__file__).parent))

from notification_harness import Harness, running
from provider_standin import ProviderStandIn


@pytest.fixture
async def harness(database_url: str, nats_url: str) -> AsyncIterator[Harness]:
    async with running(database_url, nats_url) as running_harness:
        await running_harness.open_branch()
        yield running_harness


@pytest.fixture
def standin() -> Iterator[ProviderStandIn]:
    with ProviderStandIn() as server:
        yield server
