"""Following the scoring service: a published evaluation becomes this service's population.

The cursor into scoring's event feed is a row here, advanced in the same transaction that
stores the evaluation's facts and rewrites the matches, so an event is either fully applied or
not at all: after a crash, or while this service was down, the next sync resumes from the
cursor and misses nothing. Re-reading an event already applied changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import raw_connection
from services.policy.criteria import FACTS, FactError, coerce_facts
from services.policy.matching.service import current_evaluation, lock, recompute
from services.policy.models import ConsumerCursor, Evaluation
from services.policy.settings import PolicySettings
from shared.feed import FeedConsumer, FeedReport
from shared.service_client import ServiceClient

log = structlog.get_logger("policy.sync")

CURSOR = "scoring.events"
FACT_COLUMNS = ("uscc", "run_id", "name", "stage", "score", "tier", "facts")


@dataclass
class SyncReport(FeedReport):
    """The shared feed report, plus the pushes the new matches caused."""

    pushes: int = 0


def ScoringClient(app: FastAPI) -> ServiceClient:
    settings: PolicySettings = app.state.settings
    return ServiceClient(app, "scoring", settings.scoring_url)


def clean_facts(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The known facts, typed, as JSON values; and the codes of values that were unusable.

    One bad value upstream must not keep an enterprise (or the whole evaluation) from being
    matched: it is dropped, which makes the criteria reading it unknown, never failed.
    """
    out: dict[str, Any] = {}
    bad: list[str] = []
    for code, value in raw.items():
        if value is None or code not in FACTS:
            continue
        try:
            typed = coerce_facts({code: value})
        except FactError:
            bad.append(code)
            continue
        v = typed.get(code)
        if v is not None:
            out[code] = sorted(v) if isinstance(v, frozenset) else v
    return out, bad


def enterprise_facts(item: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An item of scoring's bulk scores as the facts criteria read (score, tier, stage too)."""
    raw = dict(item.get("facts") or {})
    raw.update(
        score=item.get("total"),
        tier=item.get("tier"),
        percentile=item.get("percentile"),
        stage=item.get("stage"),
    )
    return clean_facts(raw)


async def store_evaluation(
    session: AsyncSession,
    run_id: uuid.UUID,
    period: int,
    model_version: str,
    event_id: int,
    pages: Iterable[list[Mapping[str, Any]]] | None = None,
    *,
    items: Iterable[Mapping[str, Any]] = (),
) -> Evaluation:
    """Replace the population with this run's enterprises (items in scoring's bulk shape)."""
    conn = await raw_connection(session)
    await conn.execute("DELETE FROM policy.evaluations")
    # DELETE, not TRUNCATE: TRUNCATE's exclusive lock here plus the one recompute() takes on
    # matches deadlocked with readers joining the two tables (GET /v1/pools answered 500).
    await conn.execute("DELETE FROM policy.enterprise_facts")
    evaluation = Evaluation(
        run_id=run_id,
        period=period,
        model_version=model_version,
        event_id=event_id,
        enterprise_count=0,
    )
    session.add(evaluation)
    await session.flush()
    count = await _copy_facts(conn, run_id, items)
    for page in pages or ():
        count += await _copy_facts(conn, run_id, page)
    evaluation.enterprise_count = count
    await session.flush()
    return evaluation


async def _copy_facts(conn: Any, run_id: uuid.UUID, items: Iterable[Mapping[str, Any]]) -> int:
    records = []
    for item in items:
        facts, bad = enterprise_facts(item)
        if bad:
            log.warning("unusable facts dropped", uscc=item.get("uscc"), facts=bad)
        tier = facts.get("tier")
        records.append(
            (
                str(item["uscc"]),
                run_id,
                str(item.get("name") or ""),
                facts.get("stage"),
                facts.get("score"),
                int(tier) if tier is not None else None,
                json.dumps(facts, ensure_ascii=False),
            )
        )
    if records:
        await conn.copy_records_to_table(
            "enterprise_facts", schema_name="policy", columns=FACT_COLUMNS, records=records
        )
    return len(records)


async def _score_pages(scoring: ServiceClient, run_id: uuid.UUID) -> list[list[Mapping[str, Any]]]:
    params = {"limit": scoring.settings.scores_page_size, "include": "facts"}
    return [items async for items in scoring.pages(f"/v1/evaluations/{run_id}/scores", params)]


async def apply_event(
    session: AsyncSession, scoring: ServiceClient, event: Mapping[str, Any], report: SyncReport
) -> None:
    if event.get("type") != "evaluation.published":
        report.skipped += 1
        return
    payload = event.get("payload") or {}
    run_id = uuid.UUID(str(payload["run_id"]))
    period = int(payload["period"])
    current = await current_evaluation(session)
    if current is not None and (current.run_id == run_id or period < current.period):
        # Already applied, or a re-publication of an older period: the newer facts stay.
        report.skipped += 1
        return
    # Everything from scoring is read before anything is written, so a failing page leaves
    # the current population (and the cursor) as they were.
    pages = await _score_pages(scoring, run_id)
    await lock(session)
    evaluation = await store_evaluation(
        session,
        run_id,
        period,
        str(payload.get("model_version", "")),
        int(event["id"]),
        pages,
    )
    settings: PolicySettings = scoring.settings
    result = await recompute(session, near_max=settings.near_max)
    report.imported.append(str(run_id))
    report.pushes += result.pushes
    log.info(
        "evaluation matched",
        run_id=str(run_id),
        period=period,
        enterprises=evaluation.enterprise_count,
        rules=len(result.rules),
        pushes=result.pushes,
        seconds=round(result.seconds, 3),
    )


FEED = FeedConsumer(ConsumerCursor, CURSOR, apply_event, event_type="evaluation.published")


async def sync_evaluations(app: FastAPI) -> SyncReport:
    """Apply every scoring event after the cursor, each in its own transaction."""
    settings: PolicySettings = app.state.settings
    return await FEED.catch_up(
        app.state.sessionmaker, ScoringClient(app), settings.events_batch, SyncReport()
    )
