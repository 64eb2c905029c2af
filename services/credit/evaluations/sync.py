"""Following the scoring service: published evaluations become lines.

The cursor into scoring's event feed is a row here, advanced in the same transaction that
imports the evaluation and rebuilds the lines, so an event is either fully applied or not at
all: after a crash or while this service was down, the next sync resumes from the cursor and
misses nothing. Re-reading an event already applied changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import RUN_SCORE_FIELDS
from services.credit.common import raw_connection
from services.credit.lines.rules import ScoreColumns
from services.credit.lines.service import (
    current_evaluation,
    recompute_lines,
    scores_from_csv,
)
from services.credit.models import ConsumerCursor, EnterpriseScore, Evaluation
from services.credit.settings import CreditSettings
from shared.errors import UpstreamError
from shared.feed import FeedConsumer, FeedReport, open_export, payload_of
from shared.service_client import ServiceClient

log = structlog.get_logger("credit.sync")

CURSOR = "scoring.events"
SCORE_COLUMNS = ("run_id", *RUN_SCORE_FIELDS)


def ScoringClient(app: FastAPI) -> ServiceClient:
    settings: CreditSettings = app.state.settings
    return ServiceClient(app, "scoring", settings.scoring_url)


# What lines need of a run, as scoring's export names its columns (in its order).
EXPORT_COLUMNS = SCORE_COLUMNS[1:]


class RunIdPrefix:
    """Scoring's CSV with the run id as a first cell on every record (not the header line),
    chunk by chunk, so that the body goes into `enterprise_scores` with one COPY rather than
    into a table of the transaction and then INSERT ... SELECT (the INSERT was 4-10 s at a
    million enterprises under load, with nothing to overlap it; the COPY overlaps the export).

    A newline ends a record unless it is inside a quoted cell, that is after an odd number
    of quotes (an escaped quote is two): chunks without quotes, the common case, are
    rewritten by one `bytes.replace`; the others line by line, counting quotes.
    """

    def __init__(self, run_id: uuid.UUID) -> None:
        self.prefix = f"{run_id},".encode()
        self.quoted = False  # inside a quoted cell at the end of what was fed
        self.pending = False  # a record ended there: the next byte starts one

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        if not self.quoted and b'"' not in chunk:
            out = chunk.replace(b"\n", b"\n" + self.prefix)
            if self.pending:
                out = self.prefix + out
            self.pending = chunk.endswith(b"\n")
            return out[: -len(self.prefix)] if self.pending else out
        pieces: list[bytes] = []
        for i, part in enumerate(chunk.split(b"\n")):
            if i:
                pieces.append(b"\n")
                self.pending = self.pending or not self.quoted
            if part:
                if self.pending:
                    pieces.append(self.prefix)
                    self.pending = False
                pieces.append(part)
                self.quoted ^= bool(part.count(b'"') & 1)
        return b"".join(pieces)


async def import_evaluation(
    session: AsyncSession, scoring: ServiceClient, event_id: int, payload: Mapping[str, Any]
) -> tuple[Evaluation, ScoreColumns]:
    """Copy a published run's scores (what lines need) into this service; with them, the
    scores as the lines' computation reads them, so they are not read back.

    Scoring's CSV export goes straight into PostgreSQL's own CSV COPY as it arrives, each
    record prefixed with the run id (`RunIdPrefix`): no Python object per row, and a cut or
    malformed body fails the COPY, which rolls the whole event back. The body is also kept
    (~120 MB at a million enterprises) and read as columns once the COPY accepted it.
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
    async with open_export(scoring, f"/v1/evaluations/{run_id}/scores/export") as export:
        if tuple(export.header) != EXPORT_COLUMNS:
            raise UpstreamError(f"{export.label}: unexpected columns {export.header}")
        body = bytearray()
        prefix = RunIdPrefix(run_id)

        async def kept() -> AsyncIterator[bytes]:
            async for chunk in export.chunks():
                body.extend(chunk)
                yield prefix.feed(chunk)

        status = await conn.copy_to_table(
            "enterprise_scores",
            schema_name="credit",
            source=kept(),
            columns=SCORE_COLUMNS,
            format="csv",
            header=True,
        )
        copied = int(status.split()[-1])
        export.check(copied)
    columns, scored = await asyncio.to_thread(scores_from_csv, body)
    evaluation.enterprise_count = copied
    evaluation.scored_count = scored
    await session.flush()
    return evaluation, columns


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
    await recompute_lines(session, scores=(evaluation.run_id, columns))
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
