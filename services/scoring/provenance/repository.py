"""Facts with their provenance in SQL: the one upsert every writer of facts uses, and the
reads of sources and of a value's changes.

The upsert is built here once for the import and the bulk loader. Per value column it keeps
a value whose source outranks the writer (`protected` source ids), records the writer as the
source of every value it changes (and of every value of a new row), and appends each changed
value to `fact_changes`, all in one statement: the old rows are read in the statement's own
snapshot, so the history can never disagree with what was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import FACT_VALUE_COLUMNS, FactChange, Source

SOURCE_INDEX: dict[str, int] = {c: k + 1 for k, c in enumerate(FACT_VALUE_COLUMNS)}  # 1-based


def fact_upsert_sql(
    select_sql: str,
    value_cols: Sequence[str],
    *,
    source: str,
    protected: str,
    import_id: str,
    table: str,
) -> str:
    """The upsert of facts from `select_sql`, which yields (uscc, period, enterprise_id, then
    `value_cols` in order). `source`, `protected` and `import_id` are SQL expressions (usually
    parameters): the writer's source id, the ids it may not overwrite, the import or NULL.
    `table` is the partition of `facts` of the rows' one period: whether a row was inserted
    is read from its `xmax`, which a partitioned table does not return.

    The statement answers one row: `inserted`, `written` (inserted + updated) and `kept`
    (values left alone because a source of higher precedence set them).
    """
    cols = [f'"{c}"' for c in value_cols]

    def keep(alias: str, c: str) -> str:
        return f"coalesce({alias}.sources[{SOURCE_INDEX[c]}] = ANY({protected}), false)"

    effective = {
        c: f'CASE WHEN {keep("f", c)} THEN f."{c}" ELSE EXCLUDED."{c}" END' for c in value_cols
    }
    new_row_sources = ", ".join(
        f"{source if c in value_cols else 'NULL'}::int" for c in FACT_VALUE_COLUMNS
    )
    updated_sources = ", ".join(
        (
            f'CASE WHEN {keep("f", c)} OR f."{c}" IS NOT DISTINCT FROM EXCLUDED."{c}" '
            f"THEN f.sources[{k}] ELSE {source}::int END"
        )
        if c in value_cols
        else f"f.sources[{k}]"
        for c, k in SOURCE_INDEX.items()
    )
    set_list = ", ".join(f'"{c}" = {effective[c]}' for c in value_cols)
    old_vals = ", ".join(f'f."{c}"' for c in value_cols)
    new_vals = ", ".join(effective[c] for c in value_cols)
    changes = ", ".join(
        f'(\'{c}\', {SOURCE_INDEX[c]}, to_jsonb(o."{c}"), to_jsonb(u."{c}"), '
        f'o."{c}" IS DISTINCT FROM u."{c}")'
        for c in value_cols
    )
    kept = " + ".join(
        f'({keep("o", c)} AND o."{c}" IS DISTINCT FROM q."{c}")::int' for c in value_cols
    )
    if value_cols:
        conflict = (
            f"DO UPDATE SET {set_list}, sources = ARRAY[{updated_sources}], "
            f"import_id = EXCLUDED.import_id, updated_at = now() "
            f"WHERE ({old_vals}, NULL::int) IS DISTINCT FROM ({new_vals}, NULL::int)"
        )
        history = (
            ", hist AS (INSERT INTO scoring.fact_changes "
            "(uscc, period, field, old_value, new_value, old_source_id, source_id) "
            "SELECT u.uscc, u.period, v.field, v.old, v.new, o.sources[v.k], u.sources[v.k] "
            "FROM up u JOIN old o ON o.uscc = u.uscc AND o.period = u.period "
            f"CROSS JOIN LATERAL (VALUES {changes}) AS v(field, k, old, new, changed) "
            "WHERE v.changed) "
        )
        kept_sql = (
            f"(SELECT coalesce(sum({kept}), 0) FROM old o "
            "JOIN q ON q.uscc = o.uscc AND q.period = o.period)"
        )
    else:
        conflict, history, kept_sql = "DO NOTHING", " ", "0"
    col_list = ", ".join(cols)
    prefixed = ", ".join(f"q.{c}" for c in cols)
    returned = ", ".join(f"f.{c}" for c in cols)
    return (
        f"WITH q AS ({select_sql}), "
        f"old AS (SELECT f.uscc, f.period, f.sources{', ' if cols else ''}{old_vals} "
        f"FROM {table} f JOIN q ON q.uscc = f.uscc AND q.period = f.period), "
        f"up AS (INSERT INTO {table} AS f "
        f"(uscc, period, enterprise_id{', ' if cols else ''}{col_list}, sources, import_id) "
        f"SELECT q.uscc, q.period, q.enterprise_id{', ' if cols else ''}{prefixed}, "
        f"ARRAY[{new_row_sources}], {import_id} FROM q "
        f"ON CONFLICT (uscc, period) {conflict} "
        f"RETURNING f.uscc, f.period, (xmax = 0) AS inserted, f.sources"
        f"{', ' if cols else ''}{returned})"
        f"{history}"
        "SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) AS written, "
        # The parameters are named here too, so their types are known with no value column.
        f"{kept_sql} AS kept, {source} AS source_id, cardinality({protected}) AS protected "
        "FROM up"
    )


async def protected_sources(session: AsyncSession, period: int, precedence: int) -> list[int]:
    """The sources a writer of this precedence may not overwrite (few: corrections, and
    systems ranked above it)."""
    rows = await session.scalars(
        select(Source.id).where(
            Source.precedence > precedence, (Source.period == period) | (Source.period.is_(None))
        )
    )
    return list(rows)


async def sources_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, Source]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = await session.scalars(select(Source).where(Source.id.in_(wanted)))
    return {s.id: s for s in rows}


async def current_value(
    session: AsyncSession, uscc: str, period: int, field: str
) -> RowMapping | None:
    """The value of one field of one facts row, and its source id."""
    k = SOURCE_INDEX[field]
    return (
        (
            await session.execute(
                text(
                    f'SELECT f."{field}" AS value, f.sources[{k}] AS source_id '
                    "FROM scoring.facts f WHERE f.uscc = :u AND f.period = :p"
                ),
                {"u": uscc, "p": period},
            )
        )
        .mappings()
        .first()
    )


async def changes(
    session: AsyncSession, uscc: str, period: int, field: str, limit: int, offset: int
) -> tuple[Sequence[FactChange], int]:
    """A value's changes, newest first, and how many there are."""
    where = (FactChange.uscc == uscc, FactChange.period == period, FactChange.field == field)
    total: int = (
        await session.execute(
            text(
                "SELECT count(*) FROM scoring.fact_changes "
                "WHERE uscc = :u AND period = :p AND field = :f"
            ),
            {"u": uscc, "p": period, "f": field},
        )
    ).scalar_one()
    rows = await session.scalars(
        select(FactChange).where(*where).order_by(FactChange.id.desc()).limit(limit).offset(offset)
    )
    return rows.all(), total


