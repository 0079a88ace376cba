"""Staff shifts and the booking rules a chain sets per branch (issue 16; filled in by its change)."""

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
