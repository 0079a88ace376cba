"""Alembic, the same way in every service: one history per service, applied at start in dev and test,
as a Kubernetes Job in production.

A service's `migrations/env.py` is two lines: `from pitlane_platform.migrations import run_env` and
`run_env(metadata)`. The database URL comes from `alembic.ini`'s option set by `upgrade()`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from pitlane_platform.db import advisory_lock_key, sqlalchemy_url


def create_platform_tables() -> None:
    """For a service's first migration: the event store, outbox, inbox, read-model version, consumer
    hold and audit tables, as `pitlane_platform.schema` defines them, so every service gets the same ones."""
    from alembic import op

    from pitlane_platform.schema import PLATFORM_TABLES, metadata

    metadata.create_all(op.get_bind(), tables=list(PLATFORM_TABLES))


# What the platform's tables gained since a service's first migration, written so that it does nothing on a
# database whose first migration already created the current tables (create_platform_tables uses the
# current schema). Each service's migration history calls upgrade_platform_tables() once per platform change.
_PLATFORM_UPGRADES = """
    ALTER TABLE outbox ADD COLUMN IF NOT EXISTS aggregate_id text NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN IF NOT EXISTS parked_at timestamptz;
    ALTER TABLE outbox ADD COLUMN IF NOT EXISTS park_reason text;
    CREATE INDEX IF NOT EXISTS ix_outbox_parked ON outbox (aggregate_id)
        WHERE published_at IS NULL AND parked_at IS NOT NULL;
"""


def upgrade_platform_tables() -> None:
    """Bring the platform's tables of an existing service database to the current schema (idempotent)."""
    from alembic import op

    from pitlane_platform.schema import PLATFORM_TABLES, metadata

    bind = op.get_bind()
    bind.exec_driver_sql(_PLATFORM_UPGRADES)
    metadata.create_all(bind, tables=list(PLATFORM_TABLES), checkfirst=True)


def drop_platform_tables() -> None:
    from alembic import op

    from pitlane_platform.schema import PLATFORM_TABLES, metadata

    metadata.drop_all(op.get_bind(), tables=list(PLATFORM_TABLES))


MIGRATION_LOCK_KEY = advisory_lock_key("pitlane-migrations")


def alembic_config(database_url: str, script_location: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, script_location: Path, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url, script_location), revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's Alembic env.py (online mode, async engine)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError(
            "alembic config has no sqlalchemy.url: migrate through pitlane_platform.migrations.upgrade"
        )

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            # Processes of one service starting together (`pitlane up --api-workers N`, replicas) migrate one
            # at a time: the lock is held to the end of the transaction, so the next one finds the schema
            # up to date instead of racing it to create alembic_version.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
        return
    raise RuntimeError("run migrations from a thread without a running event loop (see ServiceRuntime.start)")
