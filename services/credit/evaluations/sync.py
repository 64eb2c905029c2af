"""Following the scoring service: published evaluations become lines.

The cursor into scoring's event feed is a row here, advanced in the same transaction that
imports the evaluation's scores (the lines are computed from them when read), so an event is
either fully applied or not at all: after a crash or while this service was down, the next
sync resumes from the cursor and misses nothing. Re-reading an event already applied changes
nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import RUN_SCORE_FIELDS
from services.credit.common import raw_connection
from services.credit.lines.service import current_evaluation
from services.credit.models import ConsumerCursor, Evaluation
from services.credit.settings import CreditSettings
from shared import partitions
from shared.errors import UpstreamError
from shared.feed import FeedConsumer, FeedReport, open_export, payload_of
from shared.service_client import ServiceClient

log = structlog.get_logger("credit.sync")

CURSOR = "scoring.events"
SCORE_COLUMNS = ("run_id", *RUN_SCORE_FIELDS)


def ScoringClient(app: FastAPI) -> ServiceClient:
    settings: CreditSettings = app.state.settings
    return ServiceClient(app, "scoring", settings.scoring_url)


# What credit keeps of a run, as scoring's export names its columns (in its order).
EXPORT_COLUMNS = SCORE_COLUMNS[1:]


async def import_evaluation(
    session: AsyncSession, scoring: ServiceClient, event_id: int, payload: Mapping[str, Any]
) -> Evaluation:
    """Copy a published run's scores (what lines are computed from) into this service.

    Scoring's CSV export goes as it arrives into PostgreSQL's own CSV COPY, into a fresh
    table of the run's own (`shared.partitions`: its run id the column's default, so the
    body goes in unchanged), attached as the run's partition of `enterprise_scores` once
    it is full: no Python object per row, no index maintained row by row. A cut or malformed
    body fails the COPY, which rolls the whole event back.
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
        table = await partitions.fresh_run_partition(conn, "credit", "enterprise_scores", run_id)
        status = await conn.copy_to_table(
            table,
            schema_name="credit",
            source=export.chunks(),
            columns=EXPORT_COLUMNS,
            format="csv",
            header=True,
            freeze=True,
        )
        copied = int(status.split()[-1])
        export.check(copied)
    # An unquoted empty cell is NULL to the COPY, a quoted one the empty string.
    scored = await conn.fetchval(
        f"SELECT count(*) FROM credit.{table} WHERE scored AND exclusion IS NULL"
    )
    await partitions.attach_run_partition(conn, "credit", "enterprise_scores", table, run_id)
    evaluation.enterprise_count = copied
    evaluation.scored_count = int(scored)
    await session.flush()
    return evaluation


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
    # cost seconds apiece (EXPLAIN ANALYZE).
    await session.execute(text("SET LOCAL jit = off"))
    evaluation = await import_evaluation(session, scoring, int(event["id"]), payload)
    # Keep only the current run's scores: applications carry their own evidence. The lines
    # (a view) follow the new run's scores as soon as this commits.
    await session.execute(delete(Evaluation).where(Evaluation.run_id != evaluation.run_id))
    conn = await raw_connection(session)
    # Last: it holds readers of the scores until the commit (`shared.partitions`).
    await partitions.drop_other_runs(conn, "credit", "enterprise_scores", evaluation.run_id)
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
