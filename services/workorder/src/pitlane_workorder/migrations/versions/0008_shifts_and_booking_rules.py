"""The booking calendar (ADR 25): staff shifts and leave, the booking rules a chain sets per branch, places
held while a customer fills in the form or answers a waitlist offer, waitlists, no-show counts, and what an
appointment says about the visit (waiting or drop-off) and its confirmation."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("appointments", sa.Column("visit_type", sa.Text))
    op.add_column(
        "appointments",
        sa.Column("confirmation_required", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("appointments", sa.Column("confirmed_at", TZ))
    op.create_table(
        "staff_shifts",
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("staff_id", sa.Text, primary_key=True),
        sa.Column("starts_at", sa.Time, nullable=False),
        sa.Column("ends_at", sa.Time, nullable=False),
        sa.Column("breaks", JSONB, nullable=False),
    )
    op.create_table(
        "staff_leave",
        sa.Column("leave_id", sa.Text, primary_key=True),
        sa.Column("branch_id", sa.Text, nullable=False),
        sa.Column("staff_id", sa.Text, nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
    )
    op.create_index("ix_staff_leave_branch_end", "staff_leave", ["branch_id", "ends_at"])
    op.create_table(
        "booking_rules",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("rules", JSONB, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "slot_holds",
        sa.Column("hold_id", sa.Text, primary_key=True),
        sa.Column("branch_id", sa.Text, nullable=False),
        sa.Column("slot_start", TZ, nullable=False),
        sa.Column("slot_end", TZ, nullable=False),
        sa.Column("visit_type", sa.Text, nullable=False),
        sa.Column("service_requested", sa.Text, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("waitlist_entry_id", sa.Text),
    )
    op.create_index("ix_slot_holds_branch_slot", "slot_holds", ["branch_id", "slot_start"])
    op.create_table(
        "waitlist_entries",
        sa.Column("entry_id", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("branch_id", sa.Text, nullable=False),
        sa.Column("slot_start", TZ, nullable=False),
        sa.Column("slot_end", TZ, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("customer_name", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("plate", sa.Text, nullable=False),
        sa.Column("vehicle_id", sa.Text),
        sa.Column("service_requested", sa.Text, nullable=False),
        sa.Column("visit_type", sa.Text, nullable=False),
        sa.Column("joined_at", TZ, nullable=False),
        sa.Column("hold_id", sa.Text),
        sa.Column("appointment_id", sa.Text),
    )
    op.create_index(
        "ix_waitlist_entries_branch_slot", "waitlist_entries", ["branch_id", "slot_start", "position"]
    )
    op.create_table(
        "customer_no_shows",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("no_shows", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "customer_no_shows",
        "waitlist_entries",
        "slot_holds",
        "booking_rules",
        "staff_leave",
        "staff_shifts",
    ):
        op.drop_table(table)
    for column in ("confirmed_at", "confirmation_required", "visit_type"):
        op.drop_column("appointments", column)
