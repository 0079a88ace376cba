"""Who works at which branch in which role (workorder's StaffMemberAdded): managers get the alerts of their
branch's late stages (WorkOrderStageOverdue, issue 16), at the addresses the chain gives them."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "branch_staff",
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("branch_id", "staff_id", name=op.f("pk_branch_staff")),
    )


def downgrade() -> None:
    op.drop_table("branch_staff")
