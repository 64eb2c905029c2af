"""Writing validated rows: one staging COPY, then one upsert per table.

The upsert only touches the columns the file has (a file without `legal_rep` keeps the one
on record) and skips rows whose values did not change, so re-importing the same file is a
no-op that reports every row as unchanged. Each value it changes records the import as its
source, and the change itself (`provenance.repository.fact_upsert_sql`); a value set by a
source of higher precedence (a correction) is kept.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import PROFILE
from services.scoring.models import FACT_VALUE_COLUMNS
from services.scoring.provenance.repository import fact_upsert_sql
from shared.db import raw_connection

_CSV_ROWS = 100_000
ENTERPRISE_COLUMNS = ("founded_on", "industry", "district", "legal_rep")
_PG_TYPES: dict[str, str] = {
    "uscc": "varchar(18)",
    "name": "text",
    "founded_on": "date",
    "industry": "text",
    "district": "text",
    "legal_rep": "text",
    "period": "smallint",
}
for _attr in PROFILE:
    if _attr.kind == "tags":
        _PG_TYPES[_attr.code] = "text[]"
    elif _attr.kind == "bool":
        _PG_TYPES[_attr.code] = "boolean"


class UpsertCounts(NamedTuple):
    inserted: int
    updated: int
    unchanged: int
    kept: int  # values a source of higher precedence had set


def pg_type(column: str) -> str:
    return _PG_TYPES.get(column, "double precision")


async def upsert_rows(
    session: AsyncSession,
    columns: Sequence[str],
    records: Sequence[Sequence[Any]] | Iterable[Sequence[Sequence[Any]]],
    import_id: uuid.UUID | None,
    *,
    source_id: int | None = None,
    protected: Sequence[int] = (),
    chunked: bool = False,
) -> UpsertCounts:
    """Upsert enterprises and facts; returns the fact rows inserted, updated, unchanged and
    the values kept because a source of higher precedence set them.

    With `chunked`, `records` is an iterable of chunks, staged one after the other, so a
    bulk load never holds every row as Python objects at once.
    """
    conn = await raw_connection(session)
    cols = list(columns)
    await _create_stage(conn, cols)
    chunks: Iterable[Sequence[Sequence[Any]]] = records if chunked else [records]  # type: ignore[list-item]
    staged = 0
    for chunk in chunks:
        await conn.copy_records_to_table("import_stage", records=chunk, columns=cols)
        staged += len(chunk)
    return await _merge(conn, cols, staged, source_id, protected, import_id)


async def upsert_table(
    session: AsyncSession,
    table: pa.Table,
    import_id: uuid.UUID | None,
    *,
    source_id: int | None = None,
    protected: Sequence[int] = (),
    timings: dict[str, float] | None = None,
) -> UpsertCounts:
    """`upsert_rows` of typed columns, staged as CSV that pyarrow writes and PostgreSQL's
    COPY reads: no Python object per value (tag lists come as array literals). `timings`
    gets the seconds of each step (the benchmark's)."""
    conn = await raw_connection(session)
    cols = list(table.column_names)
    start = time.perf_counter()
    await _create_stage(conn, cols)
    await conn.copy_to_table("import_stage", source=_csv(table), columns=cols, format="csv")
    staged = time.perf_counter()
    period = int(table.column("period")[0].as_py()) if table.num_rows else None
    counts = await _merge(conn, cols, table.num_rows, source_id, protected, import_id, period)
    if timings is not None:
        timings["stage"], timings["merge"] = staged - start, time.perf_counter() - staged
    return counts


def _csv_chunk(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pa_csv.write_csv(table, buf, write_options=pa_csv.WriteOptions(include_header=False))
    return buf.getvalue()


async def _csv(table: pa.Table) -> AsyncIterator[bytes]:
    # Formatting is seconds of CPU at a million rows (a quarter of the import's time in the
    # profile): off the event loop. A numpy binary-COPY writer was tried and measured slower
    # (variable-length fields need a byte-level scatter): see BENCHMARKS.md.
    for start in range(0, table.num_rows, _CSV_ROWS):
        yield await asyncio.to_thread(_csv_chunk, table.slice(start, _CSV_ROWS))


async def _first_load(conn: Any, period: int) -> bool:
    """No fact of `period` yet; the bulk loader's lock keeps another load of the period from
    slipping in before this transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(7302, $1)", period)
    return not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scoring.facts WHERE period = $1)", period
    )


async def _create_stage(conn: Any, cols: Sequence[str]) -> None:
    assert {"uscc", "name", "period"} <= set(cols)
    defs = ", ".join(f'"{c}" {pg_type(c)}' for c in cols)
    await conn.execute(f"CREATE TEMP TABLE import_stage ({defs}) ON COMMIT DROP")


async def _merge(
    conn: Any,
    cols: Sequence[str],
    staged: int,
    source_id: int | None,
    protected: Sequence[int],
    import_id: uuid.UUID | None,
    period: int | None = None,
) -> UpsertCounts:
    """Enterprises, then facts. With `period` (a file of one period), the first load of that
    period is a plain insert, as the bulk loader's is: nothing to merge with, so the
    speculative-insertion machinery and the history of changes have nothing to do."""
    ent_cols = ["uscc", "name", *[c for c in ENTERPRISE_COLUMNS if c in cols]]
    ent_list = ", ".join(f'"{c}"' for c in ent_cols)
    ent_set = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in ent_cols[1:])
    ent_cmp = ", ".join(f'e."{c}"' for c in ent_cols[1:])
    ent_new = ", ".join(f'EXCLUDED."{c}"' for c in ent_cols[1:])
    await conn.execute(
        f"INSERT INTO scoring.enterprises AS e ({ent_list}) "
        f"SELECT DISTINCT ON (uscc) {ent_list} FROM import_stage "
        f"ON CONFLICT (uscc) DO UPDATE SET {ent_set}, updated_at = now() "
        f"WHERE ({ent_cmp}) IS DISTINCT FROM ({ent_new})"
    )

    value_cols = [c for c in cols if c not in ("uscc", "name", "period", *ENTERPRISE_COLUMNS)]
    src_list = "".join(f', s."{c}"' for c in value_cols)
    select = (
        f"SELECT s.uscc, s.period, e.id AS enterprise_id{src_list} FROM import_stage s "
        "JOIN scoring.enterprises e ON e.uscc = s.uscc"
    )
    if period is not None and value_cols and await _first_load(conn, period):
        sources = ", ".join(
            f"{'$1' if c in value_cols else 'NULL'}::int" for c in FACT_VALUE_COLUMNS
        )
        listed = "".join(f', "{c}"' for c in value_cols)
        status = await conn.execute(
            f"INSERT INTO scoring.facts (uscc, period, enterprise_id{listed}, sources, "
            f"import_id) SELECT q.*, ARRAY[{sources}], $2::uuid FROM ({select}) q",
            source_id,
            import_id,
        )
        await conn.execute("DROP TABLE IF EXISTS import_stage")
        written = int(status.split()[-1])
        return UpsertCounts(written, 0, staged - written, 0)
    sql = fact_upsert_sql(
        select, value_cols, source="$1::int", protected="$2::int[]", import_id="$3::uuid"
    )
    row = await conn.fetchrow(sql, source_id, list(protected), import_id)
    await conn.execute("DROP TABLE IF EXISTS import_stage")
    inserted, written = int(row["inserted"]), int(row["written"])
    return UpsertCounts(inserted, written - inserted, staged - written, int(row["kept"]))
