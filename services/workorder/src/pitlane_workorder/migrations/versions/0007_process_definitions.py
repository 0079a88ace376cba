"""Chains' process definitions and each work order's stages under them (issue 16; filled in by its change)."""

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
