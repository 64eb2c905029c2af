"""Lines computed when read; scores partitioned by run (issue 11)

`credit_lines` stops being a table rewritten at every publication (three million rows and a
168 MB index at a million enterprises, most of the feed catch-up's server CPU) and becomes a
view computing each line from the stored score and the published product version's rule
when read, the same rule as `services.credit.lines.rules` (the tests hold the two equal).
Reading one enterprise's lines costs the same lookup as before; a product published or
withdrawn changes them at once, with nothing to recompute.

The rule's bands are kept with each product version as generated columns, in the order the
view searches them (`width_bucket`): `line_mins`, the bands' minimums ascending (ties in the
reverse of their order in the rule, as `LineRule` sorts them), `line_amounts`, the base amount
then each band's amount in that order, and `line_by_tier`, whether the rule's basis is the
tier. Band `k` of `LineRule.bands` (highest minimum first) is then entry
`cardinality(line_mins) - k` of them.

`enterprise_scores` becomes a table partitioned by LIST (run_id), a partition per run
(`enterprise_scores_<run hex>`, see `shared.partitions`): the feed sync copies a run into a
fresh table and drops the previous run's partition instead of deleting a million rows.

The lines' generation (`line_generation`, what readers key what they derive from the lines
on) was counted by a statement trigger on the `credit_lines` table; the lines now change
when what they are computed from does, so the same trigger counts every statement writing
the scores, the products or their versions instead (a new run is a new run id besides).

Revision ID: c41d7e2a9b63
Revises: 4c9d2e7f1a36
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c41d7e2a9b63"
down_revision: str | None = "4c9d2e7f1a36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BANDS = (
    "jsonb_array_elements(CASE jsonb_typeof(rule->'bands') WHEN 'array' THEN rule->'bands' "
    "ELSE '[]'::jsonb END) WITH ORDINALITY e(band, n)"
)
_ORDER = "ORDER BY (e.band->>'min')::float8, e.n DESC"

FUNCTIONS = (
    f"""
CREATE FUNCTION credit.line_band_mins(rule jsonb) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg((e.band->>'min')::float8 {_ORDER}), '{{}}') FROM {_BANDS}
$$
""",
    f"""
CREATE FUNCTION credit.line_band_amounts(rule jsonb) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[(rule->>'base_amount')::bigint]
           || coalesce(array_agg((e.band->>'amount')::bigint {_ORDER}), '{{}}')
    FROM {_BANDS}
$$
""",
)

# A line for every enterprise of the current evaluation and every published product version
# whose conditions it meets (`rules.ineligibility`): the amount of the highest band its
# percentile or tier reaches (`width_bucket`: how many minimums it reaches; a missing value
# reaches none), else the base amount, at most the product's maximum.
LINES_VIEW = """
CREATE VIEW credit.credit_lines AS
SELECT s.uscc, v.product_id, v.version AS product_version, s.run_id,
       least(v.line_amounts[b.reached + 1], v.max_amount) AS amount,
       (CASE WHEN b.reached = 0 THEN -1 ELSE cardinality(v.line_mins) - b.reached END)::smallint
           AS band
FROM credit.enterprise_scores s
JOIN credit.product_versions v ON s.stage = ANY (v.eligible_stages)
JOIN credit.products p
  ON p.id = v.product_id AND p.published_version = v.version AND p.status = 'published'
CROSS JOIN LATERAL (
    SELECT coalesce(width_bucket(
        nullif(CASE WHEN v.line_by_tier THEN s.tier::float8 ELSE s.percentile END, 'NaN'),
        v.line_mins), 0) AS reached
) b
WHERE s.scored AND coalesce(s.exclusion, '') = ''
  AND (v.min_tier IS NULL OR coalesce(s.tier, 0) >= v.min_tier)
  AND (v.min_percentile IS NULL OR coalesce(nullif(s.percentile, 'NaN'), 0) >= v.min_percentile)
  AND s.run_id = (SELECT e.run_id FROM credit.evaluations e
                  ORDER BY e.period DESC, e.event_id DESC LIMIT 1)
