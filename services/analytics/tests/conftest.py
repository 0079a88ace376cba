"""Fixtures: the analytics service against real PostgreSQL and NATS (from the platform's pytest plugin), on a
fixed clock."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib, which puts no test directory on sys.path; the harness is shared.
sys.path.insert(0, str(Path(__file__).parent))

from analytics_harness import Harness, running


@pytest.fixture
async def harness(database_url: str, nats_url: str) -> AsyncIterator[Harness]:
    async with running(database_url, nats_url) as running_harness:
        yield running_harness
