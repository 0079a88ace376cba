"""Segments exported from analytics' KPI drill-downs: where a segment came from (`segments.source`,
`segments.drill_down`) and the SegmentSaved batches it arrives in (`segment_batches`)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column(
        "segments", sa.Column("source", sa.Text(), server_default=sa.text("'notification'"), nullable=False)
    )
    op.add_column("segments", sa.Column("drill_down", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        "segment_batches",
        sa.Column("segment_id", sa.Text(), nullable=False),
        sa.Column("batch_number", sa.Integer(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("customer_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "batch_number", name=op.f("pk_segment_batches")),
    )


def downgrade() -> None:
    op.drop_table("segment_batches")
    op.drop_column("segments", "drill_down")
    op.drop_column("segments", "source")
