"""Evaluation runs: score a period with a model version, store it immutably, publish it.

A run reads every enterprise's facts of the period with one binary COPY, scores them in one
vectorised batch (in a worker thread, so the event loop keeps serving) and writes every score
with one binary COPY, all in one transaction: a run is either complete or absent. Publishing
makes it the period's visible run and appends an event to the outbox feed in the same
transaction, so consumers can never miss it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.scoring.engine import EngineInput, evaluate, fingerprint
from services.scoring.evaluations.repository import read_inputs, write_scores
from services.scoring.models import EvaluationRun, Event, ScoringModel
from services.scoring.specs.service import latest_published_version
from services.scoring.specs.spec import ModelSpec
from shared.errors import Conflict, NotFound
from shared.metrics import JOB_DURATION

log = structlog.get_logger("evaluations")

EVENT_PUBLISHED = "evaluation.published"


async def create_run(
    session: AsyncSession, period: int, model_version: str | None, created_by: str
) -> EvaluationRun:
    version = model_version or await latest_published_version(session)
    model = await session.get(ScoringModel, version)
    if model is None:
        raise NotFound(f"No scoring model {version}")
    if model.status != "published":
        raise Conflict(f"Model {version} is a draft: publish it before evaluating with it")
    has_facts = await session.scalar(
        text("SELECT EXISTS (SELECT 1 FROM scoring.facts WHERE period = :p)"), {"p": period}
    )
    if not has_facts:
        raise Conflict(f"No facts were imported for {period}")
    run = EvaluationRun(
        id=uuid.uuid4(),
        period=period,
        model_version=version,
        status="running",
        created_by=created_by,
        merges=[],
        cohort_stats={},
    )
    session.add(run)
    await session.flush()
    return run


async def execute_run(
    engine: AsyncEngine, run_id: uuid.UUID, timings: dict[str, float] | None = None
) -> None:
    """Compute and store a run created by `create_run` (committed before this is called).

    `timings`, when given, receives seconds per phase (read, compute, write, commit).
    """
    started = time.perf_counter()
    phases = timings if timings is not None else {}
    mark = started
    try:
        async with engine.begin() as conn:
            run = (
                await conn.execute(
                    select(EvaluationRun.period, EvaluationRun.model_version).where(
                        EvaluationRun.id == run_id
                    )
                )
            ).one()
            spec_json = (
                await conn.execute(
                    select(ScoringModel.spec).where(ScoringModel.version == run.model_version)
                )
            ).scalar_one()
            spec = ModelSpec.from_dict(spec_json)
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            inputs = await read_inputs(driver, run.period)
            phases["read"], mark = time.perf_counter() - mark, time.perf_counter()
            engine_input = EngineInput(inputs.revenue, inputs.values, inputs.excluded_reason)
            result = await asyncio.to_thread(evaluate, engine_input, spec)
            digest = await asyncio.to_thread(fingerprint, engine_input, spec)
            phases["compute"], mark = time.perf_counter() - mark, time.perf_counter()
            await write_scores(driver, run_id, inputs, result)
            phases["write"], mark = time.perf_counter() - mark, time.perf_counter()
            scored = int(np.count_nonzero(result.scored))
            await conn.execute(
                update(EvaluationRun)
                .where(EvaluationRun.id == run_id)
                .values(
                    status="completed",
                    input_fingerprint=digest,
                    enterprise_count=int(inputs.enterprise_ids.size),
                    scored_count=scored,
                    excluded_count=int(inputs.enterprise_ids.size) - scored,
                    merges=result.merges,
                    cohort_stats=result.cohort_stats,
                    finished_at=datetime.now(UTC),
                    duration_ms=int((time.perf_counter() - started) * 1000),
                )
            )
        phases["commit"] = time.perf_counter() - mark
    except Exception as exc:
        log.exception("evaluation failed", run_id=str(run_id))
        async with engine.begin() as conn:
            await conn.execute(
                update(EvaluationRun)
                .where(EvaluationRun.id == run_id)
                .values(
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                    finished_at=datetime.now(UTC),
                )
            )
    finally:
        JOB_DURATION.labels("scoring", "evaluation").observe(time.perf_counter() - started)


async def publish_run(session: AsyncSession, run_id: uuid.UUID) -> tuple[EvaluationRun, bool]:
    """Make the run its period's published one. Returns (run, changed)."""
    run = await session.get(EvaluationRun, run_id, with_for_update=True)
    if run is None:
        raise NotFound(f"No evaluation {run_id}")
    if run.status == "published":
        return run, False
    if run.status not in ("completed", "superseded"):
        raise Conflict(f"A {run.status} evaluation cannot be published")
    # Publications are rare: serialising all of them makes event ids commit in id order, so a
    # consumer reading `after=<id>` can never skip an event that committed late.
    await session.execute(text("SELECT pg_advisory_xact_lock(7301)"))
    await session.execute(
        update(EvaluationRun)
        .where(EvaluationRun.period == run.period, EvaluationRun.status == "published")
        .values(status="superseded")
    )
    run.status = "published"
    run.published_at = datetime.now(UTC)
    await session.flush()
    session.add(
        Event(
            type=EVENT_PUBLISHED,
            payload={
                "run_id": str(run.id),
                "period": run.period,
                "model_version": run.model_version,
                "published_at": run.published_at.isoformat(),
            },
        )
    )
    await session.flush()
    return run, True


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> EvaluationRun:
    run = await session.get(EvaluationRun, run_id)
    if run is None:
        raise NotFound(f"No evaluation {run_id}")
    return run


async def list_runs(
    session: AsyncSession, period: int | None, status: str | None, limit: int, offset: int
) -> tuple[Sequence[EvaluationRun], int]:
    query = select(EvaluationRun)
    if period is not None:
        query = query.where(EvaluationRun.period == period)
    if status is not None:
        query = query.where(EvaluationRun.status == status)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.scalars(
        query.order_by(EvaluationRun.created_at.desc()).limit(limit).offset(offset)
    )
    return rows.all(), total


async def published_run(session: AsyncSession, period: int | None) -> EvaluationRun:
    query = select(EvaluationRun).where(EvaluationRun.status == "published")
    if period is not None:
        query = query.where(EvaluationRun.period == period)
    run: EvaluationRun | None = await session.scalar(
        query.order_by(EvaluationRun.period.desc()).limit(1)
    )
    if run is None:
        where = f" for {period}" if period is not None else ""
        raise NotFound(f"No published evaluation{where}")
    return run


async def fail_stale_runs(engine: AsyncEngine) -> None:
    """Runs left `running` long ago by a process that died will never finish: say so."""
    async with engine.begin() as conn:
        await conn.execute(
            update(EvaluationRun)
            .where(
                EvaluationRun.status == "running",
                EvaluationRun.created_at < func.now() - timedelta(minutes=30),
            )
            .values(status="failed", error="interrupted: the service restarted")
        )


async def list_events(
    session: AsyncSession, after: int, limit: int, event_type: str | None
) -> tuple[Sequence[Event], int]:
    """Events after the cursor, oldest first, and the newest id (for the consumers' lag)."""
    query = select(Event).where(Event.id > after)
    if event_type is not None:
        query = query.where(Event.type == event_type)
    rows = (await session.scalars(query.order_by(Event.id).limit(limit))).all()
    latest = (await session.execute(select(func.coalesce(func.max(Event.id), 0)))).scalar_one()
    return rows, latest
