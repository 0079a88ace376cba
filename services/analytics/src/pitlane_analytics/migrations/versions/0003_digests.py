"""KPI digests by e-mail: subscriptions, the delivery log (one row per attempt; a period is sent once), and
the e-mails the development recording mailer keeps."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

TABLES = ("recorded_digest_emails", "digest_deliveries", "digest_subscriptions")


def upgrade() -> None:
    op.create_table(
        "digest_subscriptions",
        sa.Column("subscription_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("cadence", sa.Text(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=True),
        sa.Column("month_day", sa.SmallInteger(), nullable=True),
        sa.Column("send_time", sa.Time(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_digest_subscriptions")),
    )
    op.create_table(
        "digest_deliveries",
        sa.Column("subscription_id", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "subscription_id", "period_start", "attempt", name=op.f("pk_digest_deliveries")
        ),
    )
    op.create_index(
        "uq_digest_deliveries_sent_once",
        "digest_deliveries",
        ["subscription_id", "period_start"],
        unique=True,
        postgresql_where=sa.text("outcome = 'sent'"),
    )
    op.create_table(
        "recorded_digest_emails",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_recorded_digest_emails")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
