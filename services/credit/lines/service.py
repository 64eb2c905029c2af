"""Pre-approved lines in the database: rebuilt from the current evaluation, read for offers."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.common import raw_connection
from services.credit.lines.rules import (
    NO_STAGE,
    OTHER_STAGE,
    STAGE_ORDER,
    LineColumns,
    LineRule,
    ProductRule,
    ScoreColumns,
    ScoreFacts,
    compute_line_columns,
)
from services.credit.models import (
    CreditLine,
    CreditProduct,
    EnterpriseScore,
    ProductVersion,
)
from shared import pgcopy
from shared.metrics import JOB_DURATION


@dataclass(frozen=True)
class RecomputeReport:
    run_id: uuid.UUID | None
    products: int
    enterprises: int
    lines: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PublishedRun:
    """The current evaluation as its readers use it."""

    run_id: uuid.UUID
    period: int
    model_version: str
    enterprise_count: int


_CURRENT_RUN = text(
    "SELECT run_id, period, model_version, enterprise_count FROM credit.evaluations "
    "ORDER BY period DESC, event_id DESC LIMIT 1"
)


async def current_evaluation(session: AsyncSession) -> PublishedRun | None:
    """The newest published evaluation imported: latest period, then latest publication.
    Raw, not an ORM entity: loading the entity was a tenth of an offer's CPU (py-spy)."""
    row = (await session.execute(_CURRENT_RUN)).first()
    if row is None:
        return None
    # asyncpg's own UUID type without the ORM's column type: the ORM's uuid.UUID here.
    return PublishedRun(
        uuid.UUID(str(row.run_id)), row.period, row.model_version, row.enterprise_count
    )


def product_rule(version: ProductVersion) -> ProductRule:
    return ProductRule(
        product_id=str(version.product_id),
        version=version.version,
        eligible_stages=frozenset(version.eligible_stages),
        min_tier=version.min_tier,
        min_percentile=version.min_percentile,
        max_amount=version.max_amount,
        rule=LineRule.model_validate(version.line_rule),
    )


async def published_rules(
    session: AsyncSession, product_ids: Sequence[uuid.UUID] | None = None
) -> list[ProductRule]:
    stmt = (
        select(ProductVersion)
        .join(CreditProduct, CreditProduct.id == ProductVersion.product_id)
        .where(
            CreditProduct.status == "published",
            ProductVersion.version == CreditProduct.published_version,
        )
        .order_by(ProductVersion.product_id)
    )
    if product_ids is not None:
        stmt = stmt.where(CreditProduct.id.in_(product_ids))
    return [product_rule(v) for v in await session.scalars(stmt)]


async def load_scores(session: AsyncSession, run_id: uuid.UUID) -> list[ScoreFacts]:
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT uscc, stage, scored, exclusion, percentile, tier "
        "FROM credit.enterprise_scores WHERE run_id = $1",
        run_id,
    )
    return [ScoreFacts(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


# Fixed-width rows: the code as char(18) with its length in bytes, then numbers. A code of
# other than 18 ASCII bytes (never seen: scoring validates them) falls back to a plain fetch.
_SCORE_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("uscc_len", ">i4"),
        ("uscc", "S18"),
        ("length_len", ">i4"),
        ("length", ">i2"),
        ("stage_len", ">i4"),
        ("stage", ">i2"),
        ("clear_len", ">i4"),
        ("clear", ">i2"),
        ("pct_len", ">i4"),
        ("pct", ">f8"),
        ("tier_len", ">i4"),
        ("tier", ">f8"),
    ]
)
_SCORE_QUERY = """
SELECT uscc::char(18), octet_length(uscc)::int2,
       coalesce(array_position($2::text[], stage::text) - 1,
                CASE WHEN stage IS NULL THEN $3::int ELSE $4::int END)::int2,
       (scored AND coalesce(exclusion, '') = '')::int::int2,
       coalesce(percentile, 'NaN'::float8), coalesce(tier::float8, 'NaN'::float8)
FROM credit.enterprise_scores WHERE run_id = $1 ORDER BY uscc
"""


