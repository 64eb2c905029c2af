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

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import PROFILE
from services.scoring.models import FACT_VALUE_COLUMNS, facts_partition
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
    # Staged in USCC order, which the inserts keep: each key then lands at or next to the
    # previous one in the primary keys' B-trees instead of a descent to a random page per
    # row (as the bulk loader does; BENCHMARKS.md). The order as indices, taken a chunk at a
    # time: a sorted copy of the whole table would add its 1.3 GB at a million rows.
    order = await asyncio.to_thread(pc.sort_indices, table.column("uscc"))
    await _create_stage(conn, cols)
    await conn.copy_to_table("import_stage", source=_csv(table, order), columns=cols, format="csv")
    staged = time.perf_counter()
    period = int(table.column("period")[0].as_py()) if table.num_rows else None
    counts = await _merge(conn, cols, table.num_rows, source_id, protected, import_id, period)
    if timings is not None:
        timings["stage"], timings["merge"] = staged - start, time.perf_counter() - staged
    return counts


def _csv_chunk(table: pa.Table, rows: pa.Array) -> bytes:
    buf = io.BytesIO()
    pa_csv.write_csv(table.take(rows), buf, write_options=pa_csv.WriteOptions(include_header=False))
    return buf.getvalue()


async def _csv(table: pa.Table, order: pa.Array) -> AsyncIterator[bytes]:
    # Formatting is seconds of CPU at a million rows (a quarter of the import's time in the
    # profile): off the event loop. A numpy binary-COPY writer was tried and measured slower
    # (variable-length fields need a byte-level scatter): see BENCHMARKS.md.
    for start in range(0, table.num_rows, _CSV_ROWS):
        yield await asyncio.to_thread(_csv_chunk, table, order.slice(start, _CSV_ROWS))


async def bulk_settings(conn: Any) -> None:
    """Settings of a transaction that writes a million rows (the bulk loader's, an import's):
    the million-row sorts (DISTINCT ON) and joins run in memory instead of spilling to disk
    in batches (the server's default work_mem is 4 MB), and no JIT: these statements cost
    above the server's JIT thresholds, and compiling them took ~1 s of CPU each (EXPLAIN
    ANALYZE at 1M) for row-at-a-time inserts that compiled expressions barely speed up."""
    await conn.execute("SET LOCAL work_mem = '256MB'")
    await conn.execute("SET LOCAL jit = off")


async def merge_enterprises(
    conn: Any,
    source_sql: str,
    columns: Sequence[str],
    coalesced: Sequence[str] = (),
    *,
    ids_to: list[bytearray] | None = None,
) -> bool:
    """Upsert enterprises from `source_sql` (uscc then `columns`, `name` first; one row per
    uscc): a row that exists takes the new values (for a `coalesced` column, only a value
    that is not NULL) and `updated_at` when they differ; a new uscc is inserted.

    As an UPDATE of the rows that changed and a plain INSERT of the new ones rather than one
    INSERT ... ON CONFLICT: speculative insertion costs twice a plain insert per row, and
    re-checks every unchanged row (at a million rows, 8.4 s against 4.1 s of server CPU for
    new ones, 9.9 s for unchanged ones; BENCHMARKS.md). Should another transaction insert
    one of the new usccs in between, the insert fails and the upsert does it instead.

    With `ids_to`, the UPDATE and the INSERT append to it the (uscc, id) of every row they
    write, a binary COPY stream each (`RETURNING` through `COPY ... TO`): with a load of
    new enterprises, the ids of all of them without a join of the staged rows to the table
    afterwards. Returns whether the streams are whole (not after the fall-back to the
    upsert, when they are to be ignored).
    """

    def value(alias: str, c: str) -> str:
        return f'coalesce({alias}."{c}", e."{c}")' if c in coalesced else f'{alias}."{c}"'

    async def run(sql: str) -> None:
        if ids_to is None:
            await conn.execute(sql)
            return
        received = bytearray()
        ids_to.append(received)

        async def sink(data: bytes) -> None:
            received.extend(data)

        await conn.copy_from_query(f"{sql} RETURNING e.uscc, e.id", output=sink, format="binary")

    new = {c: value("s", c) for c in columns}
    listed = ", ".join(f'"{c}"' for c in ("uscc", *columns))
    await run(
        "UPDATE scoring.enterprises e SET "
        + ", ".join(f'"{c}" = {v}' for c, v in new.items())
        + f", updated_at = now() FROM ({source_sql}) s WHERE e.uscc = s.uscc AND ("
        + ", ".join(f'e."{c}"' for c in columns)
        + ") IS DISTINCT FROM ("
        + ", ".join(new.values())
        + ")"
    )
    insert = (
        f"INSERT INTO scoring.enterprises AS e ({listed}) SELECT {listed} FROM ({source_sql}) s"
    )
    try:
        async with conn.transaction():  # a savepoint: the statement alone is undone
            await run(
                f"{insert} WHERE NOT EXISTS "
                "(SELECT 1 FROM scoring.enterprises x WHERE x.uscc = s.uscc)"
            )
        return ids_to is not None
    except asyncpg.UniqueViolationError:
        # Every row again: the one inserted meanwhile, now visible, takes our values.
        excluded = {c: value("EXCLUDED", c) for c in columns}
        await conn.execute(
            f"{insert} ON CONFLICT (uscc) DO UPDATE SET "
            + ", ".join(f'"{c}" = {v}' for c, v in excluded.items())
            + ", updated_at = now() WHERE ("
            + ", ".join(f'e."{c}"' for c in columns)
            + ") IS DISTINCT FROM ("
            + ", ".join(excluded.values())
            + ")"
        )
        return False


