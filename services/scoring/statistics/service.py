"""The programme overview: one run's figures and their change from the previous period."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import EvaluationRun
from services.scoring.scores.service import num, stage_name
from services.scoring.statistics import repository
from services.scoring.statistics.schemas import (
    BINS,
    Change,
    Migration,
    Overview,
    RunRef,
    StageChange,
    StageFigures,
)

TIERS = ("1", "2", "3", "4", "5")


def _ref(run: EvaluationRun) -> RunRef:
    return RunRef(run_id=run.id, period=run.period, model_version=run.model_version)


def _stage(i: int) -> str:
    return stage_name(i) or "unstaged"


def _shares(tiers: dict[str, int]) -> dict[str, float | None]:
    total = sum(tiers.values())
    return {t: (round(tiers[t] / total, 4) if total else None) for t in TIERS}


def _delta(a: float | None, b: float | None, digits: int = 4) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


async def _figures(session: AsyncSession, run: EvaluationRun) -> list[StageFigures]:
    out = []
    for r in await repository.stage_rows(session, run.id):
        mean, median = num(r["mean_total"]), num(r["median_total"])
        out.append(
            StageFigures(
                stage=_stage(r["stage"]),
                enterprises=int(r["enterprises"]),
                scored=int(r["scored"]),
                excluded=int(r["excluded"]),
                mean_total=None if mean is None else round(mean, 4),
                median_total=None if median is None else round(median, 4),
                histogram=[int(r[f"b{i}"]) for i in range(BINS)],
                tiers={t: int(r[f"t{t}"]) for t in TIERS},
            )
        )
    return out


def _tier_totals(stages: list[StageFigures]) -> dict[str, int]:
    return {t: sum(s.tiers[t] for s in stages) for t in TIERS}


async def previous_run(session: AsyncSession, run: EvaluationRun) -> EvaluationRun | None:
    found: EvaluationRun | None = await session.scalar(
        select(EvaluationRun)
        .where(EvaluationRun.status == "published", EvaluationRun.period < run.period)
        .order_by(EvaluationRun.period.desc())
        .limit(1)
    )
    return found


async def _change(
    session: AsyncSession, run: EvaluationRun, stages: list[StageFigures]
) -> Change | None:
    previous = await previous_run(session, run)
    if previous is None:
        return None
    before = await _figures(session, previous)
    earlier: dict[str, Any] = {s.stage: s for s in before}
    by_stage = []
    for s in stages:
        p = earlier.get(s.stage)
        by_stage.append(
            StageChange(
                stage=s.stage,
                enterprises=s.enterprises - (p.enterprises if p else 0),
                scored=s.scored - (p.scored if p else 0),
                mean_total=_delta(s.mean_total, p.mean_total if p else None),
                median_total=_delta(s.median_total, p.median_total if p else None),
            )
        )
    now_shares, then_shares = _shares(_tier_totals(stages)), _shares(_tier_totals(before))
    m = await repository.migration(session, run.id, previous.id)
    return Change(
        previous=_ref(previous),
        enterprises=sum(s.enterprises for s in stages) - sum(s.enterprises for s in before),
        scored=sum(s.scored for s in stages) - sum(s.scored for s in before),
        tier_shares={t: _delta(now_shares[t], then_shares[t]) for t in TIERS},
        by_stage=by_stage,
        migration=Migration(**{k: int(m[k]) for k in ("compared", "up", "down", "same")}),
    )


async def overview(session: AsyncSession, run: EvaluationRun) -> Overview:
    stages = await _figures(session, run)
    tiers = _tier_totals(stages)
    return Overview(
        evaluation=_ref(run),
        enterprises=sum(s.enterprises for s in stages),
        scored=sum(s.scored for s in stages),
        excluded=sum(s.excluded for s in stages),
        tiers=tiers,
        tier_shares=_shares(tiers),
        by_stage=stages,
        change=await _change(session, run, stages),
    )