async def set_value(
    session: AsyncSession, uscc: str, period: int, field: str, value: Any, source_id: int
) -> bool:
    """Write one value with its source, and its change; False when there is no such row.

    A correction: it outranks every other writer, so nothing is kept back here.
    """
    k, n = SOURCE_INDEX[field], len(SOURCE_INDEX)
    sources = f"(coalesce(f.sources, array_fill(NULL::int, ARRAY[{n}])))"
    statement = text(
        f"WITH old AS (SELECT f.uscc, f.period, f.sources[{k}] AS old_source, "
        f'to_jsonb(f."{field}") AS old_value FROM scoring.facts f '
        # No FOR UPDATE: this snapshot holds the old value, and the UPDATE below locks the
        # row; locking it here too would find it already changed by this very statement.
        "WHERE f.uscc = :u AND f.period = :p), "
        f'up AS (UPDATE scoring.facts f SET "{field}" = :v, '
        f"sources = {sources}[1:{k - 1}] || CAST(:s AS int) || {sources}[{k + 1}:{n}], "
        "updated_at = now() WHERE f.uscc = :u AND f.period = :p "
        f'RETURNING f.uscc, f.period, to_jsonb(f."{field}") AS new_value), '
        "hist AS (INSERT INTO scoring.fact_changes "
        "(uscc, period, field, old_value, new_value, old_source_id, source_id) "
        "SELECT u.uscc, u.period, :f, o.old_value, u.new_value, o.old_source, :s "
        "FROM up u JOIN old o ON o.uscc = u.uscc AND o.period = u.period) "
        "SELECT count(*) AS n FROM up"
    )
    params = {"u": uscc, "p": period, "f": field, "v": value, "s": source_id}
    row = (await session.execute(statement, params)).mappings().one()
    return bool(row["n"])
