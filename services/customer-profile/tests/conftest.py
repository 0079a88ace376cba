"""Fixtures of the customer-profile tests; the helpers they share live in profile_testing.py."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

# Tests import their shared helpers by module name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from profile_testing import CHAIN, Producer, Service, serving

from pitlane_customer_profile.bootstrap import CustomerProfileSettings


@pytest.fixture
def settings(database_url: str, nats_url: str) -> CustomerProfileSettings:
    return CustomerProfileSettings(
        database_url=database_url,
        nats_url=nats_url,
        env="test",
        chain_id=CHAIN,
        relay_poll_interval_s=0.2,
        jwt_secret="test-secret-" + "x" * 32,
        link_secret="test-link-secret-" + "y" * 32,
        pii_master_key="dGVzdC1waWktbWFzdGVyLWtleS0zMi1ieXRlcy4uLi4=",
    )  # type: ignore[arg-type]


@pytest.fixture
async def service(settings: CustomerProfileSettings) -> AsyncIterator[Service]:
    async with serving(settings) as running:
        yield running


@pytest.fixture
async def producer(nats_url: str) -> AsyncIterator[Producer]:
    producer = Producer(await nats.connect(nats_url))
    yield producer
    await producer.connection.drain()
