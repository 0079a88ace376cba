"""The tables every service has: its event store, its outbox, its inbox and read-model version marks.

A service's own tables live in the same MetaData (`service_metadata()`), so one Alembic history per service
creates both; nothing is shared between services' databases.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Append-only: the audit trail of every event-sourced aggregate. `(stream_id, version)` is the optimistic
# concurrency check; `position` only orders rows for replays inside this service, never for publishing.
events = Table(
    "events",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=True),
    Column("stream_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)

# Rows to publish, written in the same transaction as the events and the state change. The relay marks
# `published_at` after JetStream acknowledged the message; unpublished rows are found through a partial
# index, never by tailing `id` (ids commit out of order).
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("traceparent", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)

# One row per (consumer, event) handled, written in the handler's transaction: an event has its effect once.
inbox = Table(
    "inbox",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("event_type", Text, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The newest aggregate version each read model has applied, so late or replayed older events are ignored.
read_model_versions = Table(
    "read_model_versions",
    metadata,
    Column("read_model", Text, primary_key=True),
    Column("aggregate_id", Text, primary_key=True),
    Column("version", Integer, nullable=False),
)

OUTBOX_CHANNEL = "pitlane_outbox"


def service_metadata() -> MetaData:
    """The MetaData a service defines its own tables on, already holding the platform's tables."""
    return metadata
