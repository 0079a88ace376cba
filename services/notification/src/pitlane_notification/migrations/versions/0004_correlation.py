"""Each message and survey keeps the correlation id of what caused it (a visit's, issue 17): the
NotificationSent/Failed/Delivered published when a message goes out, and the NpsAnswered of a survey answered
days later, carry it on."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("messages", sa.Column("correlation_id", sa.Uuid(), nullable=True))
    op.add_column("surveys", sa.Column("correlation_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("surveys", "correlation_id")
    op.drop_column("messages", "correlation_id")
