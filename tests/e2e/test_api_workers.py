"""A service run as several API processes beside one worker process (`pitlane up --api-workers N`): the API
processes serve and commit, only the worker publishes — real processes, real servers, driven over HTTP."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import httpx
import psycopg

from pitlane_customer_profile.bootstrap import SPEC
from pitlane_platform.auth import mint_dev_token
from pitlane_platform.db import libpq_url
from pitlane_platform.devcluster import DevCluster
from pitlane_platform.embedded import database_url, drop_database
from pitlane_platform.settings import DEV_JWT_SECRET, ServiceSettings
from pitlane_platform.testing.servers import TestServers

DEFAULTS = ServiceSettings.model_fields


def token() -> str:
    return mint_dev_token(
        DEV_JWT_SECRET,
        role="advisor",
        branches=["b1"],
        sub="advisor-1",
        chain=DEFAULTS["chain_id"].default,
        ttl=timedelta(hours=1),
        issuer=DEFAULTS["jwt_issuer"].default,
        audience=DEFAULTS["jwt_audience"].default,
    )


def unpublished(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as connection:
        row = connection.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
        return int(row[0]) if row else -1


def publishers_and_standbys(url: str) -> int:
    """Connections of a relay or consumer runner, active or standing by: a relay's listener's last statement
    is its LISTEN; a standby's, relay or runner, its request for the leadership lock."""
    with psycopg.connect(libpq_url(url)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND (query LIKE 'LISTEN %%' OR query LIKE 'SELECT pg_try_advisory_lock(%%')"
        ).fetchone()
        return int(row[0]) if row else -1


async def eventually(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def register(client: httpx.AsyncClient, api: str, phone: str) -> None:
    response = await client.post(
        f"{api}/v1/customers",
        headers={"Authorization": f"Bearer {token()}"},
        json={"full_name": "王建国", "phone": phone, "source": "walk_in"},
    )
    assert response.status_code == 201, response.text


async def test_api_processes_serve_and_commit_while_only_the_worker_publishes(
    tmp_path, nats_url: str, pitlane_servers: TestServers
) -> None:
    cluster = DevCluster(tmp_path)
    service_database = database_url(pitlane_servers.postgres_admin_url, SPEC.database)
    try:
        cluster.start_service(SPEC, nats_url, pitlane_servers.postgres_admin_url, api_workers=2)
        cluster.wait_until_services_listen()
        [api] = [child for child in cluster.children if child.http_url]
        [worker] = [child for child in cluster.children if child.name == f"{SPEC.name} worker"]
        assert api.http_url is not None
        async with httpx.AsyncClient(timeout=30) as client:
            await register(client, api.http_url, "13800000001")
            await eventually(lambda: unpublished(service_database) == 0)  # the worker's relay published it

            worker.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.process.wait, 30)
            await register(client, api.http_url, "13800000002")  # the API processes still serve
            # The worker's connections end with it. A relay in an API process (started with the process,
            # long before) would show one of its own all along: standing by for the lock, or listening.
            await eventually(lambda: publishers_and_standbys(service_database) == 0)
            assert unpublished(service_database) == 1
    finally:
        cluster.stop()
        drop_database(pitlane_servers.postgres_admin_url, SPEC.database)
