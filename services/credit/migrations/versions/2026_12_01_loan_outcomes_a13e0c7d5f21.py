"""loan outcomes: banks report each disbursed loan's performance (issue 13)

Append-only history of states (current, overdue 30/60/90+, default, repaid) with their dates
and the principal outstanding, for model validation.

Revision ID: a13e0c7d5f21
Revises: d770d76b121d
Create Date: 2026-12-01 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a13e0c7d5f21"
down_revision: str | None = "d770d76b121d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = ("current", "repaid", "overdue_30", "overdue_60", "overdue_90_plus", "default")


def upgrade() -> None:
    op.create_table(
        "loan_outcomes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("application_id", postgresql.UUID(), nullable=False),
        sa.Column("bank_id", sa.String(length=64), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("outstanding", sa.BigInteger(), nullable=False),
        sa.Column("synthetic", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("reported_by", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in STATES) + ")",
            name=op.f("ck_loan_outcomes_state"),
        ),
        sa.CheckConstraint("outstanding >= 0", name=op.f("ck_loan_outcomes_outstanding")),
        sa.CheckConstraint(
            "state <> 'repaid' OR outstanding = 0",
            name=op.f("ck_loan_outcomes_repaid_nothing_left"),
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["credit.applications.id"],
            name=op.f("fk_loan_outcomes_application_id_applications"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["credit.banks.id"], name=op.f("fk_loan_outcomes_bank_id_banks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_outcomes")),
        schema="credit",
    )
    op.create_index(
        "uq_loan_outcomes_natural",
        "loan_outcomes",
        ["application_id", "as_of", "state"],
        unique=True,
        schema="credit",
    )
    op.create_index(
        "uq_loan_outcomes_idempotency",
        "loan_outcomes",
        ["bank_id", "idempotency_key"],
        unique=True,
        schema="credit",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index("ix_loan_outcomes_bank_id", "loan_outcomes", ["bank_id", "id"], schema="credit")
    op.create_index("ix_loan_outcomes_uscc", "loan_outcomes", ["uscc", "id"], schema="credit")
    op.create_index(
        "ix_loan_outcomes_period", "loan_outcomes", ["period", "application_id"], schema="credit"
    )


def downgrade() -> None:
    op.drop_table("loan_outcomes", schema="credit")
