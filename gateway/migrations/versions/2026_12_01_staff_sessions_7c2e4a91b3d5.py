"""staff sessions: a session's kind, bank, role and provider; consumed ID tokens

Sessions were enterprises' alone; staff signed in through their organisation's OpenID
Connect provider get sessions too. Additive: existing rows become `kind = 'enterprise'`,
and the enterprise-only columns merely become nullable.

Revision ID: 7c2e4a91b3d5
Revises: 2615d9155562
Create Date: 2026-12-01 05:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "7c2e4a91b3d5"
down_revision: str | None = "2615d9155562"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENTERPRISE_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("uscc", sa.String(length=18)),
    ("company_name", sa.Text()),
    ("esso_user_id", sa.Text()),
    ("real_level", sa.SmallInteger()),
)


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("kind", sa.String(length=16), server_default="enterprise", nullable=False),
        schema="gateway",
    )
    staff_columns: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
        ("bank_id", sa.String(length=64)),
        ("role", sa.String(length=16)),
        ("issuer", sa.Text()),
        ("subject", sa.Text()),
        ("client_id", sa.String(length=64)),
    )
    for name, type_ in staff_columns:
        op.add_column("sessions", sa.Column(name, type_, nullable=True), schema="gateway")
    for name, type_ in _ENTERPRISE_COLUMNS:
        op.alter_column("sessions", name, existing_type=type_, nullable=True, schema="gateway")
    op.create_check_constraint(
        op.f("ck_sessions_kind"),
        "sessions",
        "kind IN ('enterprise', 'government', 'bank')",
        schema="gateway",
    )
    op.create_check_constraint(
        op.f("ck_sessions_enterprise_fields"),
        "sessions",
        "kind <> 'enterprise' OR (uscc IS NOT NULL AND esso_user_id IS NOT NULL)",
        schema="gateway",
    )
    op.create_check_constraint(
        op.f("ck_sessions_staff_fields"),
        "sessions",
        "kind = 'enterprise' OR (role IN ('viewer', 'operator') AND issuer IS NOT NULL "
        "AND subject IS NOT NULL AND client_id IS NOT NULL)",
        schema="gateway",
    )
    op.create_check_constraint(
        op.f("ck_sessions_bank_id"),
        "sessions",
        "(kind = 'bank') = (bank_id IS NOT NULL)",
        schema="gateway",
    )
    op.create_table(
        "consumed_id_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_consumed_id_tokens")),
        schema="gateway",
    )
    op.create_index(
        "ix_consumed_id_tokens_expires_at",
        "consumed_id_tokens",
        ["expires_at"],
        unique=False,
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_consumed_id_tokens_expires_at", table_name="consumed_id_tokens", schema="gateway"
    )
    op.drop_table("consumed_id_tokens", schema="gateway")
    # Staff sessions cannot live in the old shape.
    op.execute("DELETE FROM gateway.sessions WHERE kind <> 'enterprise'")
    for name in ("bank_id", "staff_fields", "enterprise_fields", "kind"):
        op.drop_constraint(f"ck_sessions_{name}", "sessions", type_="check", schema="gateway")
    for name, type_ in _ENTERPRISE_COLUMNS:
        op.alter_column("sessions", name, existing_type=type_, nullable=False, schema="gateway")
    for name in ("client_id", "subject", "issuer", "role", "bank_id", "kind"):
        op.drop_column("sessions", name, schema="gateway")
