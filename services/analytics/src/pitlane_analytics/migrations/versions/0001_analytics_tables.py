"""The platform's tables, then analytics' facts: work orders and their lines, appointments, add-ons, NPS
surveys and answers, campaigns and their sends, reminders sent, customer aliases and erasures, and the
newest event time read from each producer."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from pitlane_platform.migrations import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None

TABLES = (
    "source_watermarks",
    "erased_customers",
    "customer_aliases",
    "reminders_sent",
    "campaign_sends",
    "campaigns",
    "nps_answers",
    "surveys",
    "add_ons",
    "appointments",
    "visit_lines",
    "work_orders",
)

EMPTY = sa.text("'{}'::text[]")


def upgrade() -> None:
    create_platform_tables()
    op.create_table(
        "work_orders",
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=True),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("advisor_id", sa.Text(), nullable=True),
        sa.Column("technician_ids", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.Column("appointment_id", sa.Text(), nullable=True),
        sa.Column("coupon_codes", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_fen", sa.BigInteger(), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_ids", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("work_order_id", name=op.f("pk_work_orders")),
    )
    op.create_index("ix_work_orders_completed_at", "work_orders", ["completed_at"])
    op.create_index("ix_work_orders_customer", "work_orders", ["customer_id"])
    op.create_index("ix_work_orders_vehicle", "work_orders", ["vehicle_id"])
    op.create_index("ix_work_orders_appointment", "work_orders", ["appointment_id"])
    op.create_table(
        "visit_lines",
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("item_code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(12, 3), nullable=False),
        sa.Column("revenue_fen", sa.BigInteger(), nullable=False),
        sa.Column("cost_fen", sa.BigInteger(), nullable=True),
        sa.Column("add_on_id", sa.Text(), nullable=True),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("work_order_id", "line_no", name=op.f("pk_visit_lines")),
    )
    op.create_index("ix_visit_lines_item", "visit_lines", ["item_code"])
    op.create_table(
        "appointments",
        sa.Column("appointment_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("vehicle_id", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("reminder_id", sa.Text(), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("work_order_id", sa.Text(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("no_show_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_ids", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("appointment_id", name=op.f("pk_appointments")),
    )
    op.create_index("ix_appointments_booked_at", "appointments", ["booked_at"])
    op.create_index("ix_appointments_vehicle", "appointments", ["vehicle_id"])
    op.create_index("ix_appointments_campaign", "appointments", ["campaign_id"])
    op.create_table(
        "add_ons",
        sa.Column("add_on_id", sa.Text(), nullable=False),
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("item", sa.Text(), nullable=True),
        sa.Column("item_code", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("price_fen", sa.BigInteger(), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event_ids", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("add_on_id", name=op.f("pk_add_ons")),
    )
    op.create_index("ix_add_ons_work_order", "add_ons", ["work_order_id"])
    op.create_index("ix_add_ons_declined_at", "add_ons", ["declined_at"])
    op.create_table(
        "surveys",
        sa.Column("survey_id", sa.Text(), nullable=False),
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_surveys")),
    )
    op.create_index("ix_surveys_sent_at", "surveys", ["sent_at"])
    op.create_table(
        "nps_answers",
        sa.Column("survey_id", sa.Text(), nullable=False),
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("advisor_id", sa.Text(), nullable=False),
        sa.Column("technician_ids", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_nps_answers")),
    )
    op.create_index("ix_nps_answers_answered_at", "nps_answers", ["answered_at"])
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("attribution_window_days", sa.SmallInteger(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("coupon_codes", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.Column("branch_ids", postgresql.ARRAY(sa.Text()), server_default=EMPTY, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "campaign_sends",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_campaign_sends")),
    )
    op.create_index("ix_campaign_sends_campaign", "campaign_sends", ["campaign_id"])
    op.create_table(
        "reminders_sent",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("reminder_id", sa.Text(), nullable=False),
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_reminders_sent")),
    )
    op.create_index("ix_reminders_sent_sent_at", "reminders_sent", ["sent_at"])
    op.create_table(
        "customer_aliases",
        sa.Column("merged_customer_id", sa.Text(), nullable=False),
        sa.Column("surviving_customer_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("merged_customer_id", name=op.f("pk_customer_aliases")),
    )
    op.create_index("ix_customer_aliases_surviving", "customer_aliases", ["surviving_customer_id"])
    op.create_table(
        "erased_customers",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_erased_customers")),
    )
    op.create_table(
        "source_watermarks",
        sa.Column("source_service", sa.Text(), nullable=False),
        sa.Column("newest_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_service", name=op.f("pk_source_watermarks")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    drop_platform_tables()
