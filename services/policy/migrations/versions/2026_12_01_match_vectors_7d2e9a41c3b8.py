"""matches as per-rule vectors; the population's facts as columns

`matches` (one row per enterprise and rule, with every criterion's result and gap as JSON)
becomes `rule_matches` (per rule: the statuses and failing criteria of every enterprise as
vectors, with the rule as matched); the explanation is computed on demand. A view named
`matches` shows the vectors as rows (status and failing criterion ids). The facts are also
kept as columns (`population_columns`) for bulk matching; enterprises get their `position` in
those vectors.

Existing matches are not converted: the service recomputes, at startup, every rule without
stored vectors for the current evaluation, and rebuilds the fact columns from the stored
facts when they are missing.

Revision ID: 7d2e9a41c3b8
Revises: b4c415d5879c
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7d2e9a41c3b8"
down_revision: str | None = "b4c415d5879c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The vectors as one row per enterprise and rule, for ad-hoc SQL (and reports): status, and
# the ids of the criteria failed. OFFSET 0 keeps the subquery from being flattened, so each
# rule's vectors are fetched once (`|| ''` makes them plain values), not once per enterprise.
MATCHES_VIEW = """
CREATE VIEW policy.matches AS
SELECT m.rule_key, f.uscc, get_byte(m.statuses, f.position)::smallint AS status,
       ARRAY(
           SELECT m.leaves[k + 1] FROM generate_series(0, cardinality(m.leaves) - 1) AS k
           WHERE get_bit(m.failing, f.position * m.width * 8 + k) = 1
           ORDER BY k
       ) AS failing
FROM (
    SELECT rule_key, run_id, leaves, (cardinality(leaves) + 7) / 8 AS width,
           statuses || ''::bytea AS statuses, failing || ''::bytea AS failing
    FROM policy.rule_matches
    OFFSET 0
) m
JOIN policy.enterprise_facts f ON f.run_id = m.run_id
"""


def upgrade() -> None:
    op.add_column(
        "enterprise_facts", sa.Column("position", sa.Integer(), nullable=True), schema="policy"
    )
    # Byte order, as Python sorts the codes when it stores a population.
    op.execute(
        """
        UPDATE policy.enterprise_facts f SET position = r.pos
        FROM (
            SELECT uscc, row_number() OVER (ORDER BY uscc COLLATE "C") - 1 AS pos
            FROM policy.enterprise_facts
        ) r
        WHERE r.uscc = f.uscc
        """
    )
    op.alter_column("enterprise_facts", "position", nullable=False, schema="policy")
    op.drop_table("matches", schema="policy")
    op.create_table(
        "rule_matches",
        sa.Column("rule_key", sa.String(length=80), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("policy_id", sa.UUID(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("rule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("near_max", sa.SmallInteger(), nullable=False),
        sa.Column("leaves", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("enterprises", sa.Integer(), nullable=False),
        sa.Column("statuses", sa.LargeBinary(), nullable=False),
        sa.Column("failing", sa.LargeBinary(), nullable=False),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("rule_key", name=op.f("pk_rule_matches")),
        schema="policy",
    )
    op.create_table(
        "population_columns",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("dtype", sa.String(length=8), nullable=False),
        sa.Column("vocabulary", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_population_columns")),
        schema="policy",
    )
    # Uncompressed out-of-line storage: a substring of the value fetches only its chunk.
    for table, column in (
        ("rule_matches", "statuses"),
        ("rule_matches", "failing"),
        ("population_columns", "data"),
    ):
        op.execute(f"ALTER TABLE policy.{table} ALTER COLUMN {column} SET STORAGE EXTERNAL")
    op.execute(MATCHES_VIEW)
    # Pushes keyed by enterprise: one index instead of three (see models.Push).
    op.drop_index("ix_pushes_uscc_rule_key", table_name="pushes", schema="policy")
    op.drop_index("ix_pushes_uscc_id", table_name="pushes", schema="policy")
    op.drop_constraint("pk_pushes", "pushes", schema="policy", type_="primary")
    op.create_primary_key("pk_pushes", "pushes", ["uscc", "id"], schema="policy")


def downgrade() -> None:
    op.drop_constraint("pk_pushes", "pushes", schema="policy", type_="primary")
    op.create_primary_key("pk_pushes", "pushes", ["id"], schema="policy")
    op.create_index("ix_pushes_uscc_id", "pushes", ["uscc", "id"], unique=False, schema="policy")
    op.create_index(
        "ix_pushes_uscc_rule_key", "pushes", ["uscc", "rule_key"], unique=False, schema="policy"
    )
    op.execute("DROP VIEW policy.matches")
    op.drop_table("population_columns", schema="policy")
    op.drop_table("rule_matches", schema="policy")
    op.create_table(
        "matches",
        sa.Column("rule_key", sa.String(length=80), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("rule_key", "uscc", name=op.f("pk_matches")),
        schema="policy",
    )
    op.drop_column("enterprise_facts", "position", schema="policy")
