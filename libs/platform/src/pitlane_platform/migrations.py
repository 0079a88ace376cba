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
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from pitlane_platform.db import sqlalchemy_url


def create_platform_tables() -> None:
    """For a service's first migration: the event store, outbox, inbox and read-model version tables, as
    `pitlane_platform.schema` defines them, so every service gets the same ones."""
    from alembic import op

    from pitlane_platform.schema import metadata

    metadata.create_all(op.get_bind(), tables=list(_platform_tables()))


def drop_platform_tables() -> None:
    from alembic import op

    from pitlane_platform.schema import metadata

    metadata.drop_all(op.get_bind(), tables=list(_platform_tables()))


def _platform_tables():  # type: ignore[no-untyped-def]
    from pitlane_platform.schema import events, inbox, outbox, read_model_versions

    return (events, outbox, inbox, read_model_versions)


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
