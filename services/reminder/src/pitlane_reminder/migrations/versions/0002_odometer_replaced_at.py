"""vehicles.odometer_replaced_at: the correction the mileage estimate counts from, kept on the row beside the
rest of the estimate so a rule change re-evaluates vehicles without reading their mileage history.

Filled in from the readings: the estimate counts from the latest correction it accepted (it accepts every
correction but a second one at the same instant, which it sets aside), NULL where there is none."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("vehicles", sa.Column("odometer_replaced_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        UPDATE vehicles v SET odometer_replaced_at = (
            SELECT max(r.recorded_at) FROM mileage_readings r
            WHERE r.vehicle_id = v.vehicle_id AND r.correction AND r.set_aside_reason IS NULL
        )
        """
    )


def downgrade() -> None:
    op.drop_column("vehicles", "odometer_replaced_at")