async def lock_period(conn: Any, period: int) -> None:
    """The bulk loader's lock on `period`'s facts, until the transaction ends: one writer at a
    time decides whether the period is new, creates its partition or loads it first."""
    await conn.execute("SELECT pg_advisory_xact_lock(7302, $1)", period)


async def fresh_partition(conn: Any, period: int) -> str | None:
    """Under `lock_period`: when `period` has no partition yet, a new table for its first
    facts (no index: `attach_partition` builds them once the rows are in, instead of a
    descent per row and index), else None. Created with its partition bound as a CHECK, so
    attaching it needs no validation scan."""
    name = facts_partition(period)
    if await conn.fetchval("SELECT to_regclass($1)", f"scoring.{name}") is not None:
        return None
    await conn.execute(
        f"CREATE TABLE scoring.{name} (LIKE scoring.facts INCLUDING DEFAULTS, "
        f"CONSTRAINT {name}_period CHECK (period = {int(period)}))"
    )
    return name


async def attach_partition(conn: Any, name: str, period: int) -> None:
    """`fresh_partition`'s table attached to `facts`, its indexes built now. ATTACH holds a
    SHARE UPDATE EXCLUSIVE lock on `facts` to the end of the transaction: reads and writes of
    other periods go on; another period's first load waits for it."""
    # With the server's maintenance_work_mem: 256 MB measured no less CPU for the build (it
    # only let PostgreSQL add a second parallel worker) and a longer wall on a busy machine.
    await conn.execute(
        f"ALTER TABLE scoring.facts ATTACH PARTITION scoring.{name} FOR VALUES IN ({int(period)})"
    )


async def ensure_partitions(conn: Any, periods: Iterable[int]) -> None:
    """Every period of `periods` has its partition (empty ones attached at once)."""
    for period in sorted(set(periods)):
        await lock_period(conn, period)
        name = await fresh_partition(conn, period)
        if name is not None:
            await attach_partition(conn, name, period)


async def _first_load(conn: Any, period: int) -> bool:
    """No fact of `period` yet; `lock_period` keeps another load of the period from slipping
    in before this transaction ends."""
    await lock_period(conn, period)
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
    await bulk_settings(conn)
    ent_cols = ["uscc", "name", *[c for c in ENTERPRISE_COLUMNS if c in cols]]
    ent_list = ", ".join(f'"{c}"' for c in ent_cols)
    await merge_enterprises(
        conn, f"SELECT DISTINCT ON (uscc) {ent_list} FROM import_stage", ent_cols[1:]
    )

    value_cols = [c for c in cols if c not in ("uscc", "name", "period", *ENTERPRISE_COLUMNS)]
    src_list = "".join(f', s."{c}"' for c in value_cols)
    select = (
        f"SELECT s.uscc, s.period, e.id AS enterprise_id{src_list} FROM import_stage s "
        "JOIN scoring.enterprises e ON e.uscc = s.uscc"
    )
    if period is not None and value_cols and await _first_load(conn, period):
        fresh = await fresh_partition(conn, period)
        sources = ", ".join(
            f"{'$1' if c in value_cols else 'NULL'}::int" for c in FACT_VALUE_COLUMNS
        )
        listed = "".join(f', "{c}"' for c in value_cols)
        status = await conn.execute(
            f"INSERT INTO scoring.{fresh or 'facts'} (uscc, period, enterprise_id{listed}, "
            f"sources, import_id) SELECT q.*, ARRAY[{sources}], $2::uuid FROM ({select}) q",
            source_id,
            import_id,
        )
        if fresh is not None:
            await attach_partition(conn, fresh, period)
        await conn.execute("DROP TABLE IF EXISTS import_stage")
        written = int(status.split()[-1])
        return UpsertCounts(written, 0, staged - written, 0)
    if period is not None:
        periods = [period]
    else:
        rows = await conn.fetch(
            "SELECT DISTINCT period FROM import_stage WHERE period IS NOT NULL ORDER BY 1"
        )
        periods = [int(r["period"]) for r in rows]
    await ensure_partitions(conn, periods)
    inserted = written = kept = 0
    for p in periods:
        # Into the period's partition: the upsert tells an insert from an update by `xmax`,
        # which only a partition (not the partitioned table) returns.
        sql = fact_upsert_sql(
            f"{select} WHERE s.period = {int(p)}",
            value_cols,
            source="$1::int",
            protected="$2::int[]",
            import_id="$3::uuid",
            table=f"scoring.{facts_partition(p)}",
        )
        row = await conn.fetchrow(sql, source_id, list(protected), import_id)
        inserted, written = inserted + int(row["inserted"]), written + int(row["written"])
        kept += int(row["kept"])
    await conn.execute("DROP TABLE IF EXISTS import_stage")
    return UpsertCounts(inserted, written - inserted, staged - written, kept)
