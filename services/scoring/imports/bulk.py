"""Bulk loading of facts already held as columns (an initial load of a whole province, the
benchmarks), through the same upsert semantics as the import API.

The import API validates every field of a file in Python, which is right for what people
upload but costs ~40 s per million rows. Here the numeric columns are already typed arrays,
so they go to PostgreSQL as one binary COPY laid over a numpy buffer (floats with NaN for
missing, yes/no as -1/0/1, tags as bit masks over their vocabulary), the few text columns as a
second COPY, and SQL turns them into the same rows the import writes, with a `system` source
(`BulkFacts.source_system`) as the provenance of every value. Hand-written because no library
writes PostgreSQL's binary COPY from numpy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import INDICATOR_CODES, PROFILE
from services.scoring.imports.repository import (
    attach_partition,
    bulk_settings,
    fresh_partition,
    lock_period,
    merge_enterprises,
)
from services.scoring.models import FACT_VALUE_COLUMNS, facts_partition
from services.scoring.provenance import service as provenance
from services.scoring.provenance.repository import fact_upsert_sql, protected_sources
from shared.db import raw_connection

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
CHUNK = 100_000
NUMERIC_PROFILE = tuple(p.code for p in PROFILE if p.kind not in ("bool", "tags"))
BOOL_PROFILE = tuple(p.code for p in PROFILE if p.kind == "bool")
TAG_PROFILE = tuple(p.code for p in PROFILE if p.kind == "tags")


@dataclass
class BulkFacts:
    period: int
    uscc: npt.NDArray[np.str_]
    name: npt.NDArray[np.str_]
    indicators: npt.NDArray[np.float64]  # [n, 24], NaN = missing
    numeric: Mapping[str, npt.NDArray[np.float64]]  # NaN = missing
    bools: Mapping[str, npt.NDArray[np.bool_]]
    tags: Mapping[str, npt.NDArray[np.integer]]  # bit masks over `vocabularies`
    vocabularies: Mapping[str, Sequence[str]]
    founded_on: npt.NDArray[np.datetime64] | None = None
    industry: npt.NDArray[np.str_] | None = None
    district: npt.NDArray[np.str_] | None = None
    legal_rep: npt.NDArray[np.str_] | None = None
    # The provenance of every value loaded: a named source system and who loaded it.
    source_system: str = "bulk_load"
    created_by: str = "bulk_load"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.uscc.shape[0])


def _num_dtype() -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("nf", ">i2"), ("ul", ">i4"), ("uscc", "S18")]
    for k in range(len(INDICATOR_CODES) + len(NUMERIC_PROFILE)):
        fields += [(f"fl{k}", ">i4"), (f"f{k}", ">f8")]
    for k in range(len(BOOL_PROFILE)):
        fields += [(f"bl{k}", ">i4"), (f"b{k}", ">i2")]
    for k in range(len(TAG_PROFILE)):
        fields += [(f"tl{k}", ">i4"), (f"t{k}", ">i4")]
    return np.dtype(fields)


def _num_chunks(facts: BulkFacts, order: npt.NDArray[np.intp]) -> Iterator[bytes]:
    dtype = _num_dtype()
    n_fields = (
        1 + len(INDICATOR_CODES) + len(NUMERIC_PROFILE) + len(BOOL_PROFILE) + len(TAG_PROFILE)
    )
    yield _SIGNATURE
    for start in range(0, facts.n, CHUNK):
        rows = order[start : start + CHUNK]
        buf = np.zeros(rows.size, dtype=dtype)
        buf["nf"] = n_fields
        buf["ul"] = 18
        # A cast, not np.char.encode (six times slower); both refuse a non-ASCII character.
        buf["uscc"] = facts.uscc[rows].astype("S18")
        k = 0
        indicators = facts.indicators[rows]
        for j in range(len(INDICATOR_CODES)):
            buf[f"fl{k}"], buf[f"f{k}"] = 8, indicators[:, j]
            k += 1
        for code in NUMERIC_PROFILE:
            buf[f"fl{k}"], buf[f"f{k}"] = 8, facts.numeric[code][rows]
            k += 1
        for k, code in enumerate(BOOL_PROFILE):
            buf[f"bl{k}"], buf[f"b{k}"] = 2, facts.bools[code][rows].astype(np.int16)
        for k, code in enumerate(TAG_PROFILE):
            buf[f"tl{k}"], buf[f"t{k}"] = 4, facts.tags[code][rows].astype(np.int32)
        yield buf.tobytes()
    yield b"\xff\xff"


async def _ahead(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, each made in a worker thread while the previous one is sent and taken in by
    the server (numpy's copies release the GIL): the encoding and the server's COPY overlap
    on the two cores instead of taking turns."""
    done = object()

    def step() -> object:
        return next(chunks, done)

    pending = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        while (chunk := await pending) is not done:
            pending = asyncio.ensure_future(asyncio.to_thread(step))
            assert isinstance(chunk, bytes)
            yield chunk
    finally:
        pending.cancel()


def _text_records(facts: BulkFacts, rows: npt.NDArray[np.intp]) -> list[tuple[object, ...]]:
    founded = (
        facts.founded_on[rows].astype("datetime64[D]").astype(object).tolist()
        if facts.founded_on is not None
        else [None] * rows.size
    )

    def text(column: npt.NDArray[np.str_] | None) -> list[object]:
        return column[rows].tolist() if column is not None else [None] * rows.size

    return list(
        zip(
            facts.uscc[rows].tolist(),
            facts.name[rows].tolist(),
            founded,
            text(facts.industry),
            text(facts.district),
            text(facts.legal_rep),
            strict=True,
        )
    )


