"""The stage on-time rate (issue 16): each stage a completed work order passed, with its deadline
(`stage_passages`, from WorkOrderCompleted), and the process definition version each order ran on
(`work_orders.process_scope`, `process_version`, from WorkOrderOpened). Facts from before come with a
rebuild (`pitlane analytics rebuild`): the streams hold them."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.add_column("work_orders", sa.Column("process_scope", sa.Text))
    op.add_column("work_orders", sa.Column("process_version", sa.Integer))
    op.create_table(
        "stage_passages",
        sa.Column("work_order_id", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("occurrence", sa.SmallInteger, nullable=False),
        sa.Column("add_on_id", sa.Text),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("work_order_id", "stage", "occurrence", name=op.f("pk_stage_passages")),
    )
    op.create_index("ix_stage_passages_completed_at", "stage_passages", ["completed_at"])


def downgrade() -> None:
    op.drop_table("stage_passages")
    op.drop_column("work_orders", "process_version")
    op.drop_column("work_orders", "process_scope")
