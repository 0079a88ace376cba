"""The tables every service has: its event store, its outbox, its inbox, read-model version marks, the
consumers' held-back aggregates, the audit trail of authenticated requests, and the durable timers.

A service's own tables live in a MetaData holding copies of these (`service_metadata()`), so one Alembic
history per service creates both; nothing is shared between services' databases.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    event,
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
# index, never by tailing `id` (ids commit out of order). Rows of one aggregate are published in id order
# (= version order: an aggregate's appends are serialised by the version check), one at a time. A row the
# broker will never accept is parked (`parked_at`, `park_reason`) and holds back its aggregate's later rows.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("aggregate_id", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("traceparent", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Column("parked_at", DateTime(timezone=True)),
    Column("park_reason", Text),
    Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    Index(
        "ix_outbox_parked",
        "aggregate_id",
        postgresql_where=text("published_at IS NULL AND parked_at IS NOT NULL"),
    ),
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

# An aggregate a consumer holds back: its head message failed (and is retried by the runner on its own
# back-off schedule) or was dead-lettered (and waits for a replay). While the hold exists, the aggregate's
# later messages are parked in `consumer_parked_messages` instead of applied; they are applied in order
# after the head, then the hold is released. Both tables are the consumer's durable memory of the order.
consumer_holds = Table(
    "consumer_holds",
    metadata,
    Column("consumer", Text, primary_key=True),
    Column("aggregate_id", Text, primary_key=True),
    Column("attempts", Integer, nullable=False, server_default="0"),  # failed attempts of the head
    # Attempts begun: more begun than failed means the process died during them (see ConsumerRunner).
    Column("attempts_started", Integer, nullable=False, server_default="0"),
    Column("replays", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("dead_lettered_at", DateTime(timezone=True)),
    Column("held_since", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_parked_messages = Table(
    "consumer_parked_messages",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=True),
    Column("consumer", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("aggregate_version", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("parked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("consumer", "event_id", name="uq_consumer_parked_messages_consumer_event"),
    Index("ix_consumer_parked_messages_order", "consumer", "aggregate_id", "aggregate_version", "position"),
)

# One row per authenticated request (security/audit.py, ADR 12): who, which route and resource, when, with
# what outcome. Never query values or bodies: they hold phones and names. Append-only, enforced by a trigger
# below, so not even the service's own role can rewrite history through a bug.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("subject", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("branches", JSONB, nullable=False),
    Column("method", Text, nullable=False),
    Column("route", Text, nullable=False),
    Column("resource_ids", JSONB, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("request_id", Text),
    Index("ix_audit_log_occurred_at", "occurred_at"),
    Index("ix_audit_log_subject", "subject", "id"),
    Index("ix_audit_log_route", "route", "id"),
)
event.listen(
    audit_log,
    "after_create",
    DDL(
        """
        CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
        """
    ),
)
event.listen(audit_log, "after_drop", DDL("DROP FUNCTION IF EXISTS audit_log_is_append_only()"))

# Durable timers (scheduling/timers.py, ADR 15): one row per occurrence of "do this at that time". `(kind,
# key)` is unique, so scheduling is idempotent; a row stays after it fired, the record that it did (a
# restart never fires it again). The partial index holds only what may still fire.
timers = Table(
    "timers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False),
    # W3C trace headers of the transaction that scheduled it: the handler continues that trace.
    Column("trace_headers", JSONB),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("fired_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    UniqueConstraint("kind", "key", name="uq_timers_kind_key"),
    Index(
        "ix_timers_due",
        "due_at",
        "id",
        postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL AND failed_at IS NULL"),
    ),
)

PLATFORM_TABLES = (
    events,
    outbox,
    inbox,
    read_model_versions,
    consumer_holds,
    consumer_parked_messages,
    audit_log,
    timers,
)

OUTBOX_CHANNEL = "pitlane_outbox"
TIMERS_CHANNEL = "pitlane_timers"


def service_metadata() -> MetaData:
    """A new MetaData for one service to define its own tables on, holding copies of the platform's tables.
    New for every call: services are imported together (`pitlane up`, the test suite), and two of them may
    well both have a `branches` table of their own."""
    own = MetaData(naming_convention=NAMING_CONVENTION)
    for table in PLATFORM_TABLES:
        table.to_metadata(own)
    return own
