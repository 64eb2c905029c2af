"""Moving an evaluation's data between PostgreSQL and numpy with binary COPY.

Written by hand because no library does this: rows are read and written in PostgreSQL's
binary COPY format laid over a numpy structured dtype, so one million rows move without one
Python object per value (measured for 1M x 24: asyncpg `fetch` 20 s, binary COPY parsed
row by row 9 s; this path is a small fraction of that). Every column read is made NOT NULL
(NaN for missing) so each tuple has the same width and the buffer is one array.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.catalogue import INDICATOR_CODES
from services.scoring.engine import (
    EXPLAIN_WIDTH,
    BandTables,
    EngineResult,
    band_tables,
    explain_codes,
)
from services.scoring.models import facts_partition
from services.scoring.provenance.repository import SOURCE_INDEX
from services.scoring.scores.packed import PACKED_DTYPE

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_N = len(INDICATOR_CODES)
FLOAT8_OID = 701
INT4_OID = 23
# The sources read with the values: the 24 indicators', then the revenue's (0: none).
_SOURCE_COLUMNS = (*INDICATOR_CODES, "operating_revenue")


@dataclass
class EvaluationInputs:
    enterprise_ids: npt.NDArray[np.int64]
    revenue: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    excluded_reason: npt.NDArray[np.object_]
    # [n, 25]: the source id of each indicator value, then of the revenue; 0 when none.
    sources: npt.NDArray[np.int32] | None = None


def _input_dtype() -> np.dtype[np.void]:
    # The revenue and the indicators, then whether the row's sources are the read's common
    # ones: the values a nested field, so their block is taken out with one numpy copy.
    return np.dtype(
        [
            ("nfields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vals", [("l", ">i4"), ("v", ">f8")], (_N + 1,)),
            ("common_len", ">i4"),
            ("common", "u1"),
            ("flagged_len", ">i4"),
            ("flagged", "u1"),
            ("ctid_len", ">i4"),
            ("block", ">u4"),
            ("offset", ">u2"),
        ]
    )


def strip_envelope(buf: bytes | bytearray) -> memoryview:
    if not buf.startswith(_SIGNATURE):
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext_len = int.from_bytes(buf[15:19], "big")
    body = memoryview(buf)[19 + ext_len :]
    if bytes(body[-2:]) != b"\xff\xff":
        raise ValueError("binary COPY stream has no trailer")
    return body[:-2]


# Below this size of a period's facts (64 MiB) a second connection costs more than it saves.
PARALLEL_MIN_PAGES = 8192


async def read_inputs(conn: asyncpg.Connection, period: int) -> EvaluationInputs:
    """A period's evaluation inputs, on one connection (in its transaction's snapshot)."""
    common = await _common_sources(conn, period)
    part = await _read_part(conn, period, "true", common)
    return _assemble([part], common)


@dataclass
class _Common:
    """The sources array of one row of the period (the first of its heap): usually every
    row's, since a load gives all the rows it writes one array. The read then sends per row
    only whether the row has it, and fetches again by tuple id the sources of the rows that
    do not, instead of 25 source ids in every row (half the fields of the read)."""

    literal: str  # the array as SQL, as stored (bounds included)
    sources: npt.NDArray[np.int32]  # its entries for _SOURCE_COLUMNS, 0 for NULL


async def _common_sources(conn: asyncpg.Connection, period: int) -> _Common | None:
    picked = ", ".join(f"coalesce(f.sources[{SOURCE_INDEX[c]}], 0)" for c in _SOURCE_COLUMNS)
    # From the period's partition itself, with no condition on the period: after a load,
    # before any ANALYZE, the planner took `period = $1` for selective and read the whole
    # primary key's index (a million entries) for this one row.
    table = f"scoring.{facts_partition(period)}"
    if await conn.fetchval("SELECT to_regclass($1)", table) is None:
        return None
    row = await conn.fetchrow(
        f"SELECT f.sources::text AS text, ARRAY[{picked}] AS picked FROM {table} f "
        "WHERE f.sources IS NOT NULL LIMIT 1"
    )
    if row is None:
        return None
    if not re.fullmatch(r"[\[\]0-9:=,{}A-Z-]*", row["text"]):
        raise ValueError("unexpected text of an int[]")
    return _Common(f"'{row['text']}'::int[]", np.array(row["picked"], dtype=np.int32))


# The read's COPY costs above the server's JIT thresholds: compiling its expressions took
# more CPU than it saved in sending the rows (1M rows: 7.2-8.3 s of server CPU with JIT,
# 6.7-6.9 s without).
_NO_JIT = "SET LOCAL jit = off"


async def read_inputs_parallel(
    engine: AsyncEngine, period: int, min_pages: int = PARALLEL_MIN_PAGES
) -> EvaluationInputs:
    """`read_inputs` on two connections at once, each sending the rows of half of the
    period's partition (by heap pages, a TID range scan each), in one snapshot (exported by
    the first, imported by the second): the server's per-field send of a million 28-field
    rows is most of the read, and one backend does it on one core while the machine has two.
    Below `min_pages` in the partition, one connection does it all."""
    async with engine.connect() as first:
        a: asyncpg.Connection = (await first.get_raw_connection()).driver_connection
        async with a.transaction(isolation="repeatable_read", readonly=True):
            await a.execute(_NO_JIT)
            # Taken in the snapshot: a row it sees was written to a page that existed then.
            pages = await a.fetchval(
                "SELECT coalesce(pg_relation_size(to_regclass($1)), 0) "
                "/ current_setting('block_size')::int",
                f"scoring.{facts_partition(period)}",
            )
            if pages < min_pages:
                return await read_inputs(a, period)
            common = await _common_sources(a, period)
            snapshot = await a.fetchval("SELECT pg_export_snapshot()")
            mid = f"'({int(pages) // 2},0)'::tid"
            async with engine.connect() as second:
                b: asyncpg.Connection = (await second.get_raw_connection()).driver_connection
                async with b.transaction(isolation="repeatable_read", readonly=True):
                    await b.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    await b.execute(_NO_JIT)
                    part_a, part_b = await asyncio.gather(
                        _read_part(a, period, f"f.ctid < {mid}", common),
                        _read_part(b, period, f"f.ctid >= {mid}", common),
                    )
    return _assemble([part_a, part_b], common)


@dataclass
class _Part:
    rows: np.ndarray  # _input_dtype
    own_ids: npt.NDArray[np.int64]  # the rows whose sources are not the common ones,
    own_sources: npt.NDArray[np.int32]  # and theirs
    flagged: list[asyncpg.Record]  # the rows on the negative list: (id, negative_flags)


async def _read_part(
    conn: asyncpg.Connection, period: int, where: str, common: _Common | None
) -> _Part:
    """The facts rows of `period` matching `where` as a structured array over their binary
    COPY; the sources of those whose sources are not the common ones, and the negative flags
    of those that have any, fetched again by tuple id (a TID scan in the same snapshot): a
    scan of their own for the flags read the whole primary key's index after a load (no
    statistics yet) and cost as much server CPU as a third of the read."""
    has_common = f"coalesce(f.sources = {common.literal}, false)" if common else "false"
    cols = ", ".join(f"coalesce(f.\"{c}\", 'NaN')" for c in ("operating_revenue", *INDICATOR_CODES))
    # No ORDER BY: sorting a million wide rows spills to disk; numpy sorts the ids instead.
    rows = await _copy_out(
        conn,
        f"SELECT f.enterprise_id, {cols}, {has_common}, "
        "coalesce(cardinality(f.negative_flags) > 0, false), f.ctid FROM scoring.facts f "
        f"WHERE f.period = {int(period)} AND {where}",
        _input_dtype(),
        _N + 5,
    )
    flagged: list[asyncpg.Record] = []
    if rows["flagged"].any():
        flagged = await conn.fetch(
            "SELECT f.enterprise_id AS id, f.negative_flags FROM scoring.facts f "
            f"WHERE f.period = {int(period)} AND f.ctid = ANY($1::tid[])",
            _tids(rows, np.flatnonzero(rows["flagged"])),
        )
    own = np.flatnonzero(rows["common"] == 0)
    if not own.size:
        no_sources = np.empty((0, len(_SOURCE_COLUMNS)), np.int32)
        return _Part(rows, np.empty(0, np.int64), no_sources, flagged)
    picked = ", ".join(f"coalesce(f.sources[{SOURCE_INDEX[c]}], 0)" for c in _SOURCE_COLUMNS)
    found = await conn.fetch(
        f"SELECT f.enterprise_id, ARRAY[{picked}] FROM scoring.facts f "
        f"WHERE f.period = {int(period)} AND f.ctid = ANY($1::tid[])",
        _tids(rows, own),
    )
    return _Part(
        rows,
        np.array([r[0] for r in found], dtype=np.int64),
        np.array([r[1] for r in found], dtype=np.int32).reshape(-1, len(_SOURCE_COLUMNS)),
        flagged,
    )


def _tids(rows: np.ndarray, at: npt.NDArray[np.intp]) -> list[tuple[int, int]]:
    return list(zip(rows["block"][at].tolist(), rows["offset"][at].tolist(), strict=True))


async def _copy_out(
    conn: asyncpg.Connection, query: str, dtype: np.dtype[np.void], n_fields: int
) -> np.ndarray:
    received = bytearray()

    async def sink(data: bytes) -> None:
        # A coroutine, not a file: asyncpg hands each write to a file to a worker thread.
        # One growing buffer (remapped, not copied, as it grows): chunks joined at the end
        # would hold the half-GB of a million rows twice.
        received.extend(data)

    await conn.copy_from_query(query, output=sink, format="binary")
    body = strip_envelope(received)
    if len(body) % dtype.itemsize:
        raise ValueError("unexpected row width in binary COPY")
    rows = np.frombuffer(body, dtype=dtype)
    if rows.size and (rows["nfields"] != n_fields).any():
        raise ValueError("unexpected field count in binary COPY")
    return rows


def _assemble(parts: list[_Part], common: _Common | None) -> EvaluationInputs:
    """The parts' columns joined in enterprise-id order. Each column is taken out of the
    COPY buffers before any reordering: a sort of the raw rows would copy all of them."""
    ids = np.concatenate([p.rows["id"] for p in parts], dtype=np.int64)
    revenue = np.concatenate([p.rows["vals"]["v"][:, 0] for p in parts], dtype=np.float64)
    values = np.concatenate([p.rows["vals"]["v"][:, 1:] for p in parts], dtype=np.float64)
    has_common = np.concatenate([p.rows["common"] for p in parts]).astype(bool)
    if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
        # A bulk load writes facts in id order, so a sort is usually not needed.
        order = np.argsort(ids, kind="stable")
        ids, revenue, values, has_common = (
            ids[order],
            revenue[order],
            values[order],
            has_common[order],
        )
    sources = np.zeros((ids.size, len(_SOURCE_COLUMNS)), dtype=np.int32)
    if common is not None:
        sources[has_common] = common.sources
    own_ids = np.concatenate([p.own_ids for p in parts], dtype=np.int64)
    if own_ids.size:
        at = np.minimum(np.searchsorted(ids, own_ids), ids.size - 1)
        if (ids[at] != own_ids).any() or has_common[at].any():
            raise ValueError("the rows' own sources do not match the rows read")
        sources[at] = np.concatenate([p.own_sources for p in parts])
    if own_ids.size != ids.size - int(np.count_nonzero(has_common)):
        raise ValueError("rows without their sources in the read")
    reasons = np.full(ids.size, None, dtype=object)
    flagged = [r for p in parts for r in p.flagged]
    if flagged:
        pos = np.searchsorted(ids, np.array([r["id"] for r in flagged], dtype=np.int64))
        for p, r in zip(pos, flagged, strict=True):
            reasons[p] = "negative_list:" + ",".join(sorted(r["negative_flags"]))
    return EvaluationInputs(ids, revenue, values, reasons, sources)


def _array_field(prefix: str, n_items: int, item: str = ">f8") -> tuple[str, np.dtype[np.void]]:
    # A one-dimensional float8[] (or int4[]) without NULLs in binary form: fixed width. Its
    # items are one nested field, so a column of arrays is filled by one numpy assignment
    # (with the 130 items as separate fields, 130 strided passes over the buffer took 4.8 s
    # of CPU per million scores).
    return (
        prefix,
        np.dtype(
            [
                ("len", ">i4"),
                ("ndim", ">i4"),
                ("hasnull", ">i4"),
                ("oid", ">i4"),
                ("dim", ">i4"),
                ("lb", ">i4"),
                ("items", [("l", ">i4"), ("v", item)], (n_items,)),
            ]
        ),
    )


SCORE_COLUMNS = (
    "run_id",
    "enterprise_id",
    "stage",
    "cohort",
    "scored",
    "exclusion",
    "total",
    "rank",
    "cohort_size",
    "percentile",
    "tier",
    "dimension_scores",
    "packed",
    "values",
    "revenue",
    "revenue_source",
    "explain",
)


def _score_dtype(explained: bool) -> np.dtype[np.void]:
    fields: list[tuple[str, Any]] = [
        ("nfields", ">i2"),
        ("run_len", ">i4"),
        ("run", "V16"),
        ("id_len", ">i4"),
        ("id", ">i8"),
        ("stage_len", ">i4"),
        ("stage", ">i2"),
        ("cohort_len", ">i4"),
        ("cohort", ">i2"),
        ("scored_len", ">i4"),
        ("scored", "u1"),
        ("exclusion_len", ">i4"),  # always -1 (NULL) for scored rows
        ("total_len", ">i4"),
        ("total", ">f8"),
        ("rank_len", ">i4"),
        ("rank", ">i4"),
        ("size_len", ">i4"),
        ("size", ">i4"),
        ("pct_len", ">i4"),
        ("pct", ">f8"),
        ("tier_len", ">i4"),
        ("tier", ">i2"),
        _array_field("ds", 4),
        ("packed_len", ">i4"),
        ("packed", PACKED_DTYPE),
        _array_field("vals", _N),
        ("rev_len", ">i4"),
        ("rev", ">f8"),
        ("rsrc_len", ">i4"),
        ("rsrc", ">i4"),
        ("explain_len", ">i4"),  # -1 (NULL) when the run's tables cannot be searched
    ]
    if explained:
        fields += [("explain", f"V{EXPLAIN_WIDTH}")]
    return np.dtype(fields)


def _score_template(run_id: uuid.UUID, explained: bool) -> np.ndarray:
    """One row with every length, array header and constant of a scored row filled in: a
    chunk starts as copies of it, so only the values are assigned per column."""
    row = np.zeros(1, dtype=_score_dtype(explained))
    row["nfields"] = len(SCORE_COLUMNS)
    row["run_len"] = 16
    row["run"] = np.frombuffer(run_id.bytes, dtype="V16")[0]
    for name, size in (
        ("id", 8),
        ("stage", 2),
        ("cohort", 2),
        ("scored", 1),
        ("total", 8),
        ("rank", 4),
        ("size", 4),
        ("pct", 8),
        ("tier", 2),
        ("rev", 8),
        ("rsrc", 4),
    ):
        row[f"{name}_len"] = size
    row["exclusion_len"] = -1
    row["packed_len"] = PACKED_DTYPE.itemsize
    row["scored"] = 1
    for prefix in ("ds", "vals"):
        field = row[prefix]
        items = field["items"]
        n_items = items.shape[-1]
        width = items.dtype["v"].itemsize
        field["len"] = 20 + (4 + width) * n_items
        field["ndim"] = 1
        field["oid"] = FLOAT8_OID if items.dtype["v"].kind == "f" else INT4_OID
        field["dim"] = n_items
        field["lb"] = 1
        items["l"] = width
        row[prefix] = field
    row["explain_len"] = EXPLAIN_WIDTH if explained else -1
    return row


def _sources(inputs: EvaluationInputs) -> npt.NDArray[np.int32]:
    if inputs.sources is not None:
        return inputs.sources
    return np.zeros((inputs.enterprise_ids.size, len(_SOURCE_COLUMNS)), dtype=np.int32)


async def write_scores(
    conn: asyncpg.Connection,
    run_id: uuid.UUID,
    inputs: EvaluationInputs,
    result: EngineResult,
) -> None:
    part = f"scores_{run_id.hex}"
    # Must run inside the caller's transaction: FREEZE needs the table created in it. The
    # CHECK matching the partition bound lets ATTACH skip its validation scan; made with the
    # empty table, it costs no scan of its own either.
    await conn.execute(
        f"CREATE TABLE scoring.{part} (LIKE scoring.scores INCLUDING DEFAULTS, "
        f"CONSTRAINT {part}_run CHECK (run_id = '{run_id}'))"
    )
    all_scored = np.flatnonzero(result.scored)
    tables = band_tables(result)
    if all_scored.size:
        await conn.copy_to_table(
            part,
            schema_name="scoring",
            source=_score_stream(run_id, inputs, result, all_scored, tables),
            columns=list(SCORE_COLUMNS),
            format="binary",
            freeze=True,
        )
    await _write_unscored(conn, part, run_id, inputs, result, tables)
    await conn.execute(
        f"ALTER TABLE scoring.scores ATTACH PARTITION scoring.{part} FOR VALUES IN ('{run_id}')"
    )


WRITE_CHUNK = 65_536
SEND_PIECE = 1 << 18


async def _score_stream(
    run_id: uuid.UUID,
    inputs: EvaluationInputs,
    result: EngineResult,
    rows: npt.NDArray[np.intp],
    tables: BandTables | None,
) -> AsyncIterator[bytes | memoryview]:
    """The binary COPY stream, built a chunk at a time so memory stays flat (two chunks).

    Each chunk is encoded in a worker thread while the previous one is sent and taken in
    by the server (numpy's copies release the GIL): the client's encoding and the server's
    COPY overlap on the two cores instead of taking turns."""
    yield _SIGNATURE + b"\x00\x00\x00\x00\x00\x00\x00\x00"
    chunks = [rows[start : start + WRITE_CHUNK] for start in range(0, rows.size, WRITE_CHUNK)]

    def encode(k: int) -> asyncio.Future[npt.NDArray[np.uint8]] | None:
        if k >= len(chunks):
            return None
        work = asyncio.to_thread(_score_chunk, run_id, inputs, result, chunks[k], tables)
        return asyncio.ensure_future(work)

    pending = encode(0)
    try:
        for k in range(len(chunks)):
            assert pending is not None
            encoded = (await pending).data  # the array's memory, as a memoryview
            pending = encode(k + 1)
            # In pieces: asyncpg copies each piece into a message buffer, and the transport
            # what the socket does not take at once. Pieces of a few hundred kB reuse the
            # same heap memory; a 40 MB chunk at once was fresh pages every time (page
            # faults and copies: ~2 s of client CPU per million scores).
            for start in range(0, len(encoded), SEND_PIECE):
                yield encoded[start : start + SEND_PIECE]
    finally:
        if pending is not None:  # the COPY failed: nobody will wait for the next chunk
            pending.cancel()
    yield b"\xff\xff"


def _score_chunk(
    run_id: uuid.UUID,
    inputs: EvaluationInputs,
    result: EngineResult,
    scored: npt.NDArray[np.intp],
    tables: BandTables | None,
) -> npt.NDArray[np.uint8]:
    buf = np.repeat(_score_template(run_id, tables is not None), scored.size)
    buf["id"] = inputs.enterprise_ids[scored]
    buf["stage"] = result.stage[scored]
    buf["cohort"] = result.cohort[scored]
    buf["total"] = result.total[scored]
    buf["rank"] = result.rank[scored]
    buf["size"] = result.cohort_size[scored]
    buf["pct"] = result.percentile[scored]
    buf["tier"] = result.tier[scored]
    buf["rev"] = inputs.revenue[scored]
    buf["ds"]["items"]["v"] = result.dimension_scores[scored]
    packed = buf["packed"]
    packed["dp"] = result.dimension_percentiles[scored]
    packed["pts"] = result.points[scored]
    buf["vals"]["items"]["v"] = inputs.values[scored]
    sources = _sources(inputs)[scored]
    packed["srcs"] = sources[:, :_N]
    buf["rsrc"] = sources[:, _N]
    if tables is not None:
        buf["explain"] = explain_codes(result, scored, tables).view(f"V{EXPLAIN_WIDTH}")[:, 0]
    return buf.view(np.uint8)


async def _write_unscored(
    conn: asyncpg.Connection,
    part: str,
    run_id: uuid.UUID,
    inputs: EvaluationInputs,
    result: EngineResult,
    tables: BandTables | None,
) -> None:
    unscored = np.flatnonzero(~result.scored)
    sources = _sources(inputs)
    if unscored.size:
        explained = None if tables is None else explain_codes(result, unscored, tables)
        nan4 = [float("nan")] * 4
        packed = np.zeros(unscored.size, dtype=PACKED_DTYPE)
        packed["dp"] = np.nan
        packed["srcs"] = sources[unscored, :_N]
        records = [
            (
                run_id,
                int(inputs.enterprise_ids[i]),
                int(result.stage[i]),
                -1,
                False,
                str(result.exclusion[i]),
                None,
                None,
                None,
                None,
                None,
                nan4,
                packed[k].tobytes(),
                [float(v) for v in inputs.values[i]],
                float(inputs.revenue[i]),
                int(sources[i, _N]),
                None if explained is None else explained[k].tobytes(),
            )
            for k, i in enumerate(unscored)
        ]
        await conn.copy_records_to_table(
            part, schema_name="scoring", records=records, columns=list(SCORE_COLUMNS)
        )
