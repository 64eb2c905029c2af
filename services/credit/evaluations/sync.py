"""Following the scoring service: published evaluations become lines.

The cursor into scoring's event feed is a row here, advanced in the same transaction that
imports the evaluation and rebuilds the lines, so an event is either fully applied or not at
all: after a crash or while this service was down, the next sync resumes from the cursor and
misses nothing. Re-reading an event already applied changes nothing.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.credit.common import raw_connection
from services.credit.lines.service import current_evaluation, recompute_lines
from services.credit.models import ConsumerCursor, EnterpriseScore, Evaluation
from services.credit.settings import CreditSettings
from shared.feed import advance_cursor, lock_cursor
from shared.metrics import FEED_LAG
from shared.service_client import ServiceClient

log = structlog.get_logger("credit.sync")

CURSOR = "scoring.events"
SCORE_COLUMNS = (
    "run_id",
    "uscc",
    "name",
    "stage",
    "scored",
    "exclusion",
    "total",
    "rank",
    "cohort_size",
    "percentile",
    "tier",
)
_LOCK = zlib.crc32(b"credit:sync-evaluations")


@dataclass
class SyncReport:
    events: int = 0
    imported: list[str] = field(default_factory=list)
    skipped: int = 0
    cursor: int = 0


def ScoringClient(app: FastAPI) -> ServiceClient:
    settings: CreditSettings = app.state.settings
    return ServiceClient(app, "scoring", settings.scoring_url)


async def _cursor(session: AsyncSession) -> int:
    return await lock_cursor(session, ConsumerCursor, CURSOR)


async def _advance(session: AsyncSession, position: int) -> None:
    await advance_cursor(session, ConsumerCursor, CURSOR, position)


def _record(run_id: uuid.UUID, item: dict[str, Any]) -> tuple[Any, ...]:
    return (
        run_id,
        item["uscc"],
        item.get("name") or "",
        item.get("stage"),
        bool(item.get("scored")),
        item.get("exclusion"),
        item.get("total"),
        item.get("rank"),
        item.get("cohort_size"),
        item.get("percentile"),
        item.get("tier"),
    )


async def import_evaluation(
    session: AsyncSession, scoring: ServiceClient, event_id: int, payload: dict[str, Any]
) -> Evaluation:
    """Copy a published run's scores (what lines need) into this service."""
    run_id = uuid.UUID(str(payload["run_id"]))
    conn = await raw_connection(session)
    count = scored = 0
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
    async for items in scoring.pages(
        f"/v1/evaluations/{run_id}/scores", {"limit": scoring.settings.scores_page_size}
    ):
        records = [_record(run_id, item) for item in items]
        if records:
            await conn.copy_records_to_table(
                "enterprise_scores", schema_name="credit", columns=SCORE_COLUMNS, records=records
            )
        count += len(records)
        scored += sum(1 for r in records if r[4] and r[5] is None)
    evaluation.enterprise_count = count
    evaluation.scored_count = scored
    await session.flush()
    return evaluation


async def apply_event(
    session: AsyncSession, scoring: ServiceClient, event: dict[str, Any], report: SyncReport
) -> None:
    if event.get("type") != "evaluation.published":
        report.skipped += 1
        return
    payload = event.get("payload") or {}
    run_id = uuid.UUID(str(payload["run_id"]))
    if await session.get(Evaluation, run_id) is not None:
        report.skipped += 1
        return
    current = await current_evaluation(session)
    if current is not None and int(payload["period"]) < current.period:
        # A re-publication of an older period does not replace the newer lines.
        report.skipped += 1
        return
    evaluation = await import_evaluation(session, scoring, int(event["id"]), payload)
    # Keep only the current run's scores: applications carry their own evidence.
    await session.execute(delete(Evaluation).where(Evaluation.run_id != evaluation.run_id))
    await session.execute(
        delete(EnterpriseScore).where(EnterpriseScore.run_id != evaluation.run_id)
    )
    await recompute_lines(session)
    report.imported.append(str(run_id))
    log.info(
        "evaluation imported",
        run_id=str(run_id),
        period=evaluation.period,
        enterprises=evaluation.enterprise_count,
    )


async def sync_evaluations(app: FastAPI) -> SyncReport:
    """Apply every scoring event after the cursor; each in its own transaction."""
    scoring = ScoringClient(app)
    settings: CreditSettings = app.state.settings
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    report = SyncReport()
    while True:
        async with maker() as session, session.begin():
            # One consumer at a time across replicas; the others find nothing to do.
            locked = await session.scalar(text(f"SELECT pg_try_advisory_xact_lock({_LOCK})"))
            if not locked:
                return report
            position = await _cursor(session)
            page = await scoring.get(
                "/v1/events", {"after": position, "limit": settings.events_batch}
            )
            events = page.get("items", [])
            latest = int(page.get("latest", events[-1]["id"] if events else position))
            FEED_LAG.labels("credit", "scoring.events").set(max(0, latest - position))
            if not events:
                report.cursor = position
                return report
            event = events[0]
            await apply_event(session, scoring, event, report)
            await _advance(session, int(event["id"]))
            report.events += 1
            report.cursor = int(event["id"])
