"""A challenger's shadow run and its stored report against the champion.

The shadow run is an ordinary evaluation of the period's facts with the challenger's version
(a draft may be evaluated this way, and only this way), marked `shadow`: it can never be put
in notice or published, and credit and policy never see it except through their what-ifs.
The report compares it with the champion (the period's published run):
- the score and tier distributions side by side;
- the tier migration matrix, champion (rows) to challenger (columns);
- the change in the validation statistics where outcomes exist (services/scoring/validations);
- the downstream impact: counts from credit's and policy's what-if APIs (lines gained, lost,
  raised, lowered; pool entries and exits). Only counts are stored: the report is read by
  banks too, and names no enterprise.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import structlog
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.audit.service import record
from services.scoring.comparisons import downstream
from services.scoring.comparisons import repository as comparisons
from services.scoring.evaluations.service import add_run, execute_run
from services.scoring.governance import migration_matrix
from services.scoring.models import ChallengerReport, EvaluationRun, ScoringModel
from services.scoring.validations import service as validations
from services.scoring.validations.repository import published_run, run_columns
from shared.errors import Conflict, NotFound, UpstreamError

SCORE_EDGES = tuple(float(x) for x in range(0, 101, 10))
VALIDATION_FIGURES = ("auc", "ks", "gini", "psi")

log = structlog.get_logger("challengers")


class NoChampion(Conflict):
    slug = "no-champion"
    title = "The period has no published run to challenge"


async def start_shadow_run(
    session: AsyncSession, version: str, period: int, created_by: str
) -> tuple[EvaluationRun, EvaluationRun]:
    """(shadow run, champion run); the shadow run is created `running`, to be executed."""
    model = await session.get(ScoringModel, version)
    if model is None:
        raise NotFound(f"No scoring model {version}")
    champion = await published_run(session, period)
    if champion is None:
        raise NoChampion(f"Publish a run of {period} first: the challenger is compared with it")
    if champion.model_version == version:
        raise Conflict(f"Model {version} is the champion of {period} already")
    run = await add_run(
        session, period, version, created_by, shadow=True, champion_run_id=str(champion.id)
    )
    return run, champion


def _distribution(
    score: np.ndarray[Any, Any], tier: np.ndarray[Any, Any], n_tiers: int
) -> dict[str, Any]:
    scored = ~np.isnan(score)
    s = score[scored]
    hist, _ = np.histogram(s, bins=np.asarray(SCORE_EDGES))
    return {
        "enterprises": int(score.shape[0]),
        "scored": int(scored.sum()),
        "mean": float(s.mean()) if s.size else None,
        "quantiles": {str(q): float(np.quantile(s, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}
        if s.size
        else {},
        "histogram": {"edges": list(SCORE_EDGES), "counts": [int(c) for c in hist]},
        "tiers": [{"tier": t, "count": int((tier == t).sum())} for t in range(n_tiers, -1, -1)],
    }


def _downstream_summary(part: Any, kind: str, champion: EvaluationRun) -> dict[str, Any]:
    """The what-if's counts. The what-ifs compare with what the service serves now: when that
    is not the champion (a challenge on an earlier period), the counts mix the change of
    period with the change of model, and `baseline_is_champion` says so."""
    if part.status != "ok" or not isinstance(part.data, dict):
        return {"status": part.status, "http_status": part.http_status, "problem": part.problem}
    now = part.data.get("current_run_id")
    common = {
        "status": "ok",
        "current_run_id": now,
        "baseline_is_champion": now == str(champion.id),
    }
    if kind == "credit":
        return {**common, "counts": part.data.get("counts")}
    return {**common, "enterprises": part.data.get("enterprises"), "pools": part.data.get("pools")}


async def _validation_change(
    app: FastAPI,
    session: AsyncSession,
    champion: EvaluationRun,
    shadow: EvaluationRun,
    n_tiers: int,
) -> dict[str, Any]:
    try:
        before = await validations.validation_of_run(
            app, session, champion, validations.Knobs(), n_tiers
        )
        after = await validations.validation_of_run(
            app, session, shadow, validations.Knobs(), n_tiers
        )
    except UpstreamError as exc:
        return {"status": "unavailable", "detail": exc.detail}
    if not before.get("observed"):
        return {"status": "no_outcomes", "detail": "No outcomes observed for this period yet"}

    def delta(key: str) -> float | None:
        a, b = before.get(key), after.get(key)
        return None if a is None or b is None else float(b) - float(a)

    return {
        "status": "ok",
        "synthetic": bool(before.get("synthetic")),
        "observed": before.get("observed"),
        "champion": {k: before.get(k) for k in VALIDATION_FIGURES},
        "challenger": {k: after.get(k) for k in VALIDATION_FIGURES},
        "change": {k: delta(k) for k in VALIDATION_FIGURES},
        "champion_tiers": before.get("tiers"),
        "challenger_tiers": after.get("tiers"),
        "champion_validation_run": before.get("run_id"),
        "challenger_validation_run": after.get("run_id"),
    }


async def build_report(
    app: FastAPI,
    session: AsyncSession,
    shadow: EvaluationRun,
    champion: EvaluationRun,
    created_by: str,
    *,
    with_downstream: bool = True,
) -> ChallengerReport:
    if shadow.status != "completed":
        raise Conflict(f"The shadow run {shadow.id} is {shadow.status}: {shadow.error or ''}")
    specs = app.state.specs
    n_tiers = max(
        len((await specs.get(session, shadow.model_version)).tier_bands),
        len((await specs.get(session, champion.model_version)).tier_bands),
    )
    parts: dict[str, Any] = {}
    if with_downstream:
        body = {"run_id": str(shadow.id), "limit": 1, "offset": 0}
        for name in ("credit", "policy"):
            parts[name] = _downstream_summary(
                await downstream.what_if(app, name, body), name, champion
            )
    champ_cols = await run_columns(session, champion)
    shadow_cols = await run_columns(session, shadow)
    before, after = await comparisons.paired_tiers(session, champion.id, shadow.id)
    report = {
        "challenger": {
            "model_version": shadow.model_version,
            "run_id": str(shadow.id),
            "input_fingerprint": shadow.input_fingerprint,
        },
        "champion": {
            "model_version": champion.model_version,
            "run_id": str(champion.id),
            "input_fingerprint": champion.input_fingerprint,
        },
        "period": shadow.period,
        "distributions": {
            "champion": _distribution(champ_cols.score, champ_cols.tier, n_tiers),
            "challenger": _distribution(shadow_cols.score, shadow_cols.tier, n_tiers),
        },
        "migration": migration_matrix(before, after, n_tiers=n_tiers).to_dict(),
        "changes": await comparisons.changes(session, champion.id, shadow.id),
        "validation": await _validation_change(app, session, champion, shadow, n_tiers),
        "downstream": parts or {"status": "not asked"},
    }
    row = ChallengerReport(
        id=uuid.uuid4(),
        challenger_version=shadow.model_version,
        champion_version=champion.model_version,
        period=shadow.period,
        shadow_run_id=shadow.id,
        champion_run_id=champion.id,
        report=report,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    await record(
        session, created_by, "challenger.reported", "run", shadow.id, report_id=str(row.id)
    )
    return row


async def challenge_in_background(
    app: FastAPI,
    shadow_id: uuid.UUID,
    champion_id: uuid.UUID,
    created_by: str,
    *,
    with_downstream: bool,
) -> None:
    """Evaluate the shadow run, then build and store its report, each in its own transaction.

    A failure is not lost with the request that started it: the evaluation's own failure is on
    the shadow run (`failed`, with its error); a report that cannot be built (a what-if service
    down...) leaves an audit entry `challenger.failed` with the reason, and the run stays
    completed so the report can be asked for again with `wait`.
    """
    await execute_run(app.state.engine, shadow_id)
    maker = app.state.sessionmaker
    try:
        async with maker() as session, session.begin():
            shadow = await session.get(EvaluationRun, shadow_id)
            champion = await session.get(EvaluationRun, champion_id)
            if shadow is None or champion is None or shadow.status != "completed":
                return  # deleted, or failed: the run says why
            await build_report(
                app, session, shadow, champion, created_by, with_downstream=with_downstream
            )
    except Exception as exc:
        log.warning("challenger report failed", run=str(shadow_id), error=str(exc))
        async with maker() as session, session.begin():
            await record(
                session,
                created_by,
                "challenger.failed",
                "run",
                shadow_id,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )


async def get_report(session: AsyncSession, report_id: uuid.UUID) -> ChallengerReport:
    row = await session.get(ChallengerReport, report_id)
    if row is None:
        raise NotFound(f"No challenger report {report_id}")
    return row


async def reports_of(session: AsyncSession, version: str) -> list[ChallengerReport]:
    return list(
        (
            await session.scalars(
                select(ChallengerReport)
                .where(ChallengerReport.challenger_version == version)
                .order_by(ChallengerReport.created_at.desc())
            )
        ).all()
    )


async def latest_report_id(session: AsyncSession, version: str) -> uuid.UUID | None:
    rid: uuid.UUID | None = await session.scalar(
        select(ChallengerReport.id)
        .where(ChallengerReport.challenger_version == version)
        .order_by(ChallengerReport.created_at.desc())
        .limit(1)
    )
    return rid
