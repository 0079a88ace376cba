"""The platform's tables, then branches, staff, the appointment and work-order read models, and media."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from pitlane_platform.migrations import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_platform_tables()
    op.create_table(
        "branches",
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("opening_hours", JSONB, nullable=False),
        sa.Column("bays", JSONB, nullable=False),
        sa.Column("slot_minutes", sa.Integer, nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
    )
    op.create_table(
        "staff",
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("staff_id", sa.Text, primary_key=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
    )
    op.create_table(
        "appointments",
        sa.Column("appointment_id", sa.Text, primary_key=True),
        sa.Column("branch_id", sa.Text, nullable=False),
        sa.Column("slot_start", TZ, nullable=False),
        sa.Column("slot_end", TZ, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("campaign_id", sa.Text),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("customer_name", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False),
        sa.Column("plate", sa.Text, nullable=False),
        sa.Column("service_requested", sa.Text, nullable=False),
        sa.Column("work_order_id", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_appointments_branch_slot", "appointments", ["branch_id", "slot_start"])
    op.create_index("ix_appointments_status_slot", "appointments", ["status", "slot_start"])
    op.create_table(
        "work_orders",
        sa.Column("work_order_id", sa.Text, primary_key=True),
        sa.Column("branch_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("plate", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("customer_name", sa.Text),
        sa.Column("advisor_id", sa.Text, nullable=False),
        sa.Column("technician_ids", JSONB, nullable=False),
        sa.Column("appointment_id", sa.Text),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("state_entered_at", TZ, nullable=False),
        sa.Column("seconds_in_states", JSONB, nullable=False),
        sa.Column("pending_add_ons", sa.Integer, nullable=False),
        sa.Column("total_fen", sa.BigInteger),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_work_orders_branch_state", "work_orders", ["branch_id", "state"])
    op.create_table(
        "media",
        sa.Column("content_hash", sa.Text, primary_key=True),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("stored_at", TZ, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("media", "work_orders", "appointments", "staff", "branches"):
        op.drop_table(table)
    drop_platform_tables()
