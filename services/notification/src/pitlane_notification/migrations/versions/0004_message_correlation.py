"""Each message keeps the correlation id of what caused it (a visit's, issue 17): the NotificationSent and
NotificationFailed published when it goes out, perhaps hours later, carry it on."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("messages", sa.Column("correlation_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "correlation_id")
