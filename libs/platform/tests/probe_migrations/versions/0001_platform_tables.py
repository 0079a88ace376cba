"""The platform's tables, as a service's first migration creates them."""

from pitlane_platform.migrations import create_platform_tables, drop_platform_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_platform_tables()


def downgrade() -> None:
    drop_platform_tables()
