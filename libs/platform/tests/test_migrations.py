"""Alembic the platform's way: a service's history applied at start (dev/test), idempotently."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from pitlane_platform.db import create_engine
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.settings import ServiceSettings

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"


async def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


async def test_runtime_applies_the_service_migrations_at_start_and_again_harmlessly(database_url, nats_url):
    settings = ServiceSettings(service_name="probe", database_url=database_url, nats_url=nats_url)
    for _ in range(2):
        runtime = ServiceRuntime(settings, migrations=PROBE_MIGRATIONS)
        async with runtime.lifespan():
            pass
    assert {"events", "outbox", "inbox", "read_model_versions", "alembic_version"} <= await table_names(
        database_url
    )


async def test_migrations_are_left_to_the_deployment_in_production(database_url, nats_url):
    settings = ServiceSettings(
        service_name="probe",
        env="prod",
        database_url=database_url,
        nats_url=nats_url,
        jwt_secret="a-real-secret",
        link_secret="another-real-secret",
    )
    runtime = ServiceRuntime(settings, migrations=PROBE_MIGRATIONS)
    async with runtime.lifespan():
        pass
    assert "events" not in await table_names(database_url)
