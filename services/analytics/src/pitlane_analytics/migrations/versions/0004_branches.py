"""The branches workorder opened, with their names and time zones (digests go out at a branch's local time).

Filled from workorder's stream: existing deployments run `pitlane analytics rebuild` after upgrading (or the
next BranchOpened/BranchUpdated of each branch fills its row); until then a branch's digests use the chain's
time zone, as they did before."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "branches",
        sa.Column("branch_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column(
            "event_ids",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("branch_id", name=op.f("pk_branches")),
    )


def downgrade() -> None:
    op.drop_table("branches")
