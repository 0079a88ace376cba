"""Tasks for a late stage of a work order (workorder's WorkOrderStageOverdue, issue 16): the stage, and the
role at the branch that answers for it."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("stage", sa.Text))
    op.add_column("tasks", sa.Column("responsible_role", sa.Text))


def downgrade() -> None:
    op.drop_column("tasks", "responsible_role")
    op.drop_column("tasks", "stage")
