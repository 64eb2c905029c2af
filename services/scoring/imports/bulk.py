"""Bulk loading of facts already held as columns (an initial load of a whole province, the
benchmarks), through the same upsert semantics as the import API.

The import API validates every field of a file in Python, which is right for what people
upload but costs ~40 s per million rows. Here the numeric columns are already typed arrays,
so they go to PostgreSQL as one binary COPY laid over a numpy buffer (floats with NaN for
missing, yes/no as -1/0/1, tags as bit masks over their vocabulary), the few text columns as a
second COPY, and SQL turns them into the same rows the import writes. Hand-written because no
library writes PostgreSQL's binary COPY from numpy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import INDICATOR_CODES, PROFILE
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
    legal_rep: npt.NDArray[np.str_] | None = None
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


def _num_chunks(facts: BulkFacts) -> Iterator[bytes]:
    dtype = _num_dtype()
    n_fields = (
        1 + len(INDICATOR_CODES) + len(NUMERIC_PROFILE) + len(BOOL_PROFILE) + len(TAG_PROFILE)
    )
    yield _SIGNATURE
    for start in range(0, facts.n, CHUNK):
        stop = min(facts.n, start + CHUNK)
        buf = np.zeros(stop - start, dtype=dtype)
        buf["nf"] = n_fields
        buf["ul"] = 18
        buf["uscc"] = np.char.encode(facts.uscc[start:stop], "ascii")
        k = 0
        for j in range(len(INDICATOR_CODES)):
            buf[f"fl{k}"], buf[f"f{k}"] = 8, facts.indicators[start:stop, j]
            k += 1
        for code in NUMERIC_PROFILE:
            buf[f"fl{k}"], buf[f"f{k}"] = 8, facts.numeric[code][start:stop]
            k += 1
        for k, code in enumerate(BOOL_PROFILE):
            buf[f"bl{k}"], buf[f"b{k}"] = 2, facts.bools[code][start:stop].astype(np.int16)
        for k, code in enumerate(TAG_PROFILE):
            buf[f"tl{k}"], buf[f"t{k}"] = 4, facts.tags[code][start:stop].astype(np.int32)
        yield buf.tobytes()
    yield b"\xff\xff"


async def _aiter(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _text_records(facts: BulkFacts, start: int, stop: int) -> list[tuple[object, ...]]:
    founded = (
        facts.founded_on[start:stop].astype("datetime64[D]").astype(object).tolist()
        if facts.founded_on is not None
        else [None] * (stop - start)
    )
    industry = (
        facts.industry[start:stop].tolist()
        if facts.industry is not None
        else [None] * (stop - start)
    )
    legal = (
        facts.legal_rep[start:stop].tolist()
        if facts.legal_rep is not None
        else [None] * (stop - start)
    )
    return list(
        zip(
            facts.uscc[start:stop].tolist(),
            facts.name[start:stop].tolist(),
            founded,
            industry,
            legal,
            strict=True,
        )
    )


async def bulk_load(session: AsyncSession, facts: BulkFacts) -> tuple[int, int, int]:
    """Upsert enterprises and one period's facts; returns (inserted, updated, unchanged)."""
    conn = await raw_connection(session)
    await conn.execute("SELECT pg_advisory_xact_lock(7302, $1)", facts.period)
    # The million-row joins hash in memory instead of spilling to sixteen batches on disk.
    await conn.execute("SET LOCAL work_mem = '256MB'")
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
        "industry text, legal_rep text) ON COMMIT DROP"
    )
    await conn.copy_to_table("bulk_num", source=_aiter(_num_chunks(facts)), format="binary")
    for start in range(0, facts.n, CHUNK):
        await conn.copy_records_to_table(
            "bulk_text", records=_text_records(facts, start, min(facts.n, start + CHUNK))
        )
    await conn.execute(
        "INSERT INTO scoring.enterprises AS e (uscc, name, founded_on, industry, legal_rep) "
        "SELECT uscc, name, founded_on, industry, legal_rep FROM bulk_text "
        "ON CONFLICT (uscc) DO UPDATE SET name = EXCLUDED.name, "
        "founded_on = coalesce(EXCLUDED.founded_on, e.founded_on), "
        "industry = coalesce(EXCLUDED.industry, e.industry), "
        "legal_rep = coalesce(EXCLUDED.legal_rep, e.legal_rep), updated_at = now() "
        "WHERE (e.name, e.founded_on, e.industry, e.legal_rep) IS DISTINCT FROM "
        "(EXCLUDED.name, coalesce(EXCLUDED.founded_on, e.founded_on), "
        "coalesce(EXCLUDED.industry, e.industry), coalesce(EXCLUDED.legal_rep, e.legal_rep))"
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
    col_list = ", ".join(f'"{c}"' for c in value_cols)
    set_list = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in value_cols)
    cmp_old = ", ".join(f'f."{c}"' for c in value_cols)
    cmp_new = ", ".join(f'EXCLUDED."{c}"' for c in value_cols)
    select = (
        f"SELECT s.uscc, $1::smallint, e.id, {', '.join(exprs)} FROM bulk_num s "
        f"JOIN scoring.enterprises e ON e.uscc = s.uscc {' '.join(joins)}"
    )
    first_load = not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM scoring.facts WHERE period = $1)", facts.period
    )
    if first_load:
        # Nothing to merge with: a plain insert skips the speculative-insertion machinery.
        # The period's advisory lock keeps a concurrent load from slipping in between.
        status = await conn.execute(
            f"INSERT INTO scoring.facts (uscc, period, enterprise_id, {col_list}) {select}",
            facts.period,
        )
        written = int(status.split()[-1])
        await conn.execute("DROP TABLE IF EXISTS bulk_num, bulk_text")
        return written, 0, facts.n - written
    counts = await conn.fetchrow(
        f"WITH written AS (INSERT INTO scoring.facts AS f (uscc, period, enterprise_id, "
        f"{col_list}) {select} "
        f"ON CONFLICT (uscc, period) DO UPDATE SET {set_list}, import_id = NULL, "
        f"updated_at = now() WHERE ({cmp_old}) IS DISTINCT FROM ({cmp_new}) "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) AS written FROM written",
        facts.period,
    )
    assert counts is not None
    await conn.execute("DROP TABLE IF EXISTS bulk_num, bulk_text")
    inserted, written = int(counts["inserted"]), int(counts["written"])
    return inserted, written - inserted, facts.n - written
