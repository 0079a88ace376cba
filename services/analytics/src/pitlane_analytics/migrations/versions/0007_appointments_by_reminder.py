"""Bookings found by the reminder whose link made them: what followed a reminder is read per reminder."""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_index("ix_appointments_reminder", "appointments", ["reminder_id"])


def downgrade() -> None:
    op.drop_index("ix_appointments_reminder", table_name="appointments")
