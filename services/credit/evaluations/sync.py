"""Following the scoring service: published evaluations become lines.

The cursor into scoring's event feed is a row here, advanced in the same transaction that
imports the evaluation and rebuilds the lines, so an event is either fully applied or not at
all: after a crash or while this service was down, the next sync resumes from the cursor and
misses nothing. Re-reading an event already applied changes nothing.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import structlog
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import RUN_SCORE_FIELDS
from services.credit.common import raw_connection
from services.credit.lines.rules import NO_STAGE, OTHER_STAGE, STAGE_ORDER, ScoreColumns
from services.credit.lines.service import current_evaluation, recompute_lines
from services.credit.models import ConsumerCursor, EnterpriseScore, Evaluation
from services.credit.settings import CreditSettings
from shared import pgcopy
from shared.errors import UpstreamError
from shared.feed import Export, FeedConsumer, FeedReport, open_export, payload_of
from shared.service_client import ServiceClient

log = structlog.get_logger("credit.sync")

CURSOR = "scoring.events"
SCORE_COLUMNS = ("run_id", *RUN_SCORE_FIELDS)


def ScoringClient(app: FastAPI) -> ServiceClient:
    settings: CreditSettings = app.state.settings
    return ServiceClient(app, "scoring", settings.scoring_url)


# What lines need of a run, as scoring's export names its columns (in its order).
EXPORT_COLUMNS = SCORE_COLUMNS[1:]


# The binary form of each exported column in `enterprise_scores` (text columns as bytes).
_SCORE_TYPES = {
    "scored": "u1",
    "total": ">f8",
    "rank": ">i4",
    "cohort_size": ">i4",
    "percentile": ">f8",
    "tier": ">i2",
}
_CHUNK = 250_000


def _read_arrow(body: bytes, label: str) -> pa.Table:
    """The export's Arrow stream as a table of exactly the expected columns."""
    try:
        table = pa.ipc.open_stream(io.BytesIO(body)).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise UpstreamError(f"{label}: unreadable export: {exc}") from exc
    if tuple(table.column_names) != EXPORT_COLUMNS:
        raise UpstreamError(f"{label}: unexpected columns {table.column_names}")
    return table


def score_columns(table: pa.Table) -> ScoreColumns:
    """What `read_score_columns` reads back from `enterprise_scores`, from the export's
    columns: in USCC byte order, the stage as its code, `clear` for scored without an
    exclusion (NULL or empty), NaN for a missing percentile or tier."""
    usccs = table.column("uscc").cast(pa.binary()).to_numpy(zero_copy_only=False)
    usccs = np.asarray(usccs).astype(np.bytes_)
    stage = pc.index_in(table.column("stage"), value_set=pa.array(STAGE_ORDER))
    codes = np.where(
        table.column("stage").is_null().to_numpy(zero_copy_only=False),
        NO_STAGE,
        stage.fill_null(OTHER_STAGE).to_numpy(zero_copy_only=False),
    ).astype(np.int16)
    exclusion = pc.fill_null(table.column("exclusion"), "")
    clear = pc.and_(pc.fill_null(table.column("scored"), False), pc.equal(exclusion, ""))
    columns = ScoreColumns(
        usccs=usccs,
        stage=codes,
        clear=np.asarray(clear.to_numpy(zero_copy_only=False), dtype=np.bool_),
        percentile=_floats(table.column("percentile")),
        tier=_floats(table.column("tier")),
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
    return columns


def _floats(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.float64]]:
    values = column.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64)


def _score_chunks(table: pa.Table, run_id: uuid.UUID) -> Iterator[list[pgcopy.Field]]:
    """Rows of `SCORE_COLUMNS` from the export's columns, a chunk at a time."""
    run = np.array([run_id.bytes], dtype="S16")
    for start in range(0, table.num_rows, _CHUNK):
        part = table.slice(start, _CHUNK)
        yield [
            pgcopy.Field(np.repeat(run, part.num_rows)),
            *(pgcopy.arrow_field(part.column(c), _SCORE_TYPES.get(c)) for c in EXPORT_COLUMNS),
        ]


async def _import_arrow(
    conn: Any, export: Export, run_id: uuid.UUID
) -> tuple[int, int, ScoreColumns]:
    """The export's Arrow stream into `enterprise_scores` with one binary COPY; the counts,
    and the scores as lines read them (so they are not read back)."""
    body = bytearray()
    async for chunk in export.chunks():
        body += chunk
    table = await asyncio.to_thread(_read_arrow, bytes(body), export.label)
    del body
    export.check(table.num_rows)
    status = await conn.copy_to_table(
        "enterprise_scores",
        schema_name="credit",
        source=pgcopy.stream(_score_chunks(table, run_id)),
        columns=SCORE_COLUMNS,
        format="binary",
    )
    export.check(int(status.split()[-1]))
    scored = pc.and_(
        pc.fill_null(table.column("scored"), False), table.column("exclusion").is_null()
    )
    columns = await asyncio.to_thread(score_columns, table)
    return table.num_rows, int(pc.sum(scored).as_py() or 0), columns