async def read_score_columns(session: AsyncSession, run_id: uuid.UUID) -> ScoreColumns:
    """The run's scores as columns, in USCC order, through one binary COPY (a million rows
    without a Python object per value); what `compute_line_columns` takes."""
    conn = await raw_connection(session)
    sink = io.BytesIO()
    await conn.copy_from_query(
        _SCORE_QUERY, run_id, list(STAGE_ORDER), NO_STAGE, OTHER_STAGE, output=sink, format="binary"
    )
    body = memoryview(sink.getvalue())[len(pgcopy.HEADER) : -len(pgcopy.TRAILER)]
    if len(body) % _SCORE_ROW.itemsize:
        return _score_columns(await load_scores(session, run_id))
    rows = np.frombuffer(body, dtype=_SCORE_ROW)
    if ((rows["uscc_len"] != 18) | (rows["length"] != 18) | (rows["nfields"] != 6)).any():
        return _score_columns(await load_scores(session, run_id))
    codes = rows["uscc"]
    if len(codes) > 1 and not (codes[1:] >= codes[:-1]).all():
        # The database's order is byte order for USCCs; anything else is put in byte order.
        rows = rows[np.argsort(codes, kind="stable")]
    return ScoreColumns(
        usccs=rows["uscc"].copy(),  # ASCII bytes: written back as they are
        stage=rows["stage"].astype(np.int16),
        clear=rows["clear"] == 1,
        percentile=rows["pct"].astype(np.float64),
        tier=rows["tier"].astype(np.float64),
    )


# Scoring's export columns that lines read, typed as the table stores them (the code kept as
# bytes, as `read_score_columns` reads it: written back as they are).
_CSV_TYPES = {
    "uscc": pa.binary(),
    "stage": pa.string(),
    "scored": pa.bool_(),
    "exclusion": pa.string(),
    "percentile": pa.float64(),
    "tier": pa.float64(),
}


def score_columns_from_csv(body: bytes | bytearray) -> ScoreColumns:
    """What `read_score_columns` reads back after the export's CSV is stored, from the CSV
    itself: the feed sync has it in hand, and reading a million scores back (a sorted
    binary COPY) cost 6-7 s at a million enterprises. PostgreSQL's CSV conventions as its
    COPY reads them (an unquoted empty cell is NULL, a quoted one the empty string; `t`/`f`),
    numbers parsed to the same doubles (both round correctly), rows put in byte order."""
    return scores_from_csv(body)[0]


