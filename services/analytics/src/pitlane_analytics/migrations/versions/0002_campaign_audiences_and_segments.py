"""Campaign audiences as their control-group draw split them (CampaignAudienceDrawn: incremental revenue) and
the drill-down lists saved as segments (`POST /v1/segments`, published as SegmentSaved)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"

TABLES = ("saved_segments", "campaign_audience_members", "campaign_audience_batches")


def upgrade() -> None:
    op.create_table(
        "campaign_audience_batches",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("audience_group", sa.Text(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "batch_number", name=op.f("pk_campaign_audience_batches")),
    )
    op.create_table(
        "campaign_audience_members",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("in_control_group", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name=op.f("pk_campaign_audience_members")),
    )
    op.create_table(
        "saved_segments",
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("drill_down", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("customer_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_saved_segments")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
