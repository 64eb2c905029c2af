"""Evaluation runs: score a period with a model version, store it immutably, publish it.

A run reads every enterprise's facts of the period with one binary COPY, scores them in one
vectorised batch (in a worker thread, so the event loop keeps serving) and writes every score
with one binary COPY, all in one transaction: a run is either complete or absent. Publishing
makes it the period's visible run and appends an event to the outbox feed in the same
transaction, so consumers can never miss it.

Public notice (公示): a completed run may be put in notice until an end time. While a run of a
period is in notice, no run of that period is published until the notice has ended and every
objection to it is decided; then either the noticed run is published (when no objection was
accepted) or a run that corrects it (created after the last accepted objection, so its facts
hold every correction) is published without a second notice. Credit and policy hear of a run
only when it is published.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contracts.catalogue import INDICATOR_CODES
from services.scoring.audit.service import record
from services.scoring.engine import EngineInput, evaluate, fingerprint
from services.scoring.evaluations.repository import read_inputs_parallel, write_scores
from services.scoring.evaluations.schemas import ObjectionCounts
from services.scoring.models import EvaluationRun, Event, Objection, ScoringModel
from services.scoring.scores.packed import source_sql
from services.scoring.specs.service import latest_published_version
from services.scoring.specs.spec import ModelSpec
from shared.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from shared.metrics import JOB_DURATION

log = structlog.get_logger("evaluations")

EVENT_PUBLISHED = "evaluation.published"
# Runs whose scores exist: they can be read (the government previews any of them).
READABLE = ("completed", "in_notice", "published", "superseded")
MAX_NOTICE = timedelta(days=366)


class NoticeRunning(Conflict):
    slug = "notice-running"
    title = "The public notice has not ended"


class ObjectionsOpen(Conflict):
    slug = "objections-open"
    title = "Objections to the run in notice are not all decided"


class CorrectionRequired(Conflict):
    slug = "correction-required"
    title = "Accepted objections changed the facts: publish a run that corrects this one"


class PeriodInNotice(Conflict):
    slug = "period-in-notice"
    title = "Another run of this period is in public notice"


def now_utc() -> datetime:
    return datetime.now(UTC)


async def create_run(
    session: AsyncSession,
    period: int,
    model_version: str | None,
    created_by: str,
    corrects_run_id: uuid.UUID | None = None,
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
    if corrects_run_id is not None:
        noticed = await session.get(EvaluationRun, corrects_run_id)
        if noticed is None:
            raise NotFound(f"No evaluation {corrects_run_id}")
        if noticed.period != period or noticed.status != "in_notice":
            raise Conflict(f"A run corrects a run of the same period in notice, not {noticed.id}")
    return await add_run(session, period, version, created_by, corrects_run_id=corrects_run_id)


async def add_run(
    session: AsyncSession,
    period: int,
    version: str,
    created_by: str,
    *,
    shadow: bool = False,
    corrects_run_id: uuid.UUID | None = None,
    **audit: str | int | None,
) -> EvaluationRun:
    """A new run, still to be scored (`execute_run`), and its audit entry
    (`run.created`, or `run.shadow_created` for a challenger's shadow run)."""
    run = EvaluationRun(
        id=uuid.uuid4(),
        period=period,
        model_version=version,
        status="running",
        shadow=shadow,
        created_by=created_by,
        corrects_run_id=corrects_run_id,
        merges=[],
        cohort_stats={},
    )
    session.add(run)
    await session.flush()
    if shadow:
        action = "run.shadow_created"
    else:
        action = "run.created"
        audit["corrects_run_id"] = str(corrects_run_id) if corrects_run_id else None
    await record(
        session, created_by, action, "run", run.id, period=period, model_version=version, **audit
    )
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
            inputs = await read_inputs_parallel(engine, run.period)
            phases["read"], mark = time.perf_counter() - mark, time.perf_counter()
            engine_input = EngineInput(inputs.revenue, inputs.values, inputs.excluded_reason)
            # The fingerprint (a hash of the inputs) alongside the engine, on the other core;
            # the engine's error, if any, is the one reported.
            digest_task = asyncio.ensure_future(asyncio.to_thread(fingerprint, engine_input, spec))
            try:
                result = await asyncio.to_thread(evaluate, engine_input, spec)
            except BaseException:
                digest_task.cancel()
                raise
            digest = await digest_task
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


async def objection_counts(
    session: AsyncSession, run_id: uuid.UUID, uscc: str | None = None
) -> ObjectionCounts:
    query = (
        select(Objection.status, func.count())
        .where(Objection.run_id == run_id)
        .group_by(Objection.status)
    )
    if uscc is not None:
        query = query.where(Objection.uscc == uscc)
    counts = {str(k): int(v) for k, v in (await session.execute(query)).tuples()}
    return ObjectionCounts(**counts)


async def run_in_notice(session: AsyncSession, period: int) -> EvaluationRun | None:
    run: EvaluationRun | None = await session.scalar(
        select(EvaluationRun)
        .where(EvaluationRun.period == period, EvaluationRun.status == "in_notice")
        .with_for_update()
    )
    return run


async def _ensure_closed(session: AsyncSession, noticed: EvaluationRun, now: datetime) -> None:
    """The notice has ended and every objection to it is decided, or a 409 says which not."""
    assert noticed.notice_ends_at is not None
    if now < noticed.notice_ends_at:
        raise NoticeRunning(
            f"Run {noticed.id} is in public notice until {noticed.notice_ends_at.isoformat()}",
            run_id=str(noticed.id),
            notice_ends_at=noticed.notice_ends_at.isoformat(),
        )
    counts = await objection_counts(session, noticed.id)
    if counts.open:
        raise ObjectionsOpen(
            f"{counts.open} objection(s) to run {noticed.id} are still open",
            run_id=str(noticed.id),
            open_objections=counts.open,
        )


class ShadowRun(Conflict):
    slug = "shadow-run"
    title = "A challenger's shadow run is never noticed or published"


def _not_shadow(run: EvaluationRun) -> None:
    if run.shadow:
        raise ShadowRun(
            f"Run {run.id} evaluated model {run.model_version} in shadow; publish the model, "
            "then evaluate the period with it"
        )


async def open_notice(
    session: AsyncSession, run_id: uuid.UUID, ends_at: datetime, actor: str, now: datetime
) -> EvaluationRun:
    """Put a completed run in public notice until `ends_at`, or extend its notice.

    A run that corrects the period's run in notice may open a second notice once the first
    has ended with every objection decided; the first run is then superseded.
    """
    run = await session.get(EvaluationRun, run_id, with_for_update=True)
    if run is None:
        raise NotFound(f"No evaluation {run_id}")
    _not_shadow(run)
    if ends_at <= now:
        raise Unprocessable("ends_at must be in the future")
    if ends_at > now + MAX_NOTICE:
        raise Unprocessable(f"A notice lasts at most {MAX_NOTICE.days} days")
    if run.status == "in_notice":
        assert run.notice_ends_at is not None
        if ends_at < run.notice_ends_at:
            raise InvalidTransition("A notice can be extended, never shortened")
        run.notice_ends_at = ends_at
        await session.flush()
        await record(session, actor, "run.notice_extended", "run", run.id, ends_at=str(ends_at))
        return run
    if run.status != "completed":
        raise InvalidTransition(f"A {run.status} evaluation cannot be put in notice")
    current = await run_in_notice(session, run.period)
    if current is not None:
        if run.corrects_run_id != current.id:
            raise PeriodInNotice(
                f"Run {current.id} of {run.period} is in notice; only a run correcting it "
                "may follow it",
                run_id=str(current.id),
            )
        await _ensure_closed(session, current, now)
        current.status = "superseded"
        await session.flush()
    run.status = "in_notice"
    run.notice_opened_at = now
    run.notice_opened_by = actor
    run.notice_ends_at = ends_at
    await session.flush()
    await record(session, actor, "run.notice_opened", "run", run.id, ends_at=str(ends_at))
    return run


async def _check_publishable(
    session: AsyncSession, run: EvaluationRun, now: datetime, require_notice: bool
) -> EvaluationRun | None:
    """The run in notice the publication closes (superseded by it), if any; or a 409."""
    noticed = await run_in_notice(session, run.period)
    if noticed is None:
        if require_notice and run.notice_opened_at is None and run.corrects_run_id is None:
            raise InvalidTransition("This programme publishes only runs that were in notice")
        return None
    await _ensure_closed(session, noticed, now)
    accepted = (await objection_counts(session, noticed.id)).accepted
    if noticed.id == run.id:
        if accepted:
            raise CorrectionRequired(
                "Objections to this run were accepted; evaluate the period again with "
                f"corrects_run_id={run.id} and publish that run",
                run_id=str(run.id),
            )
        return None
    if run.corrects_run_id != noticed.id:
        raise PeriodInNotice(
            f"Run {noticed.id} of {run.period} is in notice: publish it or a run correcting it",
            run_id=str(noticed.id),
        )
    missed = await corrections_missed(session, noticed.id, run.id)
    if missed:
        raise CorrectionRequired(
            f"This run was computed before {len(missed)} accepted correction(s); evaluate "
            "the period again",
            run_id=str(noticed.id),
            objections=[str(m) for m in missed],
        )
    return noticed


async def corrections_missed(
    session: AsyncSession, noticed_id: uuid.UUID, run_id: uuid.UUID
) -> list[uuid.UUID]:
    """Accepted objections to the noticed run whose correction `run_id` did not read: the
    source it recorded for that value is older than the correction (or absent)."""
    source = source_sql("s.packed", "array_position(CAST(:codes AS text[]), o.field::text)")
    rows = await session.execute(
        text(
            "SELECT o.id FROM scoring.objections o "
            "JOIN scoring.enterprises e ON e.uscc = o.uscc "
            "LEFT JOIN scoring.scores s ON s.run_id = :r AND s.enterprise_id = e.id "
            "WHERE o.run_id = :n AND o.status = 'accepted' AND NOT coalesce("
            "CASE WHEN o.field = 'operating_revenue' THEN s.revenue_source "
            f"ELSE {source} END "
            ">= o.correction_source_id, false) ORDER BY o.id"
        ),
        {"r": run_id, "n": noticed_id, "codes": list(INDICATOR_CODES)},
    )
    return [r[0] for r in rows]


async def publish_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    actor: str = "system",
    *,
    now: datetime | None = None,
    require_notice: bool = False,
) -> tuple[EvaluationRun, bool]:
    """Make the run its period's published one. Returns (run, changed)."""
    run = await session.get(EvaluationRun, run_id, with_for_update=True)
    if run is None:
        raise NotFound(f"No evaluation {run_id}")
    if run.status == "published":
        return run, False
    _not_shadow(run)
    if run.status not in ("completed", "in_notice", "superseded"):
        raise Conflict(f"A {run.status} evaluation cannot be published")
    # Publications are rare: serialising all of them makes event ids commit in id order, so a
    # consumer reading `after=<id>` can never skip an event that committed late.
    await session.execute(text("SELECT pg_advisory_xact_lock(7301)"))
    noticed = await _check_publishable(session, run, now or now_utc(), require_notice)
    if noticed is not None:
        noticed.status = "superseded"
    await session.execute(
        update(EvaluationRun)
        .where(EvaluationRun.period == run.period, EvaluationRun.status == "published")
        .values(status="superseded")
    )
    run.status = "published"
    run.published_at = datetime.now(UTC)
    run.published_by = actor
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
    await record(session, actor, "run.published", "run", run.id, period=run.period)
    return run, True


async def notices(
    session: AsyncSession, state: Literal["open", "all"], now: datetime, limit: int, offset: int
) -> tuple[Sequence[EvaluationRun], int]:
    """Runs in notice, newest first: all of them, or those still taking objections."""
    query = select(EvaluationRun).where(EvaluationRun.status == "in_notice")
    if state == "open":
        query = query.where(EvaluationRun.notice_ends_at > now)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.scalars(
        query.order_by(EvaluationRun.notice_opened_at.desc()).limit(limit).offset(offset)
    )
    return rows.all(), total


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> EvaluationRun:
    run = await session.get(EvaluationRun, run_id)
    if run is None:
        raise NotFound(f"No evaluation {run_id}")
    return run


async def readable_run(session: AsyncSession, run_id: uuid.UUID) -> EvaluationRun:
    """A run whose scores exist (completed, in notice, published or superseded)."""
    run = await get_run(session, run_id)
    if run.status not in READABLE:
        raise Conflict(f"Evaluation {run_id} is {run.status}: it has no scores to read")
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
