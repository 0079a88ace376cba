"""The e2e fixtures: `cluster` is customer-profile and workorder on their own databases and one real NATS,
with a branch open and its staff added (e2e_cluster.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_customer_profile.bootstrap import build as build_profile
from pitlane_platform.clock import FixedClock
from pitlane_workorder.bootstrap import WorkorderSettings
from pitlane_workorder.bootstrap import build as build_workorder

# Tests run with --import-mode=importlib, which puts no test directory on sys.path; the cluster is shared.
sys.path.insert(0, str(Path(__file__).parent))

from e2e_cluster import CHAIN, LINK_SECRET, MONDAY_8AM, SECRET, Cluster


@pytest.fixture
async def cluster(make_database: Callable[[], str], nats_url: str) -> AsyncIterator[Cluster]:
    common = {
        "nats_url": nats_url,
        "env": "test",
        "chain_id": CHAIN,
        "relay_poll_interval_s": 0.2,
        "jwt_secret": SECRET,
        "link_secret": LINK_SECRET,
    }
    profile_database, workorder_database = make_database(), make_database()
    profile_settings = CustomerProfileSettings(
        database_url=profile_database,
        pii_master_key="dGVzdC1waWktbWFzdGVyLWtleS0zMi1ieXRlcy4uLi4=",
        # One test user polls the lookup until the events arrive, far faster than a front desk does.
        lookup_rate_limit="100000/minute",
        **common,
    )  # type: ignore[arg-type]
    workorder_settings = WorkorderSettings(database_url=workorder_database, **common)  # type: ignore[arg-type]
    _, profile_app = build_profile(profile_settings)
    workorder = build_workorder(workorder_settings, clock=FixedClock(MONDAY_8AM))
    async with (
        profile_app.router.lifespan_context(profile_app),
        workorder.app.router.lifespan_context(workorder.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=profile_app), base_url="http://cp") as profile,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=workorder.app), base_url="http://wo") as wo,
    ):
        cluster = Cluster(
            profile, wo, profile_settings, workorder_settings, profile_database, workorder_database
        )
        await cluster.open_branch()
        yield cluster
