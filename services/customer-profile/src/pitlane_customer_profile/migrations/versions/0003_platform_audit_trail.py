"""The platform's tables gain the audit trail of authenticated requests (audit_log, append-only)."""

from pitlane_platform.migrations import upgrade_platform_tables

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    upgrade_platform_tables()


def downgrade() -> None:
    # The previous release does not write the trail; dropping it would destroy the record of who did what.
    pass
