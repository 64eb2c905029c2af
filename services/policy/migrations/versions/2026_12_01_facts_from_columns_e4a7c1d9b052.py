"""an enterprise's facts read from the population's columns; pushes stored per enterprise

`enterprise_facts.facts` (a JSON document per enterprise, the same facts as the columns of
`population_columns`) is no longer written: an enterprise's facts mapping is built from its
entry in the columns when an explanation needs it. The column stays, nullable, for a
population stored before the columns existed.

`pushes` (a row per push) becomes `push_batches` (what one recompute pushed: its rules and
their titles), `push_sets` (an enterprise's pushes of a batch: ids from `first_id` on, a
rule index and a status per push, as bytes) and `push_reads` (when a push was marked read).
A view named `pushes` shows them as the table's rows. Existing pushes are converted, with
their ids, times and read marks; new ids continue from the sequence `push_ids`.

Revision ID: e4a7c1d9b052
Revises: 3c5f1e8a9d27
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e4a7c1d9b052"
down_revision: str | None = "3c5f1e8a9d27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUSHES_VIEW = """
CREATE VIEW policy.pushes AS
SELECT s.first_id + k AS id, s.uscc,
       b.rule_keys[get_byte(s.rules, k) + 1] AS rule_key,
       b.titles[get_byte(s.rules, k) + 1] AS title,
       get_byte(s.statuses, k)::smallint AS status,
       b.run_id, b.created_at, r.read_at
FROM policy.push_sets s
JOIN policy.push_batches b ON b.id = s.batch_id
CROSS JOIN LATERAL generate_series(0, length(s.statuses) - 1) AS k
LEFT JOIN policy.push_reads r ON r.uscc = s.uscc AND r.id = s.first_id + k
"""


def upgrade() -> None:
    op.alter_column("enterprise_facts", "facts", nullable=True, schema="policy")
    op.create_table(
        "push_batches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column("rule_keys", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("titles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_batches")),
        schema="policy",
    )
    op.create_table(
        "push_sets",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("rules", sa.LargeBinary(), nullable=False),
        sa.Column("statuses", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("uscc", "first_id", name="pk_push_sets"),
        schema="policy",
    )
    op.create_table(
        "push_reads",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uscc", "id", name="pk_push_reads"),
        schema="policy",
    )
    # Every existing push becomes a set of one, in a batch per (run, time): the pushes of
    # one recompute, as new batches are.
    op.execute(
        """
        INSERT INTO policy.push_batches (run_id, rule_keys, titles, created_at)
        SELECT run_id, array_agg(rule_key ORDER BY rule_key, title),
               array_agg(title ORDER BY rule_key, title), created_at
        FROM (SELECT DISTINCT run_id, created_at, rule_key, title FROM policy.pushes) d
        GROUP BY run_id, created_at
        """
    )
    op.execute(
        """
        INSERT INTO policy.push_sets (uscc, first_id, batch_id, rules, statuses)
        SELECT p.uscc, p.id, b.id,
               set_byte('\\x00'::bytea, 0, (
                   SELECT k - 1 FROM generate_subscripts(b.rule_keys, 1) AS k
                   WHERE b.rule_keys[k] = p.rule_key AND b.titles[k] = p.title LIMIT 1)),
               set_byte('\\x00'::bytea, 0, p.status)
        FROM policy.pushes p
        JOIN policy.push_batches b
          ON b.run_id IS NOT DISTINCT FROM p.run_id AND b.created_at = p.created_at
        """
    )
    op.execute(
        "INSERT INTO policy.push_reads (uscc, id, read_at) "
        "SELECT uscc, id, read_at FROM policy.pushes WHERE read_at IS NOT NULL"
    )
    op.execute("CREATE SEQUENCE policy.push_ids")
    op.execute(
        "SELECT setval('policy.push_ids', coalesce(max(id), 0) + 1, false) FROM policy.pushes"
    )
    op.drop_table("pushes", schema="policy")
    op.execute(PUSHES_VIEW)


def downgrade() -> None:
    op.execute("ALTER VIEW policy.pushes RENAME TO pushes_view")
    op.create_table(
        "pushes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("rule_key", sa.String(length=80), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("uscc", "id", name="pk_pushes"),
        schema="policy",
    )
    op.execute(
        "INSERT INTO policy.pushes (id, uscc, rule_key, title, status, run_id, created_at, "
        "read_at) OVERRIDING SYSTEM VALUE SELECT id, uscc, rule_key, title, status, run_id, "
        "created_at, read_at FROM policy.pushes_view"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('policy.pushes', 'id'), "
        "coalesce(max(id), 0) + 1, false) FROM policy.pushes"
    )
    op.execute("DROP VIEW policy.pushes_view")
    op.execute("DROP SEQUENCE policy.push_ids")
    op.drop_table("push_reads", schema="policy")
    op.drop_table("push_sets", schema="policy")
    op.drop_table("push_batches", schema="policy")
    # Rows stored since have no document: an empty one, until the next evaluation rewrites it.
    op.execute("UPDATE policy.enterprise_facts SET facts = '{}'::jsonb WHERE facts IS NULL")
    op.alter_column("enterprise_facts", "facts", nullable=False, schema="policy")
