"""The platform's tables gain the durable timers (timers; ADR 15)."""

from pitlane_platform.migrations import upgrade_platform_tables

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    upgrade_platform_tables()


def downgrade() -> None:
    # The previous release has no timers; a pending timer dropped here would be a reminder never sent.
    pass
