"""The process engine (issue 16, ADR 28): the chain's and branches' process definitions, the stages each open
work order is in on the board, and technicians' skills."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "process_definitions",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("stages", JSONB, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.Text, nullable=False),
    )
    op.create_table(
        "technician_skills",
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("staff_id", sa.Text, primary_key=True),
        sa.Column("skills", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Orders opened before: the board shows no stages for them until their next command projects them.
    op.add_column(
        "work_orders", sa.Column("stages", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb"))
    )


def downgrade() -> None:
    op.drop_column("work_orders", "stages")
    op.drop_table("technician_skills")
    op.drop_table("process_definitions")
