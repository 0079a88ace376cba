"""Security I (ADR 13): an erased customer's name and phone leave the appointments; each upload is kept per
branch, readable only by that branch's staff; customer links can be revoked."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.alter_column("appointments", "customer_name", nullable=True)
    op.alter_column("appointments", "phone", nullable=True)
    # Uploads from before the branch was recorded are given to no branch: only chain-wide tokens reach them.
    op.add_column("media", sa.Column("branch_id", sa.Text, nullable=False, server_default="*"))
    op.alter_column("media", "branch_id", server_default=None)
    op.drop_constraint("pk_media", "media", type_="primary")
    op.create_primary_key("pk_media", "media", ["content_hash", "branch_id"])
    op.create_table(
        "customer_links",
        sa.Column("work_order_id", sa.Text, primary_key=True),
        # A link carries the generation it was signed in; revoking moves the generation on.
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("customer_links")
    op.drop_constraint("pk_media", "media", type_="primary")
    op.execute("DELETE FROM media a USING media b WHERE a.content_hash = b.content_hash AND a.ctid > b.ctid")
    op.create_primary_key("pk_media", "media", ["content_hash"])
    op.drop_column("media", "branch_id")
    op.execute(
        "UPDATE appointments SET customer_name = coalesce(customer_name, ''), phone = coalesce(phone, '')"
    )
    op.alter_column("appointments", "phone", nullable=False)
    op.alter_column("appointments", "customer_name", nullable=False)
