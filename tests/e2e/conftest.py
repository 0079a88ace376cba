"""The e2e fixtures: `cluster` is customer-profile and workorder on their own databases and one real NATS,
with a branch open and its staff added (e2e_cluster.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib, which puts no test directory on sys.path; the cluster is shared.
sys.path.insert(0, str(Path(__file__).parent))

from e2e_cluster import Cluster, cluster_settings, running_cluster


@pytest.fixture
async def cluster(make_database: Callable[[], str], nats_url: str) -> AsyncIterator[Cluster]:
    profile_settings, workorder_settings = cluster_settings(
        {"database_url": make_database(), "nats_url": nats_url},
        {"database_url": make_database(), "nats_url": nats_url},
    )
    async with running_cluster(profile_settings, workorder_settings) as cluster:
        yield cluster
