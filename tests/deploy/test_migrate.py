"""The migration step (`python -m pitlane_platform.migrate <service>`): it finds each service's own Alembic
history, applies it to the service's database from the environment, and a second run finds nothing to do."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import psycopg

from pitlane_platform.db import libpq_url
from pitlane_platform.migrate import migrations_of
from pitlane_platform.services import installed_services


def test_the_migration_step_finds_the_history_each_service_runs_at_start() -> None:
    for spec in installed_services():
        bootstrap = importlib.import_module(spec.asgi_factory.partition(":")[0])
        assert migrations_of(spec) == bootstrap.MIGRATIONS, spec.name


def test_migrate_applies_the_history_to_the_database_in_the_environment_once(database_url: str) -> None:
    environment = {
        **os.environ,
        "REMINDER_DATABASE_URL": database_url,
        "REMINDER_NATS_URL": "nats://unused:1",
    }
    command = [sys.executable, "-m", "pitlane_platform.migrate", "reminder"]
    first = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    with psycopg.connect(libpq_url(database_url)) as connection:
        (head,) = connection.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
        tables = {
            row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    assert head is not None and {"outbox", "inbox", "timers"} <= tables
    second = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    with psycopg.connect(libpq_url(database_url)) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
