"""consents: a basis, a scope and an end (issue 10 item 6)

A consent was one row per enterprise and bank that lasted until the enterprise deleted it,
so a bank kept reading an enterprise that had withdrawn its application, in later periods
too. Now a consent has a basis (`application` or `explicit`), an application it is scoped
to, an optional expiry, and when and why it ended; a bank reads only under one in force.

Existing data follows the new rule:
- an `explicit` row stays an explicit consent in force, without expiry;
- every application of an enterprise to a bank it had a consent row for gets its own
  application consent, in the state its application is in: in force while open; once
  disbursed, expiring when the loan's term ends; ended (with the time and the reason) when
  withdrawn, rejected or closed. The old `application` rows are then removed.
Applications to a bank whose consent the enterprise had deleted get none: that deletion
stands.

The downgrade keeps, per enterprise and bank, one row for what is in force (preferring an
explicit consent), which is what the previous code can express; ended consents are dropped.

Revision ID: d770d76b121d
Revises: 5b1e7c2a9d40
Create Date: 2026-12-01 03:42:03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d770d76b121d"
down_revision: str | None = "5b1e7c2a9d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

END_REASONS = (
    "withdrawn",
    "application_withdrawn",
    "application_rejected",
    "loan_closed",
    "expired",
)


def upgrade() -> None:
    op.alter_column(
        "consents",
        "source",
        new_column_name="basis",
        type_=sa.String(length=16),
        schema="credit",
    )
    op.add_column(
        "consents",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        schema="credit",
    )
    op.add_column(
        "consents", sa.Column("application_id", sa.UUID(), nullable=True), schema="credit"
    )
    for column in ("expires_at", "ended_at"):
        op.add_column(
            "consents",
            sa.Column(column, sa.DateTime(timezone=True), nullable=True),
            schema="credit",
        )
    op.add_column(
        "consents", sa.Column("end_reason", sa.String(length=32), nullable=True), schema="credit"
    )
    op.drop_constraint("pk_consents", "consents", schema="credit", type_="primary")
    op.create_primary_key("pk_consents", "consents", ["id"], schema="credit")

    op.execute(
        """
        INSERT INTO credit.consents
            (id, uscc, bank_id, basis, application_id, granted_by, granted_at,
             expires_at, ended_at, end_reason)
        SELECT gen_random_uuid(), a.uscc, a.bank_id, 'application', a.id, a.created_by,
               a.created_at,
               CASE WHEN a.disbursed_at IS NOT NULL THEN a.disbursed_at
                    + make_interval(0, coalesce(a.approved_term_months, a.requested_term_months))
               END,
               -- a terminal status is the last transition: updated_at is when it ended
               CASE WHEN a.status IN ('withdrawn', 'rejected', 'closed') THEN a.updated_at END,
               CASE a.status
                    WHEN 'withdrawn' THEN 'application_withdrawn'
                    WHEN 'rejected' THEN 'application_rejected'
                    WHEN 'closed' THEN 'loan_closed'
               END
        FROM credit.applications a
        WHERE EXISTS (
            SELECT 1 FROM credit.consents c
            WHERE c.uscc = a.uscc AND c.bank_id = a.bank_id AND c.application_id IS NULL
        )
        """
    )
    op.execute("DELETE FROM credit.consents WHERE basis = 'application' AND application_id IS NULL")
    op.alter_column("consents", "id", server_default=None, schema="credit")

    op.create_check_constraint(
        op.f("ck_consents_basis"),
        "consents",
        "basis IN ('application', 'explicit')",
        schema="credit",
    )
    op.create_check_constraint(
        op.f("ck_consents_application_scope"),
        "consents",
        "(basis = 'application') = (application_id IS NOT NULL)",
        schema="credit",
    )
    op.create_check_constraint(
        op.f("ck_consents_end_reason"),
        "consents",
        "end_reason IN (" + ", ".join(f"'{r}'" for r in END_REASONS) + ")",
        schema="credit",
    )
    op.create_check_constraint(
        op.f("ck_consents_ended"),
        "consents",
        "(ended_at IS NULL) = (end_reason IS NULL)",
        schema="credit",
    )
    op.create_foreign_key(
        op.f("fk_consents_application_id_applications"),
        "consents",
        "applications",
        ["application_id"],
        ["id"],
        source_schema="credit",
        referent_schema="credit",
    )
    op.create_unique_constraint(
        op.f("uq_consents_application_id"), "consents", ["application_id"], schema="credit"
    )
    op.create_index(
        "ix_consents_uscc_bank_id", "consents", ["uscc", "bank_id"], unique=False, schema="credit"
    )
    op.create_index(
        "uq_consents_explicit_per_bank",
        "consents",
        ["uscc", "bank_id"],
        unique=True,
        schema="credit",
        postgresql_where=sa.text("basis = 'explicit' AND ended_at IS NULL"),
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM credit.consents
        WHERE id NOT IN (
            SELECT DISTINCT ON (uscc, bank_id) id FROM credit.consents
            WHERE ended_at IS NULL AND (expires_at IS NULL OR expires_at > now())
            ORDER BY uscc, bank_id, basis = 'explicit' DESC, granted_at
        )
        """
    )
    op.drop_index("uq_consents_explicit_per_bank", table_name="consents", schema="credit")
    op.drop_index("ix_consents_uscc_bank_id", table_name="consents", schema="credit")
    op.drop_constraint(
        op.f("uq_consents_application_id"), "consents", schema="credit", type_="unique"
    )
    op.drop_constraint(
        op.f("fk_consents_application_id_applications"),
        "consents",
        schema="credit",
        type_="foreignkey",
    )
    for check in ("ended", "end_reason", "application_scope", "basis"):
        op.drop_constraint(op.f(f"ck_consents_{check}"), "consents", schema="credit", type_="check")
    op.drop_constraint("pk_consents", "consents", schema="credit", type_="primary")
    op.create_primary_key("pk_consents", "consents", ["uscc", "bank_id"], schema="credit")
    for column in ("end_reason", "ended_at", "expires_at", "application_id", "id"):
        op.drop_column("consents", column, schema="credit")
    op.alter_column(
        "consents",
        "basis",
        new_column_name="source",
        type_=sa.String(length=32),
        schema="credit",
    )
