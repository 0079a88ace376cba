"""The e2e fixtures: `cluster` is customer-profile and workorder on their own databases and one real NATS,
with a branch open and its staff added (e2e_cluster.py); `whole` is every service as `pitlane up` runs it
(whole_cluster.py)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib, which puts no test directory on sys.path; the cluster is shared.
sys.path.insert(0, str(Path(__file__).parent))

from e2e_cluster import Cluster, cluster_settings, running_cluster
from whole_cluster import WholeCluster, whole_cluster


@pytest.fixture
async def cluster(make_database: Callable[[], str], nats_url: str) -> AsyncIterator[Cluster]:
    profile_settings, workorder_settings = cluster_settings(
        {"database_url": make_database(), "nats_url": nats_url},
        {"database_url": make_database(), "nats_url": nats_url},
    )
    async with running_cluster(profile_settings, workorder_settings) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def whole() -> Iterator[WholeCluster]:
    """The whole system as `pitlane up` starts it (whole_cluster.py), once for the session's scenarios: each
    works at a branch of its own and counts only what it sent."""
    # Outside pytest's tmp_path: as root, pgserver opens the path's parents to its own OS user.
    with (
        tempfile.TemporaryDirectory(prefix="pitlane-e2e-", ignore_cleanup_errors=True) as directory,
        whole_cluster(Path(directory) / "pitlane") as cluster,
    ):
        yield cluster