async def import_evaluation(
    session: AsyncSession, scoring: ServiceClient, event_id: int, payload: Mapping[str, Any]
) -> tuple[Evaluation, ScoreColumns | None]:
    """Copy a published run's scores (what lines need) into this service; with them, when
    read from an Arrow export, the scores as the lines' computation takes them.

    The export is asked for as Arrow IPC: its typed columns are written with one binary COPY
    straight into `enterprise_scores` and kept for the lines (a million enterprises: no
    numbers formatted as text and parsed, no table of the transaction copied into the next,
    no scores read back). A CSV export (scoring answering with that) goes straight into
    PostgreSQL's own CSV COPY as it arrives (into a table of this transaction, then beside
    the run id). Either way no Python object per row, and a cut or malformed body fails
    the import, which rolls the whole event back.
    """
    run_id = uuid.UUID(str(payload["run_id"]))
    conn = await raw_connection(session)
    evaluation = Evaluation(
        run_id=run_id,
        period=int(payload["period"]),
        model_version=str(payload.get("model_version", "")),
        event_id=event_id,
        enterprise_count=0,
        scored_count=0,
    )
    session.add(evaluation)
    await session.flush()
    path = f"/v1/evaluations/{run_id}/scores/export"
    async with open_export(scoring, path, arrow=True) as export:
        if export.arrow:
            n, scored, columns = await _import_arrow(conn, export, run_id)
            evaluation.enterprise_count, evaluation.scored_count = n, scored
            await session.flush()
            return evaluation, columns
        await _import_csv(conn, export, evaluation)
    await session.flush()
    return evaluation, None


async def _import_csv(conn: Any, export: Export, evaluation: Evaluation) -> None:
    await conn.execute(
        "CREATE TEMPORARY TABLE run_export "
        "(LIKE credit.enterprise_scores INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await conn.execute("ALTER TABLE run_export ALTER COLUMN run_id DROP NOT NULL")
    if tuple(export.header) != EXPORT_COLUMNS:
        raise UpstreamError(f"{export.label}: unexpected columns {export.header}")
    status = await conn.copy_to_table(
        "run_export",
        source=export.chunks(),
        columns=EXPORT_COLUMNS,
        format="csv",
        header=True,
    )
    export.check(int(status.split()[-1]))
    cols = ", ".join(EXPORT_COLUMNS)
    inserted = await conn.fetchrow(
        f"WITH rows AS (INSERT INTO credit.enterprise_scores (run_id, {cols}) "
        f"SELECT $1, {cols} FROM run_export "
        "RETURNING scored, exclusion) "
        "SELECT count(*) AS n, count(*) FILTER (WHERE scored AND exclusion IS NULL) AS s "
        "FROM rows",
        evaluation.run_id,
    )
    await conn.execute("DROP TABLE run_export")
    evaluation.enterprise_count = int(inserted["n"])
    evaluation.scored_count = int(inserted["s"])


async def apply_event(
    session: AsyncSession, scoring: ServiceClient, event: Mapping[str, Any], report: FeedReport
) -> None:
    payload = payload_of(event, "evaluation.published", report)
    if payload is None:
        return
    run_id = uuid.UUID(str(payload["run_id"]))
    if await session.get(Evaluation, run_id) is not None:
        report.skipped += 1
        return
    current = await current_evaluation(session)
    if current is not None and int(payload["period"]) < current.period:
        # A re-publication of an older period does not replace the newer lines.
        report.skipped += 1
        return
    # A million rows go through a few statements here, each run once: JIT compiling them
    # cost seconds apiece (EXPLAIN ANALYZE), and the sorts fit in memory at 128 MB.
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    evaluation, columns = await import_evaluation(session, scoring, int(event["id"]), payload)
    # Keep only the current run's scores: applications carry their own evidence.
    await session.execute(delete(Evaluation).where(Evaluation.run_id != evaluation.run_id))
    await session.execute(
        delete(EnterpriseScore).where(EnterpriseScore.run_id != evaluation.run_id)
    )
    # The scores just imported, not read back (a million enterprises' columns).
    await recompute_lines(session, scores=None if columns is None else (run_id, columns))
    report.imported.append(str(run_id))
    log.info(
        "evaluation imported",
        run_id=str(run_id),
        period=evaluation.period,
        enterprises=evaluation.enterprise_count,
    )


FEED = FeedConsumer(ConsumerCursor, CURSOR, apply_event)


async def sync_evaluations(app: FastAPI) -> FeedReport:
    """Apply every scoring event after the cursor; each in its own transaction."""
    settings: CreditSettings = app.state.settings
    return await FEED.catch_up(
        app.state.sessionmaker, ScoringClient(app), settings.events_batch, FeedReport()
    )
