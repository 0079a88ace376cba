"""The platform's tables, then reminder's: read models of vehicles, mileage readings, insurance policies,
consent, staff and work orders; the rules, reminders with their ladders' steps, and advisors' tasks."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from pitlane_platform.migrations import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None

TABLES = (
    "tasks",
    "reminder_steps",
    "reminders",
    "rules",
    "work_orders",
    "staff",
    "consents",
    "insurance_policies",
    "mileage_readings",
    "vehicles",
)


def upgrade() -> None:
    create_platform_tables()
    op.create_table(
        "consents",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "channel", "purpose", name=op.f("pk_consents")),
    )
    op.create_table(
        "insurance_policies",
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("coverage", sa.Text(), nullable=False),
        sa.Column("insurer", sa.Text(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("vehicle_id", "coverage", name=op.f("pk_insurance_policies")),
    )
    op.create_table(
        "mileage_readings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("km", sa.Integer(), nullable=False),
        sa.Column("correction", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("set_aside_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mileage_readings")),
        sa.UniqueConstraint("event_id", name=op.f("uq_mileage_readings_event_id")),
    )
    op.create_index(
        "ix_mileage_readings_vehicle", "mileage_readings", ["vehicle_id", "recorded_at"], unique=False
    )
    op.create_table(
        "reminder_steps",
        sa.Column("reminder_id", sa.Text(), nullable=False),
        sa.Column("cycle", sa.Text(), nullable=False),
        sa.Column("offset_days", sa.SmallInteger(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("reminder_id", "cycle", "offset_days", name=op.f("pk_reminder_steps")),
    )
    op.create_index("ix_reminder_steps_vehicle_day", "reminder_steps", ["vehicle_id", "due_on"], unique=False)
    op.create_table(
        "reminders",
        sa.Column("reminder_id", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("cycle", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_mileage_km", sa.Integer(), nullable=True),
        sa.Column("due_by", sa.Text(), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("ladder", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("snoozed_until", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("reminder_id", name=op.f("pk_reminders")),
        sa.UniqueConstraint("vehicle_id", "kind", "subject", name="uq_reminders_vehicle_kind_subject"),
    )
    op.create_index("ix_reminders_customer", "reminders", ["customer_id"], unique=False)
    op.create_index(
        "ix_reminders_open",
        "reminders",
        ["vehicle_id"],
        unique=False,
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_table(
        "rules",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "branch_id", name=op.f("pk_rules")),
    )
    op.create_table(
        "staff",
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("branch_id", "staff_id", name=op.f("pk_staff")),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("advisor_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("auto_closed_reason", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("work_order_id", sa.Text(), nullable=True),
        sa.Column("survey_id", sa.Text(), nullable=True),
        sa.Column("reminder_id", sa.Text(), nullable=True),
        sa.Column("add_on_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'done')", name=op.f("ck_tasks_known_status")),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("source", name=op.f("uq_tasks_source")),
    )
    op.create_index("ix_tasks_branch_status", "tasks", ["branch_id", "status", "due_at"], unique=False)
    op.create_table(
        "vehicles",
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=True),
        sa.Column("plate", sa.Text(), nullable=True),
        sa.Column("registration_date", sa.Date(), nullable=True),
        sa.Column("purchase_date", sa.Date(), nullable=True),
        sa.Column("last_branch_id", sa.Text(), nullable=True),
        sa.Column("last_advisor_id", sa.Text(), nullable=True),
        sa.Column("last_service_on", sa.Date(), nullable=True),
        sa.Column("last_service_km", sa.Integer(), nullable=True),
        sa.Column("first_service_on", sa.Date(), nullable=True),
        sa.Column("last_visit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reading_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_reading_km", sa.Integer(), nullable=True),
        sa.Column("km_per_day", sa.Float(), nullable=True),
        sa.Column("estimate_basis", sa.Text(), nullable=True),
        sa.Column(
            "open_bookings",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "open_work_orders",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("sold_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("vehicle_id", name=op.f("pk_vehicles")),
    )
    op.create_index("ix_vehicles_customer", "vehicles", ["customer_id"], unique=False)
    op.create_table(
        "work_orders",
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("advisor_id", sa.Text(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("mileage_km", sa.Integer(), nullable=True),
        sa.Column("voided", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("work_order_id", name=op.f("pk_work_orders")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    drop_platform_tables()
