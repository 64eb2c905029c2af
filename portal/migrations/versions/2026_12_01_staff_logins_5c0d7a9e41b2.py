"""staff sign-ins under way (state, nonce and PKCE verifier kept server side)

Revision ID: 5c0d7a9e41b2
Revises: ea7248370e58
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0d7a9e41b2"
down_revision: str | None = "ea7248370e58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_logins",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=128), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_staff_logins")),
        schema="portal",
    )
    op.create_index(
        "ix_staff_logins_expires_at", "staff_logins", ["expires_at"], unique=False, schema="portal"
    )


def downgrade() -> None:
    op.drop_index("ix_staff_logins_expires_at", table_name="staff_logins", schema="portal")
    op.drop_table("staff_logins", schema="portal")
