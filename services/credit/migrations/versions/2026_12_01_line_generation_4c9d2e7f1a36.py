"""count the statements that change the lines (the key of what readers derive from them)

Revision ID: 4c9d2e7f1a36
Revises: 8e3f1a6c52d7
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4c9d2e7f1a36"
down_revision: str | None = "8e3f1a6c52d7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "line_generation",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_line_generation_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_line_generation")),
        schema="credit",
    )
    op.execute("INSERT INTO credit.line_generation DEFAULT VALUES")
    # Per statement, not per row: a full recomputation is one TRUNCATE and one COPY of
    # millions of lines, and costs two updates of this row.
    op.execute(
        """
        CREATE FUNCTION credit.count_line_changes() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE credit.line_generation SET generation = generation + 1;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER count_line_changes "
        "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON credit.credit_lines "
        "FOR EACH STATEMENT EXECUTE FUNCTION credit.count_line_changes()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER count_line_changes ON credit.credit_lines")
    op.execute("DROP FUNCTION credit.count_line_changes()")
    op.drop_table("line_generation", schema="credit")
