"""workorder's read model of customer-profile's customers and vehicles, by which bookings and check-ins
resolve a phone or plate to the chain's one id (ADR 11)."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "directory_customers",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("merged_into", sa.Text),
        sa.Column("erased_at", TZ),
    )
    op.create_table(
        "directory_phones",
        sa.Column("phone", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False, index=True),
        # False while only workorder knows the pairing (it introduced the customer); customer-profile's word wins.
        sa.Column("known_to_profile", sa.Boolean, nullable=False),
    )
    op.create_table(
        "directory_vehicles",
        sa.Column("vehicle_id", sa.Text, primary_key=True),
        sa.Column("plate", sa.Text, nullable=False, index=True),
        sa.Column("owner_customer_id", sa.Text),
        # The last odometer reading the chain knows: a check-in below it needs a correction with a reason.
        sa.Column("mileage_km", sa.Integer),
        sa.Column("known_to_profile", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for table in ("directory_vehicles", "directory_phones", "directory_customers"):
        op.drop_table(table)
