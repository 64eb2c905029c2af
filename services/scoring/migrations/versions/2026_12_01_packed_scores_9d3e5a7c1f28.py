"""Scores pack their dimension percentiles, points and value sources (issue 11)

`scores.packed` (`services.scoring.scores.packed`) replaces the arrays
`dimension_percentiles`, `points` and `value_sources`: nothing reads them in SQL, and
receiving their 52 items one function call each was the largest part of writing a run's
scores. Existing rows are packed here, in SQL (big-endian, as `float8send` and `int4send`
write); an element a short or NULL array lacks packs as NaN (a source as 0, "none
recorded"), which is what every reader made of it.

Revision ID: 9d3e5a7c1f28
Revises: 3f9a0c2e7b51
Create Date: 2026-12-01 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d3e5a7c1f28"
down_revision: str | None = "3f9a0c2e7b51"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIMENSIONS = 4
_INDICATORS = 24


def _packed() -> str:
    parts = [f"float8send(coalesce(dimension_percentiles[{k}], 'NaN'))" for k in range(1, 5)]
    parts += [f"float8send(coalesce(points[{k}], 'NaN'))" for k in range(1, _INDICATORS + 1)]
    parts += [f"int4send(coalesce(value_sources[{k}], 0))" for k in range(1, _INDICATORS + 1)]
    return " || ".join(parts)


def upgrade() -> None:
    op.add_column("scores", sa.Column("packed", sa.LargeBinary(), nullable=True), schema="scoring")
    op.execute(f"UPDATE scoring.scores SET packed = {_packed()}")
    op.alter_column("scores", "packed", nullable=False, schema="scoring")
    for column in ("dimension_percentiles", "points", "value_sources"):
        op.drop_column("scores", column, schema="scoring")


# The bits of a big-endian double at byte `o` (1-based) of `b`, as a float8: SQL has no cast
# from bytes to a double, so sign, exponent and mantissa are taken apart and multiplied out
# (exact: a mantissa of at most 53 bits times a power of two).
_F8 = """
CREATE FUNCTION scoring._unpack_f8(b bytea, o int) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT AS $$
SELECT CASE
    WHEN e = 2047 AND m <> 0 THEN 'NaN'::float8
    WHEN e = 2047 THEN CASE WHEN neg THEN '-Infinity' ELSE 'Infinity' END::float8
    WHEN e = 0 THEN (CASE WHEN neg THEN -1 ELSE 1 END) * (m::float8 * 2::float8 ^ -1074)
    ELSE (CASE WHEN neg THEN -1 ELSE 1 END)
        * ((m + 4503599627370496)::float8 * 2::float8 ^ (e - 1075))
END
FROM (
    SELECT x < 0 AS neg, ((x >> 52) & 2047)::int AS e, x & 4503599627370495 AS m
    FROM (SELECT ('x' || encode(substring(b FROM o FOR 8), 'hex'))::bit(64)::bigint AS x) q
) r
$$
"""


def downgrade() -> None:
    op.add_column(
        "scores", sa.Column("dimension_percentiles", sa.ARRAY(sa.Double())), schema="scoring"
    )
    op.add_column("scores", sa.Column("points", sa.ARRAY(sa.Double())), schema="scoring")
    op.add_column("scores", sa.Column("value_sources", sa.ARRAY(sa.Integer())), schema="scoring")
    op.execute(_F8)
    dims = ", ".join(f"scoring._unpack_f8(packed, {1 + 8 * k})" for k in range(_DIMENSIONS))
    points = ", ".join(
        f"scoring._unpack_f8(packed, {1 + 8 * (_DIMENSIONS + k)})" for k in range(_INDICATORS)
    )
    at = 1 + 8 * (_DIMENSIONS + _INDICATORS)
    sources = ", ".join(
        f"('x' || encode(substring(packed FROM {at + 4 * k} FOR 4), 'hex'))::bit(32)::int"
        for k in range(_INDICATORS)
    )
    op.execute(
        f"UPDATE scoring.scores SET dimension_percentiles = ARRAY[{dims}]::float8[], "
        f"points = ARRAY[{points}]::float8[], value_sources = ARRAY[{sources}]::int[]"
    )
    op.execute("DROP FUNCTION scoring._unpack_f8(bytea, int)")
    for column in ("dimension_percentiles", "points"):
        op.alter_column("scores", column, nullable=False, schema="scoring")
    op.drop_column("scores", "packed", schema="scoring")
