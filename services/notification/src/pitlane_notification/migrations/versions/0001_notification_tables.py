"""The platform's tables, then notification's: read models of contacts, consent, tags, branches, appointments,
vehicles and work orders; templates, quiet hours, the message log and the recording provider's copies,
WeChat allowances, surveys and answers, segments, campaigns and their recipients."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from pitlane_platform.migrations import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None

TABLES = (
    "campaign_recipients",
    "campaigns",
    "segments",
    "survey_answers",
    "surveys",
    "wechat_allowances",
    "recorded_messages",
    "messages",
    "templates",
    "vehicles",
    "appointments",
    "work_orders",
    "branch_quiet_hours",
    "branches",
    "customer_tags",
    "consents",
    "contacts",
)


def upgrade() -> None:
    create_platform_tables()
    op.create_table(
        "appointments",
        sa.Column("appointment_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=True),
        sa.Column("slot_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_requested", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id", name=op.f("pk_appointments")),
    )
    op.create_table(
        "branch_quiet_hours",
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("starts", sa.Time(), nullable=False),
        sa.Column("ends", sa.Time(), nullable=False),
        sa.PrimaryKeyConstraint("branch_id", name=op.f("pk_branch_quiet_hours")),
    )
    op.create_table(
        "branches",
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("branch_id", name=op.f("pk_branches")),
    )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("audience", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("cost_fen", sa.Integer(), nullable=False),
        sa.Column("attribution_window_days", sa.Integer(), nullable=False),
        sa.Column("control_share_pct", sa.SmallInteger(), nullable=False),
        sa.Column("coupon_prefix", sa.Text(), nullable=True),
        sa.Column("starts_on", sa.Text(), nullable=False),
        sa.Column("ends_on", sa.Text(), nullable=False),
        sa.Column("branch_ids", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=True),
        sa.Column("control_group", sa.Integer(), nullable=True),
        sa.Column("skipped_without_consent", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "consents",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "channel", "purpose", name=op.f("pk_consents")),
    )
    op.create_table(
        "contacts",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("full_name", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("wechat_open_id", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), server_default="zh-CN", nullable=False),
        sa.Column("merged_into", sa.Text(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_contacts")),
    )
    op.create_index("ix_contacts_phone", "contacts", ["phone"], unique=False)
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "tag", name=op.f("pk_customer_tags")),
    )
    op.create_index("ix_customer_tags_tag", "customer_tags", ["tag"], unique=False)
    op.create_table(
        "messages",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("batch_key", sa.Text(), nullable=True),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("locale", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("provider_template", sa.Text(), nullable=True),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column(
            "context",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("work_order_id", sa.Text(), nullable=True),
        sa.Column("appointment_id", sa.Text(), nullable=True),
        sa.Column("reminder_id", sa.Text(), nullable=True),
        sa.Column("campaign_id", sa.Text(), nullable=True),
        sa.Column("survey_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'delivered', 'failed', 'suppressed')",
            name=op.f("ck_messages_known_status"),
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_messages_dedupe_key")),
    )
    op.create_index(
        "ix_messages_batch",
        "messages",
        ["batch_key"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_messages_customer", "messages", ["customer_id", "created_at"], unique=False)
    op.create_index("ix_messages_provider_id", "messages", ["provider", "provider_message_id"], unique=False)
    op.create_table(
        "recorded_messages",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("provider_template", sa.Text(), nullable=True),
        sa.Column("parameters", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_recorded_messages")),
    )
    op.create_table(
        "segments",
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("customer_ids", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_segments")),
    )
    op.create_table(
        "surveys",
        sa.Column("survey_id", sa.Text(), nullable=False),
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("advisor_id", sa.Text(), nullable=False),
        sa.Column("technician_ids", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("reminder_channel", sa.Text(), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draft_score", sa.SmallInteger(), nullable=True),
        sa.Column("draft_comment", sa.Text(), nullable=True),
        sa.Column("detractor", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("locale", sa.Text(), server_default="zh-CN", nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("work_order_id", name=op.f("uq_surveys_work_order_id")),
    )
    op.create_index("ix_surveys_branch_sent", "surveys", ["branch_id", "sent_at"], unique=False)
    op.create_table(
        "templates",
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("locale", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("provider_template", sa.Text(), nullable=True),
        sa.Column(
            "provider_parameters",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("trigger", "channel", "locale", name=op.f("pk_templates")),
    )
    op.create_table(
        "vehicles",
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=True),
        sa.Column("owner_customer_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("vehicle_id", name=op.f("pk_vehicles")),
    )
    op.create_table(
        "wechat_allowances",
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("template_id", sa.Text(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.CheckConstraint("remaining >= 0", name=op.f("ck_wechat_allowances_not_negative")),
        sa.PrimaryKeyConstraint("customer_id", "template_id", name=op.f("pk_wechat_allowances")),
    )
    op.create_table(
        "work_orders",
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("plate", sa.Text(), nullable=True),
        sa.Column("advisor_id", sa.Text(), nullable=True),
        sa.Column(
            "technician_ids",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("work_order_id", name=op.f("pk_work_orders")),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("in_control_group", sa.Boolean(), nullable=False),
        sa.Column("coupon_code", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name=op.f("fk_campaign_recipients_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name=op.f("pk_campaign_recipients")),
        sa.UniqueConstraint("coupon_code", name="uq_campaign_recipients_coupon_code"),
    )
    op.create_table(
        "survey_answers",
        sa.Column("survey_id", sa.Text(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.CheckConstraint("score BETWEEN 0 AND 10", name=op.f("ck_survey_answers_score_range")),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.survey_id"], name=op.f("fk_survey_answers_survey_id_surveys")
        ),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_survey_answers")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    drop_platform_tables()
