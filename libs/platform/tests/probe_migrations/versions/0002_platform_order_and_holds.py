"""The platform's tables gain per-aggregate publishing order and parking (outbox) and consumer holds."""

from pitlane_platform.migrations import upgrade_platform_tables

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    upgrade_platform_tables()


def downgrade() -> None:
    pass
