"""The headline's projections (ADR 0026): each visit and each booking as its customer's history places it,
what each answer, survey, reminder and declined add-on counts, and the per-month sums and month-boundary
differences the headline reads for periods of whole months; indexes the projections look facts up by.

Kept by the consumers from now on: existing deployments run `pitlane analytics rebuild` after upgrading to
fill them from the streams (until then the headline of a whole-month period counts only the customers whose
visits changed since)."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

# What each counted fact counts (adapters/tables.py COUNTS as of this revision).
COUNTS = (
    "visit_events",
    "booking_events",
    "promoters",
    "passives",
    "detractors",
    "surveys",
    "reminders",
    "reminders_followed",
    "declined",
    "declined_recovered",
    "declined_fen",
    "recovered_fen",
    "declined_events",
)


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "customer_visits",
        sa.Column("work_order_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("previous_month", sa.Date(), nullable=False),
        sa.Column("previous2_month", sa.Date(), nullable=False),
        sa.Column("chain_first", sa.Boolean(), nullable=False),
        sa.Column("paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("gap_us", sa.BigInteger(), nullable=True),
        sa.Column("owns_from", sa.Date(), nullable=False),
        sa.Column("owns_until", sa.Date(), nullable=False),
        sa.Column("active_30_until", sa.Date(), nullable=False),
        sa.Column("active_90_until", sa.Date(), nullable=False),
        sa.Column("active_365_until", sa.Date(), nullable=False),
        sa.Column("lifetime_us", sa.BigInteger(), nullable=False),
        sa.Column("lifetime_bucket", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("work_order_id", "scope", name=op.f("pk_customer_visits")),
    )
    op.create_index("ix_customer_visits_customer", "customer_visits", ["customer_id"])
    op.create_index("ix_customer_visits_lifetime", "customer_visits", ["scope", "lifetime_bucket"])
    op.create_table(
        "visit_months",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("previous_month", sa.Date(), nullable=False),
        sa.Column("previous2_month", sa.Date(), nullable=False),
        *_counts("visits", "paid_fen", "chain_firsts", "gaps", "gap_us"),
        sa.PrimaryKeyConstraint(
            "scope", "month", "previous_month", "previous2_month", name=op.f("pk_visit_months")
        ),
    )
    op.create_table(
        "month_boundaries",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("boundary", sa.Date(), nullable=False),
        *_counts("customers", "lifetime_us", "active_30", "active_90", "active_365"),
        sa.PrimaryKeyConstraint("scope", "boundary", name=op.f("pk_month_boundaries")),
    )
    op.create_table(
        "lifetime_histogram",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("boundary", sa.Date(), nullable=False),
        sa.Column("lifetime_bucket", sa.Integer(), nullable=False),
        *_counts("customers"),
        sa.PrimaryKeyConstraint("scope", "boundary", "lifetime_bucket", name=op.f("pk_lifetime_histogram")),
    )

    op.create_table(
        "counted_facts",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("fact_id", sa.Text(), nullable=False),
        sa.Column("branch_id", sa.Text(), nullable=True),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=True),
        *_counts(*COUNTS),
        sa.PrimaryKeyConstraint("kind", "fact_id", name=op.f("pk_counted_facts")),
    )
    op.create_index("ix_counted_facts_customer", "counted_facts", ["customer_id"])
    op.create_table(
        "month_counts",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        *_counts(*COUNTS),
        sa.PrimaryKeyConstraint("scope", "month", name=op.f("pk_month_counts")),
    )
    op.create_table(
        "customer_appointments",
        sa.Column("appointment_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("previous_month", sa.Date(), nullable=False),
        sa.Column("previous_arrived_month", sa.Date(), nullable=False),
        sa.Column("arrived", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id", "scope", name=op.f("pk_customer_appointments")),
    )
    op.create_index("ix_customer_appointments_customer", "customer_appointments", ["customer_id"])
    op.create_table(
        "appointment_months",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("previous_month", sa.Date(), nullable=False),
        sa.Column("previous_arrived_month", sa.Date(), nullable=False),
        *_counts("bookings", "arrived"),
        sa.PrimaryKeyConstraint(
            "scope", "month", "previous_month", "previous_arrived_month", name=op.f("pk_appointment_months")
        ),
    )
    # What the projections look facts up by: a vehicle's reminders, the reminder a booking answers, a
    # customer's bookings.
    op.create_index("ix_reminders_sent_vehicle", "reminders_sent", ["vehicle_id"])
    op.create_index("ix_reminders_sent_reminder", "reminders_sent", ["reminder_id"])
    op.create_index("ix_appointments_customer", "appointments", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_appointments_customer", "appointments")
    op.drop_index("ix_reminders_sent_reminder", "reminders_sent")
    op.drop_index("ix_reminders_sent_vehicle", "reminders_sent")
    for table in (
        "appointment_months",
        "customer_appointments",
        "month_counts",
        "counted_facts",
        "lifetime_histogram",
        "month_boundaries",
        "visit_months",
        "customer_visits",
    ):
        op.drop_table(table)