def scores_from_csv(body: bytes | bytearray) -> tuple[ScoreColumns, int]:
    """`score_columns_from_csv`, and the number of rows scored without an exclusion (NULL,
    as PostgreSQL's COPY reads the cell): an evaluation's `scored_count`."""
    table = pa_csv.read_csv(
        pa.py_buffer(body),
        convert_options=pa_csv.ConvertOptions(
            column_types=_CSV_TYPES,
            include_columns=list(_CSV_TYPES),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    stage = table.column("stage")
    codes = pc.index_in(stage, value_set=pa.array(STAGE_ORDER)).fill_null(OTHER_STAGE)
    no_stage = stage.is_null().to_numpy(zero_copy_only=False)
    scored = pc.fill_null(table.column("scored"), False)
    unexcluded = pc.sum(pc.and_(scored, table.column("exclusion").is_null())).as_py() or 0
    exclusion = pc.fill_null(table.column("exclusion"), "")
    clear = pc.and_(scored, pc.equal(exclusion, ""))
    usccs = np.asarray(table.column("uscc").to_numpy(zero_copy_only=False)).astype(np.bytes_)
    columns = ScoreColumns(
        usccs=usccs,
        stage=np.where(no_stage, NO_STAGE, codes.to_numpy(zero_copy_only=False)).astype(np.int16),
        clear=np.asarray(clear.to_numpy(zero_copy_only=False), dtype=np.bool_),
        percentile=_nan_floats(table.column("percentile")),
        tier=_nan_floats(table.column("tier")),
    )
    if len(usccs) > 1 and not (usccs[1:] >= usccs[:-1]).all():
        order = np.argsort(usccs, kind="stable")
        columns = ScoreColumns(
            usccs=usccs[order],
            stage=columns.stage[order],
            clear=columns.clear[order],
            percentile=columns.percentile[order],
            tier=columns.tier[order],
        )
    return columns, int(unexcluded)


def _nan_floats(column: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    values = pc.fill_null(column, np.nan).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _score_columns(scores: list[ScoreFacts]) -> ScoreColumns:
    return ScoreColumns.of(sorted(scores, key=lambda s: s.uscc))


_CHUNK = 250_000


def _line_chunks(
    scores: ScoreColumns,
    rules: Sequence[ProductRule],
    lines: LineColumns,
    run_id: uuid.UUID,
) -> Iterator[list[pgcopy.Field]]:
    """Rows of `LINE_COLUMNS`, a chunk at a time."""
    usccs: npt.NDArray[np.bytes_] = (
        scores.usccs.astype(np.bytes_, copy=False)  # read from the database: bytes already
        if scores.usccs.dtype.kind == "S"
        else pgcopy.utf8(scores.usccs.astype(np.str_))
    )
    products = np.array([uuid.UUID(r.product_id).bytes for r in rules], dtype="S16")
    versions = np.array([r.version for r in rules], dtype=">i4")
    run = np.array([run_id.bytes], dtype="S16")
    for start in range(0, len(lines.row), _CHUNK):
        row = lines.row[start : start + _CHUNK]
        product = lines.product[start : start + _CHUNK]
        yield [
            pgcopy.text_field(usccs[row]),
            pgcopy.Field(products[product], np.full(len(row), 16, dtype=np.int32)),
            pgcopy.Field(versions[product]),
            pgcopy.Field(np.repeat(run, len(row)), np.full(len(row), 16, dtype=np.int32)),
            pgcopy.Field(lines.amount[start : start + _CHUNK].astype(">i8")),
            pgcopy.Field(lines.band[start : start + _CHUNK].astype(">i2")),
        ]


LINE_COLUMNS = ("uscc", "product_id", "product_version", "run_id", "amount", "band")
_REBUILD_ABOVE = 100_000  # lines; below, the index is cheaper to keep than to rebuild


async def recompute_lines(
    session: AsyncSession,
    product_ids: Sequence[uuid.UUID] | None = None,
    *,
    scores: tuple[uuid.UUID, ScoreColumns] | None = None,
) -> RecomputeReport:
    """Replace the lines of the given products (all when None) from the current evaluation.

    In the caller's transaction, and idempotent: running it twice leaves the same rows, so a
    replayed event or a repeated publish is harmless. The lines are computed on columns
    (`compute_line_columns`) and written with one binary COPY, in key order.

    A full recomputation empties the table with TRUNCATE rather than DELETE: deleting three
    million lines and inserting the same keys made every insert check its key against the
    dead row (5.6 M buffer reads for a million lines, EXPLAIN ANALYZE) and doubled the table
    each time. TRUNCATE locks the table until commit, so readers of lines wait for the
    seconds the write takes at a million enterprises, rather than read the old lines; and
    the rows are written frozen (COPY FREEZE, allowed after TRUNCATE in the same
    transaction), which spares the first readers setting hint bits on every page.

    `scores`: a run's scores as `read_score_columns` would read them, from whoever just
    stored them (the feed sync); used when that run is the current evaluation, else read.
    """
    started = time.perf_counter()
    evaluation = await current_evaluation(session)
    conn = await raw_connection(session)
    if product_ids is None:
        await conn.execute("TRUNCATE credit.credit_lines")
    else:
        await session.execute(delete(CreditLine).where(CreditLine.product_id.in_(product_ids)))
    rules = await published_rules(session, product_ids)
    if evaluation is None or not rules:
        return RecomputeReport(evaluation.run_id if evaluation else None, len(rules), 0, 0, 0.0)
    if scores is not None and scores[0] == evaluation.run_id:
        columns = scores[1]
    else:
        columns = await read_score_columns(session, evaluation.run_id)
    lines = await asyncio.to_thread(compute_line_columns, columns, rules)
    full = product_ids is None and len(lines.row) > _REBUILD_ABOVE
    if full:
        # Into an empty table, building the key's index once after the load costs less than
        # maintaining it row by row (a third less at a million enterprises, measured).
        await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        await conn.execute("ALTER TABLE credit.credit_lines DROP CONSTRAINT pk_credit_lines")
    if len(lines.row):
        await conn.copy_to_table(
            "credit_lines",
            schema_name="credit",
            source=pgcopy.stream(_line_chunks(columns, rules, lines, evaluation.run_id)),
            columns=LINE_COLUMNS,
            format="binary",
            freeze=product_ids is None,
        )
    if full:
        await conn.execute(
            "ALTER TABLE credit.credit_lines ADD CONSTRAINT pk_credit_lines "
            "PRIMARY KEY (uscc, product_id)"
        )
    seconds = time.perf_counter() - started
    JOB_DURATION.labels("credit", "recompute_lines").observe(seconds)
    return RecomputeReport(
        evaluation.run_id, len(rules), evaluation.enterprise_count, len(lines.row), seconds
    )


async def score_of(session: AsyncSession, run_id: uuid.UUID, uscc: str) -> EnterpriseScore | None:
    return await session.get(EnterpriseScore, (run_id, uscc))


def facts(score: EnterpriseScore) -> ScoreFacts:
    return ScoreFacts(
        score.uscc, score.stage, score.scored, score.exclusion, score.percentile, score.tier
    )