async def bulk_load(session: AsyncSession, facts: BulkFacts) -> tuple[int, int, int]:
    """Upsert enterprises and one period's facts; returns (inserted, updated, unchanged)."""
    conn = await raw_connection(session)
    await lock_period(conn, facts.period)
    source = await provenance.add_source(
        session,
        kind="system",
        system=facts.source_system,
        precedence=provenance.IMPORT_PRECEDENCE,
        created_by=facts.created_by,
        period=facts.period,
    )
    await bulk_settings(conn)
    float_cols = [*INDICATOR_CODES, *NUMERIC_PROFILE]
    defs = ", ".join(
        ["uscc varchar(18)"]
        + [f'"{c}" double precision' for c in float_cols]
        + [f'"{c}" smallint' for c in BOOL_PROFILE]
        + [f'"{c}" integer' for c in TAG_PROFILE]
    )
    await conn.execute(f"CREATE TEMP TABLE bulk_num ({defs}) ON COMMIT DROP")
    await conn.execute(
        "CREATE TEMP TABLE bulk_text (uscc varchar(18), name text, founded_on date, "
        "industry text, district text, legal_rep text) ON COMMIT DROP"
    )
    # Staged in USCC order, which the inserts below keep (the staged rows are the scans'
    # outer side): every key then lands at or next to the previous one in the primary keys'
    # B-trees, instead of a descent to a random page per row. At a million rows this took
    # the enterprises' insert from 14.4 to 4.1 s and the facts' from 20.0 to 12.3 s of
    # server CPU (BENCHMARKS.md); ids are then given in USCC order, as the import API does.
    order = np.argsort(facts.uscc, kind="stable")
    await conn.copy_to_table("bulk_num", source=_ahead(_num_chunks(facts, order)), format="binary")
    for start in range(0, facts.n, CHUNK):
        await conn.copy_records_to_table(
            "bulk_text", records=_text_records(facts, order[start : start + CHUNK])
        )
    kept = ("founded_on", "industry", "district", "legal_rep")  # a missing one keeps ours
    await merge_enterprises(
        conn, f"SELECT uscc, name, {', '.join(kept)} FROM bulk_text", ("name", *kept), kept
    )
    exprs = [f"NULLIF(s.\"{c}\", 'NaN')" for c in float_cols]
    exprs += [f'CASE WHEN s."{c}" < 0 THEN NULL ELSE s."{c}" = 1 END' for c in BOOL_PROFILE]
    joins = []
    for k, c in enumerate(TAG_PROFILE):
        # Every mask's tag list, made once: a join is far cheaper than a subquery per row.
        vocab = list(facts.vocabularies[c])
        await conn.execute(f"CREATE TEMP TABLE tag_map_{k} (mask int, tags text[]) ON COMMIT DROP")
        await conn.copy_records_to_table(
            f"tag_map_{k}",
            records=[
                (mask, sorted(v for i, v in enumerate(vocab) if mask >> i & 1))
                for mask in range(1 << len(vocab))
            ],
        )
        joins.append(f'LEFT JOIN tag_map_{k} m{k} ON m{k}.mask = s."{c}"')
        exprs.append(f"coalesce(m{k}.tags, '{{}}')")
    value_cols = [*float_cols, *BOOL_PROFILE, *TAG_PROFILE]
    assert sorted(value_cols) == sorted(FACT_VALUE_COLUMNS)
    col_list = ", ".join(f'"{c}"' for c in value_cols)
    named = ", ".join(f'{e} AS "{c}"' for e, c in zip(exprs, value_cols, strict=True))
    select = (
        f"SELECT s.uscc, $1::smallint AS period, e.id AS enterprise_id, {named} FROM bulk_num s "
        f"JOIN scoring.enterprises e ON e.uscc = s.uscc {' '.join(joins)}"
    )
    first_load = not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scoring.facts WHERE period = $1)", facts.period
    )
    if first_load:
        # Nothing to merge with: a plain insert skips the speculative-insertion machinery,
        # into a fresh partition when the period has none (its indexes built once after).
        # The period's advisory lock keeps a concurrent load from slipping in between.
        # Every column is loaded, so every value has this source: one array for all rows.
        fresh = await fresh_partition(conn, facts.period)
        status = await conn.execute(
            f"INSERT INTO scoring.{fresh or 'facts'} (uscc, period, enterprise_id, {col_list}, "
            f"sources) SELECT q.*, array_fill($2::int, ARRAY[{len(FACT_VALUE_COLUMNS)}]) "
            f"FROM ({select}) q",
            facts.period,
            source.id,
        )
        if fresh is not None:
            await attach_partition(conn, fresh, facts.period)
        written = int(status.split()[-1])
        await conn.execute("DROP TABLE IF EXISTS bulk_num, bulk_text")
        return written, 0, facts.n - written
    protected = await protected_sources(session, facts.period, provenance.IMPORT_PRECEDENCE)
    counts = await conn.fetchrow(
        fact_upsert_sql(
            select,
            value_cols,
            source="$2::int",
            protected="$3::int[]",
            import_id="NULL::uuid",
            table=f"scoring.{facts_partition(facts.period)}",
        ),
        facts.period,
        source.id,
        protected,
    )
    assert counts is not None
    await conn.execute("DROP TABLE IF EXISTS bulk_num, bulk_text")
    inserted, written = int(counts["inserted"]), int(counts["written"])
    return inserted, written - inserted, facts.n - written
