"""The platform's tables, then customer-profile's read model, vault and audit tables."""

from alembic import op

from pitlane_platform.migrations import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None

OWN_TABLES = (
    "customers",
    "customer_phones",
    "vehicles",
    "vehicle_mileage",
    "visits",
    "work_order_refs",
    "declined_add_ons",
    "reminders",
    "profile_reads",
    "customer_data_keys",
    "erasures",
    "custom_field_schema",
)


def upgrade() -> None:
    from pitlane_customer_profile.adapters.tables import metadata

    create_platform_tables()
    metadata.create_all(op.get_bind(), tables=[metadata.tables[name] for name in OWN_TABLES])


def downgrade() -> None:
    from pitlane_customer_profile.adapters.tables import metadata

    metadata.drop_all(op.get_bind(), tables=[metadata.tables[name] for name in OWN_TABLES])
    drop_platform_tables()
