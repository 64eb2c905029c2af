"""Facts partitioned by period (issue 11)

`facts` becomes a table partitioned by LIST (period), one partition per period
(`scoring.facts_<period>`, made by whoever writes a period's first facts: see
`services.scoring.imports.repository`). A period's first load then goes into a fresh table
whose indexes are built once when it is attached, rather than maintained row by row (at a
million rows: 7.7 s of server CPU with the two indexes maintained, 3.8 s without and ~1.8 s
to build them after; BENCHMARKS.md), and an evaluation scans only its period's rows. The
index on the period goes: a query of one period reads only that period's partition.

No partition is made for a period without facts, so a freshly migrated database has none.

Revision ID: 3f9a0c2e7b51
Revises: 5b7e2c9a1d40
Create Date: 2026-12-01 18:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f9a0c2e7b51"
down_revision: str | None = "5b7e2c9a1d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partition(period: int) -> str:
    # As services.scoring.imports.repository.facts_partition (a migration does not import
    # application code, which may change after it).
    return f"facts_{period}" if period >= 0 else f"facts_m{-period}"


def upgrade() -> None:
    op.execute("ALTER TABLE scoring.facts RENAME TO facts_unpartitioned")
    op.execute("ALTER TABLE scoring.facts_unpartitioned RENAME CONSTRAINT pk_facts TO pk_facts_old")
    op.execute("DROP INDEX scoring.ix_facts_period")
    op.execute(
        "CREATE TABLE scoring.facts (LIKE scoring.facts_unpartitioned INCLUDING DEFAULTS) "
        "PARTITION BY LIST (period)"
    )
    op.execute("ALTER TABLE scoring.facts ADD CONSTRAINT pk_facts PRIMARY KEY (uscc, period)")
    # No index on the period: a query of one period reads only its partition.
    periods = op.get_bind().exec_driver_sql(
        "SELECT DISTINCT period FROM scoring.facts_unpartitioned ORDER BY period"
    )
    for (period,) in periods.all():
        name = _partition(int(period))
        op.execute(
            f"CREATE TABLE scoring.{name} PARTITION OF scoring.facts FOR VALUES IN ({int(period)})"
        )
        op.execute(
            f"INSERT INTO scoring.{name} SELECT * FROM scoring.facts_unpartitioned "
            f"WHERE period = {int(period)}"
        )
    op.execute("DROP TABLE scoring.facts_unpartitioned")


def downgrade() -> None:
    op.execute("ALTER TABLE scoring.facts RENAME TO facts_partitioned")
    op.execute("ALTER TABLE scoring.facts_partitioned RENAME CONSTRAINT pk_facts TO pk_facts_old")
    op.execute("CREATE TABLE scoring.facts (LIKE scoring.facts_partitioned INCLUDING DEFAULTS)")
    op.execute("INSERT INTO scoring.facts SELECT * FROM scoring.facts_partitioned")
    op.execute("ALTER TABLE scoring.facts ADD CONSTRAINT pk_facts PRIMARY KEY (uscc, period)")
    op.execute("CREATE INDEX ix_facts_period ON scoring.facts (period)")
    op.execute("DROP TABLE scoring.facts_partitioned")
