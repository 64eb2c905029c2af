"""Enterprise facts partitioned by run (issue 11)

`enterprise_facts` becomes a table partitioned by LIST (run_id), a partition per run
(`enterprise_facts_<run hex>`, see `shared.partitions`): the feed sync copies a new run's
million rows into a fresh table (indexes built once when it is attached) and drops the
previous run's partition, instead of deleting a million rows and inserting a million more
into the same indexed table (each new key then met its dead twin in the index: the COPY
took ~11 s of server CPU at a million enterprises over a previous evaluation, ~5 s into an
empty table, ~1 s into the fresh one). The primary key takes the
run as a partition's key must: (uscc, run_id); one run is stored at a time, so a code still
names one row. `policy.matches` is made again over the partitioned table.

Revision ID: 5e8b2d7c4a19
Revises: e4a7c1d9b052
Create Date: 2026-12-02 09:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5e8b2d7c4a19"
down_revision: str | None = "e4a7c1d9b052"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As made by 7d2e9a41c3b8 (a migration does not import another's code).
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


def _partition(run_id: object) -> str:
    # As shared.partitions.run_partition.
    return "enterprise_facts_" + str(run_id).replace("-", "")


def upgrade() -> None:
    op.execute("DROP VIEW policy.matches")
    op.execute("ALTER TABLE policy.enterprise_facts RENAME TO enterprise_facts_unpartitioned")
    op.execute(
        "ALTER TABLE policy.enterprise_facts_unpartitioned "
        "RENAME CONSTRAINT pk_enterprise_facts TO pk_enterprise_facts_old"
    )
    op.execute(
        "ALTER INDEX policy.ix_enterprise_facts_stage RENAME TO ix_enterprise_facts_stage_old"
    )
    op.execute(
        "CREATE TABLE policy.enterprise_facts "
        "(LIKE policy.enterprise_facts_unpartitioned INCLUDING DEFAULTS) "
        "PARTITION BY LIST (run_id)"
    )
    op.execute(
        "ALTER TABLE policy.enterprise_facts "
        "ADD CONSTRAINT pk_enterprise_facts PRIMARY KEY (uscc, run_id)"
    )
    op.execute("CREATE INDEX ix_enterprise_facts_stage ON policy.enterprise_facts (stage)")
    runs = op.get_bind().exec_driver_sql(
        "SELECT DISTINCT run_id FROM policy.enterprise_facts_unpartitioned ORDER BY run_id"
    )
    for (run_id,) in runs.all():
        name = _partition(run_id)
        op.execute(
            f"CREATE TABLE policy.{name} PARTITION OF policy.enterprise_facts "
            f"FOR VALUES IN ('{run_id}')"
        )
        op.execute(
            f"INSERT INTO policy.{name} SELECT * FROM policy.enterprise_facts_unpartitioned "
            f"WHERE run_id = '{run_id}'"
        )
    op.execute("DROP TABLE policy.enterprise_facts_unpartitioned")
    op.execute(MATCHES_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW policy.matches")
    op.execute("ALTER TABLE policy.enterprise_facts RENAME TO enterprise_facts_partitioned")
    op.execute(
        "ALTER TABLE policy.enterprise_facts_partitioned "
        "RENAME CONSTRAINT pk_enterprise_facts TO pk_enterprise_facts_old"
    )
    op.execute(
        "ALTER INDEX policy.ix_enterprise_facts_stage RENAME TO ix_enterprise_facts_stage_old"
    )
    op.execute(
        "CREATE TABLE policy.enterprise_facts "
        "(LIKE policy.enterprise_facts_partitioned INCLUDING DEFAULTS)"
    )
    op.execute(
        "INSERT INTO policy.enterprise_facts SELECT * FROM policy.enterprise_facts_partitioned"
    )
    op.execute(
        "ALTER TABLE policy.enterprise_facts ADD CONSTRAINT pk_enterprise_facts PRIMARY KEY (uscc)"
    )
    op.execute("CREATE INDEX ix_enterprise_facts_stage ON policy.enterprise_facts (stage)")
    op.execute("DROP TABLE policy.enterprise_facts_partitioned")
    op.execute(MATCHES_VIEW)
