"""Alembic the platform's way: a service's history applied at start (dev/test), idempotently."""

from __future__ import annotations

import asyncio
import sys
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


async def test_a_database_created_before_the_order_and_holds_tables_is_brought_up_to_date(database_url):
    from sqlalchemy import text

    from pitlane_platform.migrations import upgrade

    await asyncio.to_thread(upgrade, database_url, PROBE_MIGRATIONS, "0001")
    engine = create_engine(database_url)
    async with engine.begin() as connection:  # what 0001 created before the platform gained them
        await connection.execute(text("DROP TABLE consumer_holds, consumer_parked_messages"))
        await connection.execute(
            text(
                "ALTER TABLE outbox DROP COLUMN aggregate_id, DROP COLUMN parked_at, DROP COLUMN park_reason"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO outbox (event_id, subject, headers, payload) VALUES (gen_random_uuid(), 's', '{}', '')"
            )
        )
    await asyncio.to_thread(upgrade, database_url, PROBE_MIGRATIONS)
    async with engine.connect() as connection:
        columns = await connection.run_sync(
            lambda sync: {column["name"] for column in inspect(sync).get_columns("outbox")}
        )
        kept = (await connection.execute(text("SELECT aggregate_id FROM outbox"))).scalars().all()
    await engine.dispose()
    assert {"aggregate_id", "parked_at", "park_reason"} <= columns
    assert kept == [""]  # the row queued before the upgrade is still there to publish
    assert {"consumer_holds", "consumer_parked_messages"} <= await table_names(database_url)


async def test_processes_starting_together_migrate_one_at_a_time(database_url):
    # `pitlane up --api-workers 4`: four processes of one service apply the same history to a fresh database
    # (processes, not threads: Alembic's context is one per process).
    script = "import sys; from pitlane_platform.migrations import upgrade; upgrade(sys.argv[1], sys.argv[2])"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, database_url, str(PROBE_MIGRATIONS), stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    outcomes = [(await process.wait(), (await process.stderr.read())[-2000:]) for process in processes]  # type: ignore[union-attr]

    assert [outcome for outcome in outcomes if outcome[0] != 0] == []
    assert {"events", "outbox", "alembic_version"} <= await table_names(database_url)