"""


# What the lines are computed from: a statement writing any of them changes the lines.
LINE_INPUTS = ("enterprise_scores", "products", "product_versions")


def _scores_partition(run_id: object) -> str:
    # As shared.partitions.run_partition (a migration does not import application code,
    # which may change after it).
    return "enterprise_scores_" + str(run_id).replace("-", "")


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(function)
    op.execute(
        "ALTER TABLE credit.product_versions "
        "ADD COLUMN line_mins float8[] "
        "GENERATED ALWAYS AS (credit.line_band_mins(line_rule)) STORED, "
        "ADD COLUMN line_amounts bigint[] "
        "GENERATED ALWAYS AS (credit.line_band_amounts(line_rule)) STORED, "
        "ADD COLUMN line_by_tier boolean "
        "GENERATED ALWAYS AS (coalesce(line_rule->>'basis', 'percentile') = 'tier') STORED"
    )

    op.execute("ALTER TABLE credit.enterprise_scores RENAME TO enterprise_scores_unpartitioned")
    op.execute(
        "ALTER TABLE credit.enterprise_scores_unpartitioned "
        "RENAME CONSTRAINT pk_enterprise_scores TO pk_enterprise_scores_old"
    )
    op.execute(
        "CREATE TABLE credit.enterprise_scores "
        "(LIKE credit.enterprise_scores_unpartitioned INCLUDING DEFAULTS) "
        "PARTITION BY LIST (run_id)"
    )
    op.execute(
        "ALTER TABLE credit.enterprise_scores "
        "ADD CONSTRAINT pk_enterprise_scores PRIMARY KEY (run_id, uscc)"
    )
    runs = op.get_bind().exec_driver_sql(
        "SELECT DISTINCT run_id FROM credit.enterprise_scores_unpartitioned ORDER BY run_id"
    )
    for (run_id,) in runs.all():
        name = _scores_partition(run_id)
        op.execute(
            f"CREATE TABLE credit.{name} PARTITION OF credit.enterprise_scores "
            f"FOR VALUES IN ('{run_id}')"
        )
        op.execute(
            f"INSERT INTO credit.{name} SELECT * FROM credit.enterprise_scores_unpartitioned "
            f"WHERE run_id = '{run_id}'"
        )
    op.execute("DROP TABLE credit.enterprise_scores_unpartitioned")

    op.execute("DROP TABLE credit.credit_lines")  # and its trigger
    op.execute(LINES_VIEW)
    for table in LINE_INPUTS:
        op.execute(
            f"CREATE TRIGGER count_line_changes "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON credit.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION credit.count_line_changes()"
        )


def downgrade() -> None:
    for table in LINE_INPUTS:
        op.execute(f"DROP TRIGGER count_line_changes ON credit.{table}")
    op.execute("CREATE TABLE credit.lines_computed AS SELECT * FROM credit.credit_lines")
    op.execute("DROP VIEW credit.credit_lines")
    op.execute("ALTER TABLE credit.lines_computed RENAME TO credit_lines")
    for column in ("uscc", "product_id", "product_version", "run_id", "amount", "band"):
        op.execute(f"ALTER TABLE credit.credit_lines ALTER COLUMN {column} SET NOT NULL")
    op.execute(
        "ALTER TABLE credit.credit_lines ADD CONSTRAINT pk_credit_lines "
        "PRIMARY KEY (uscc, product_id)"
    )
    op.execute(
        "CREATE TRIGGER count_line_changes "
        "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON credit.credit_lines "
        "FOR EACH STATEMENT EXECUTE FUNCTION credit.count_line_changes()"
    )

    op.execute("ALTER TABLE credit.enterprise_scores RENAME TO enterprise_scores_partitioned")
    op.execute(
        "ALTER TABLE credit.enterprise_scores_partitioned "
        "RENAME CONSTRAINT pk_enterprise_scores TO pk_enterprise_scores_old"
    )
    op.execute(
        "CREATE TABLE credit.enterprise_scores "
        "(LIKE credit.enterprise_scores_partitioned INCLUDING DEFAULTS)"
    )
    op.execute(
        "INSERT INTO credit.enterprise_scores SELECT * FROM credit.enterprise_scores_partitioned"
    )
    op.execute(
        "ALTER TABLE credit.enterprise_scores "
        "ADD CONSTRAINT pk_enterprise_scores PRIMARY KEY (run_id, uscc)"
    )
    op.execute("DROP TABLE credit.enterprise_scores_partitioned")

    op.execute(
        "ALTER TABLE credit.product_versions DROP COLUMN line_mins, DROP COLUMN line_amounts, "
        "DROP COLUMN line_by_tier"
    )
    op.execute("DROP FUNCTION credit.line_band_amounts(jsonb)")
    op.execute("DROP FUNCTION credit.line_band_mins(jsonb)")
