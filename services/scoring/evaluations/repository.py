"""Moving an evaluation's data between PostgreSQL and numpy with binary COPY.

Written by hand because no library does this: rows are read and written in PostgreSQL's
binary COPY format laid over a numpy structured dtype, so one million rows move without one
Python object per value (measured for 1M x 24: asyncpg `fetch` 20 s, binary COPY parsed
row by row 9 s; this path is a small fraction of that). Every column read is made NOT NULL
(NaN for missing) so each tuple has the same width and the buffer is one array.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import numpy as np
import numpy.typing as npt

from contracts.catalogue import INDICATOR_CODES
from services.scoring.engine import (
    EXPLAIN_WIDTH,
    BandTables,
    EngineResult,
    band_tables,
    explain_codes,
)
from services.scoring.provenance.repository import SOURCE_INDEX

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
    fields: list[tuple[str, str]] = [("nfields", ">i2"), ("id_len", ">i4"), ("id", ">i8")]
    for k in range(_N + 1):
        fields += [(f"l{k}", ">i4"), (f"v{k}", ">f8")]
    for k in range(len(_SOURCE_COLUMNS)):
        fields += [(f"sl{k}", ">i4"), (f"s{k}", ">i4")]
    return np.dtype(fields)


def _strip_envelope(buf: bytes) -> memoryview:
    if not buf.startswith(_SIGNATURE):
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext_len = int.from_bytes(buf[15:19], "big")
    body = memoryview(buf)[19 + ext_len :]
    if bytes(body[-2:]) != b"\xff\xff":
        raise ValueError("binary COPY stream has no trailer")
    return body[:-2]


async def read_inputs(conn: asyncpg.Connection, period: int) -> EvaluationInputs:
    cols = ", ".join(f"coalesce(f.\"{c}\", 'NaN')" for c in ("operating_revenue", *INDICATOR_CODES))
    cols += "".join(f", coalesce(f.sources[{SOURCE_INDEX[c]}], 0)" for c in _SOURCE_COLUMNS)
    # No ORDER BY: sorting a million wide rows spills to disk; numpy sorts the ids instead.
    query = f"SELECT f.enterprise_id, {cols} FROM scoring.facts f WHERE f.period = {int(period)}"
    sink = io.BytesIO()
    await conn.copy_from_query(query, output=sink, format="binary")
    body = _strip_envelope(sink.getvalue())
    dtype = _input_dtype()
    if len(body) % dtype.itemsize:
        raise ValueError("unexpected row width in binary COPY")
    rows = np.frombuffer(body, dtype=dtype)
    if rows.size and (rows["nfields"] != _N + 2 + len(_SOURCE_COLUMNS)).any():
        raise ValueError("unexpected field count in binary COPY")
    rows = rows[np.argsort(rows["id"], kind="stable")]
    n = rows.size
    ids = rows["id"].astype(np.int64)
    revenue = rows["v0"].astype(np.float64)
    values = np.empty((n, _N), dtype=np.float64)
    for k in range(_N):
        values[:, k] = rows[f"v{k + 1}"]
    sources = np.empty((n, len(_SOURCE_COLUMNS)), dtype=np.int32)
    for k in range(len(_SOURCE_COLUMNS)):
        sources[:, k] = rows[f"s{k}"]
    reasons = np.full(n, None, dtype=object)
    flagged = await conn.fetch(
        "SELECT f.enterprise_id AS id, f.negative_flags FROM scoring.facts f "
        "WHERE f.period = $1 AND cardinality(f.negative_flags) > 0",
        period,
    )
    if flagged:
        pos = np.searchsorted(ids, np.array([r["id"] for r in flagged], dtype=np.int64))
        for p, r in zip(pos, flagged, strict=True):
            reasons[p] = "negative_list:" + ",".join(sorted(r["negative_flags"]))
    return EvaluationInputs(ids, revenue, values, reasons, sources)


def _array_field(prefix: str, n_items: int, item: str = ">f8") -> list[tuple[str, str]]:
    # A one-dimensional float8[] (or int4[]) without NULLs in binary form: fixed width.
    fields = [
        (f"{prefix}_len", ">i4"),
        (f"{prefix}_ndim", ">i4"),
        (f"{prefix}_hasnull", ">i4"),
        (f"{prefix}_oid", ">i4"),
        (f"{prefix}_dim", ">i4"),
        (f"{prefix}_lb", ">i4"),
    ]
    for k in range(n_items):
        fields += [(f"{prefix}_l{k}", ">i4"), (f"{prefix}_v{k}", item)]
    return fields


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
    "dimension_percentiles",
    "points",
    "values",
    "revenue",
    "value_sources",
    "revenue_source",
    "explain",
)


def _score_dtype(explained: bool) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [
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
    ]
    fields += _array_field("ds", 4)
    fields += _array_field("dp", 4)
    fields += _array_field("pts", _N)
    fields += _array_field("vals", _N)
    fields += [("rev_len", ">i4"), ("rev", ">f8")]
    fields += _array_field("srcs", _N, ">i4")
    fields += [("rsrc_len", ">i4"), ("rsrc", ">i4")]
    fields += [("explain_len", ">i4")]  # -1 (NULL) when the run's tables cannot be searched
    if explained:
        fields += [("explain", f"V{EXPLAIN_WIDTH}")]
    return np.dtype(fields)


def _fill_array(buf: np.ndarray, prefix: str, data: npt.NDArray[np.generic]) -> None:
    n_items = data.shape[1]
    width = data.dtype.itemsize
    buf[f"{prefix}_len"] = 20 + (4 + width) * n_items
    buf[f"{prefix}_ndim"] = 1
    buf[f"{prefix}_hasnull"] = 0
    buf[f"{prefix}_oid"] = FLOAT8_OID if data.dtype.kind == "f" else INT4_OID
    buf[f"{prefix}_dim"] = n_items
    buf[f"{prefix}_lb"] = 1
    for k in range(n_items):
        buf[f"{prefix}_l{k}"] = width
        buf[f"{prefix}_v{k}"] = data[:, k]


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
    # Must run inside the caller's transaction: FREEZE needs the table created in it.
    await conn.execute(f"CREATE TABLE scoring.{part} (LIKE scoring.scores INCLUDING DEFAULTS)")
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
    # A CHECK matching the partition bound lets ATTACH skip its validation scan.
    await conn.execute(
        f"ALTER TABLE scoring.{part} ADD CONSTRAINT {part}_run CHECK (run_id = '{run_id}')"
    )
    await conn.execute(
        f"ALTER TABLE scoring.scores ATTACH PARTITION scoring.{part} FOR VALUES IN ('{run_id}')"
    )


WRITE_CHUNK = 65_536


async def _score_stream(
    run_id: uuid.UUID,
    inputs: EvaluationInputs,
    result: EngineResult,
    rows: npt.NDArray[np.intp],
    tables: BandTables | None,
) -> AsyncIterator[bytes]:
    """The binary COPY stream, built a chunk at a time so memory stays flat."""
    yield _SIGNATURE + b"\x00\x00\x00\x00\x00\x00\x00\x00"
    for start in range(0, rows.size, WRITE_CHUNK):
        yield _score_chunk(run_id, inputs, result, rows[start : start + WRITE_CHUNK], tables)
    yield b"\xff\xff"


def _score_chunk(
    run_id: uuid.UUID,
    inputs: EvaluationInputs,
    result: EngineResult,
    scored: npt.NDArray[np.intp],
    tables: BandTables | None,
) -> bytes:
    buf = np.zeros(scored.size, dtype=_score_dtype(tables is not None))
    buf["nfields"] = len(SCORE_COLUMNS)
    buf["run_len"] = 16
    buf["run"] = np.frombuffer(run_id.bytes, dtype="V16")[0]
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
        buf[f"{name}_len"] = size
    buf["exclusion_len"] = -1
    buf["id"] = inputs.enterprise_ids[scored]
    buf["stage"] = result.stage[scored]
    buf["cohort"] = result.cohort[scored]
    buf["scored"] = 1
    buf["total"] = result.total[scored]
    buf["rank"] = result.rank[scored]
    buf["size"] = result.cohort_size[scored]
    buf["pct"] = result.percentile[scored]
    buf["tier"] = result.tier[scored]
    buf["rev"] = inputs.revenue[scored]
    _fill_array(buf, "ds", result.dimension_scores[scored])
    _fill_array(buf, "dp", result.dimension_percentiles[scored])
    _fill_array(buf, "pts", result.points[scored])
    _fill_array(buf, "vals", inputs.values[scored])
    sources = _sources(inputs)[scored]
    _fill_array(buf, "srcs", np.ascontiguousarray(sources[:, :_N]))
    buf["rsrc"] = sources[:, _N]
    if tables is None:
        buf["explain_len"] = -1
    else:
        buf["explain_len"] = EXPLAIN_WIDTH
        buf["explain"] = explain_codes(result, scored, tables).view(f"V{EXPLAIN_WIDTH}")[:, 0]
    return buf.tobytes()


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
                nan4,
                [0.0] * _N,
                [float(v) for v in inputs.values[i]],
                float(inputs.revenue[i]),
                [int(v) for v in sources[i, :_N]],
                int(sources[i, _N]),
                None if explained is None else explained[k].tobytes(),
            )
            for k, i in enumerate(unscored)
        ]
        await conn.copy_records_to_table(
            part, schema_name="scoring", records=records, columns=list(SCORE_COLUMNS)
        )
