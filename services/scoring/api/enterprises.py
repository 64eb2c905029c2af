"""What a score shows (一图清), the portrait (创新画像), history, rankings, cohort statistics
and hidden champions.

Reads always use the published run of a period (the latest period by default). A run's
cohort statistics are immutable, so they are cached per run id.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import (
    DIMENSIONS,
    INDICATOR_CODES,
    INDICATORS,
    STAGES,
    Stage,
)
from services.scoring.api.schemas import (
    DimensionScore,
    ScoreSummary,
    VisibleUSCC,
    num,
    reject_banks,
    stage_name,
)
from services.scoring.engine import ScoredRow, improvements, reasons
from services.scoring.evaluations.service import published_run
from services.scoring.models import Enterprise, EvaluationRun
from services.scoring.specs.spec import ModelSpec
from shared.auth.deps import CurrentPrincipal, Government
from shared.auth.principal import PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, NotFound, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["scores"], route_class=CommittingRoute)

Period = Annotated[int | None, Query(ge=2000, le=2100, description="Default: the latest")]


class RunCache:
    """Cohort statistics per run: written once when the run completes, read on every score."""

    def __init__(self) -> None:
        self._stats: dict[uuid.UUID, dict[str, Any]] = {}

    async def cohort_stats(self, session: AsyncSession, run: EvaluationRun) -> dict[str, Any]:
        stats = self._stats.get(run.id)
        if stats is None:
            stats = (
                await session.execute(
                    select(EvaluationRun.cohort_stats).where(EvaluationRun.id == run.id)
                )
            ).scalar_one()
            if run.status in ("published", "completed", "superseded"):
                self._stats[run.id] = stats
        return stats


class IndicatorScore(BaseModel):
    code: str
    dimension: str
    value: float | None
    percentile: float | None
    points: float
    max_points: float
    missing: bool


class ReasonOut(BaseModel):
    code: str
    points: float
    max_points: float
    points_lost: float
    value: float | None
    cohort_median: float | None
    missing: bool


class ImprovementOut(BaseModel):
    code: str
    value: float | None
    target_value: float
    percentile: float
    target_percentile: float
    boundary: float
    points_gain: float


class ScoreOut(ScoreSummary):
    period: int
    run_id: uuid.UUID
    model_version: str
    indicators: list[IndicatorScore]
    reasons: list[ReasonOut]
    improvements: list[ImprovementOut]


async def _enterprise(session: AsyncSession, uscc: str) -> Enterprise:
    ent = await session.get(Enterprise, uscc)
    if ent is None:
        raise NotFound(f"No enterprise {uscc}")
    return ent


async def _score_row(session: AsyncSession, run_id: uuid.UUID, ent_id: int) -> Any:
    row = (
        (
            await session.execute(
                text("SELECT * FROM scoring.scores WHERE run_id = :r AND enterprise_id = :e"),
                {"r": run_id, "e": ent_id},
            )
        )
        .mappings()
        .first()
    )
    return row


def build_score(
    ent: Enterprise, run: EvaluationRun, spec: ModelSpec, row: Any, stats: dict[str, Any]
) -> ScoreOut:
    scored = bool(row["scored"])
    cohort = row["cohort"] if scored else -1
    values = [num(v) for v in row["values"]]
    points = [float(p) if p == p else 0.0 for p in row["points"]]
    maxima = [float(m) for m in spec.max_points(cohort)] if scored else [0.0] * len(points)
    pcts = [
        (p / m if m > 0 else (1.0 if p > 0 else 0.0)) if scored else None
        for p, m in zip(points, maxima, strict=True)
    ]
    missing = [v is None or v <= 0 for v in values]
    dmax = spec.dimension_max(cohort) if scored else [0.0] * len(DIMENSIONS)
    dims = [
        DimensionScore(
            code=d.value,
            score=num(row["dimension_scores"][k]) if scored else None,
            max=dmax[k],
            percentile=num(row["dimension_percentiles"][k]) if scored else None,
        )
        for k, d in enumerate(DIMENSIONS)
    ]
    indicators = [
        IndicatorScore(
            code=ind.code,
            dimension=ind.dimension.value,
            value=values[j],
            percentile=pcts[j],
            points=points[j] if scored else 0.0,
            max_points=maxima[j],
            missing=missing[j],
        )
        for j, ind in enumerate(INDICATORS)
    ]
    why: list[ReasonOut] = []
    better: list[ImprovementOut] = []
    if scored:
        cohort_stats = stats.get(STAGES[cohort].value, {})
        scored_row = ScoredRow(
            index=0,
            stage=stage_name(row["stage"]),
            cohort=STAGES[cohort].value,
            scored=True,
            exclusion=None,
            values=tuple(values),
            percentiles=tuple(pcts),
            points=tuple(points),
            max_points=tuple(maxima),
            missing=tuple(missing),
            dimension_scores={d.code: d.score for d in dims},
            dimension_percentiles={d.code: d.percentile for d in dims},
            total=num(row["total"]),
            rank=row["rank"],
            cohort_size=row["cohort_size"],
            percentile=num(row["percentile"]),
            tier=row["tier"],
        )
        if cohort_stats:
            why = [ReasonOut(**r) for r in reasons(scored_row, cohort_stats)]
            better = [ImprovementOut(**i) for i in improvements(scored_row, cohort_stats)]
    return ScoreOut(
        uscc=ent.uscc,
        name=ent.name,
        period=run.period,
        run_id=run.id,
        model_version=run.model_version,
        stage=stage_name(row["stage"]),
        cohort=stage_name(cohort) if scored else None,
        scored=scored,
        exclusion=row["exclusion"],
        total=num(row["total"]),
        rank=row["rank"],
        cohort_size=row["cohort_size"],
        percentile=num(row["percentile"]),
        tier=row["tier"],
        dimensions=dims,
        indicators=indicators,
        reasons=why,
        improvements=better,
    )


async def load_score(
    request: Request, session: AsyncSession, uscc: str, period: int | None
) -> tuple[ScoreOut, dict[str, Any], Enterprise]:
    ent = await _enterprise(session, uscc)
    run = await published_run(session, period)
    row = await _score_row(session, run.id, ent.id)
    if row is None:
        raise NotFound(f"{uscc} was not part of the {run.period} evaluation")
    spec = await request.app.state.specs.get(session, run.model_version)
    stats = await request.app.state.runs.cohort_stats(session, run)
    return build_score(ent, run, spec, row, stats), stats, ent


@router.get(
    "/enterprises/{uscc}/score",
    response_model=ScoreOut,
    summary="An enterprise's score with reasons and improvement directions (一图清)",
    responses=problem_responses(401, 403, 404),
)
async def get_score(
    uscc: VisibleUSCC,
    request: Request,
    session: DbSession,
    period: Period = None,
) -> ScoreOut:
    score, _, _ = await load_score(request, session, uscc, period)
    return score


class EnterpriseOut(BaseModel):
    uscc: str
    name: str
    founded_on: date | None
    industry: str | None


@router.get(
    "/enterprises/{uscc}", response_model=EnterpriseOut, responses=problem_responses(401, 403, 404)
)
async def get_enterprise(uscc: VisibleUSCC, session: DbSession) -> EnterpriseOut:
    ent = await _enterprise(session, uscc)
    return EnterpriseOut.model_validate(ent, from_attributes=True)


class HistoryItem(BaseModel):
    period: int
    run_id: uuid.UUID
    model_version: str
    stage: str | None
    scored: bool
    exclusion: str | None
    total: float | None
    rank: int | None
    cohort_size: int | None
    percentile: float | None
    tier: int | None
    dimensions: dict[str, float | None]


async def _history(session: AsyncSession, ent: Enterprise) -> list[HistoryItem]:
    rows = (
        await session.execute(
            text(
                "SELECT r.id, r.period, r.model_version, s.stage, s.scored, s.exclusion, "
                "s.total, s.rank, s.cohort_size, s.percentile, s.tier, s.dimension_scores "
                "FROM scoring.evaluation_runs r JOIN scoring.scores s ON s.run_id = r.id "
                "WHERE r.status = 'published' AND s.enterprise_id = :e ORDER BY r.period"
            ),
            {"e": ent.id},
        )
    ).mappings()
    return [
        HistoryItem(
            period=r["period"],
            run_id=r["id"],
            model_version=r["model_version"],
            stage=stage_name(r["stage"]),
            scored=r["scored"],
            exclusion=r["exclusion"],
            total=num(r["total"]),
            rank=r["rank"],
            cohort_size=r["cohort_size"],
            percentile=num(r["percentile"]),
            tier=r["tier"],
            dimensions={
                d.value: (num(r["dimension_scores"][k]) if r["scored"] else None)
                for k, d in enumerate(DIMENSIONS)
            },
        )
        for r in rows
    ]


@router.get(
    "/enterprises/{uscc}/history",
    response_model=Page[HistoryItem],
    summary="Scores across all published periods, oldest first",
    responses=problem_responses(401, 403, 404),
)
async def get_history(uscc: VisibleUSCC, session: DbSession, paging: Paging) -> Page[HistoryItem]:
    items = await _history(session, await _enterprise(session, uscc))
    return Page.of(items[paging.offset : paging.offset + paging.limit], len(items), paging)


class RadarAxis(BaseModel):
    dimension: str
    score: float | None
    max: float
    cohort_median: float | None
    percentile: float | None


class Tag(BaseModel):
    code: str
    kind: str  # dimension | indicator
    percentile: float


class PortraitOut(BaseModel):
    uscc: str
    name: str
    period: int
    stage: str | None
    tier: int | None
    radar: list[RadarAxis]
    strengths: list[Tag]
    weaknesses: list[Tag]
    trend: list[HistoryItem]


STRONG, WEAK = 0.75, 0.25


@router.get(
    "/enterprises/{uscc}/portrait",
    response_model=PortraitOut,
    summary="The innovation portrait (创新画像): radar, strengths, weaknesses, trend",
    responses=problem_responses(401, 403, 404),
)
async def get_portrait(
    uscc: VisibleUSCC,
    request: Request,
    session: DbSession,
    period: Period = None,
) -> PortraitOut:
    score, stats, ent = await load_score(request, session, uscc, period)
    cohort_stats = stats.get(score.cohort or "", {}) if score.cohort else {}
    dim_stats = cohort_stats.get("dimensions", {})
    radar = [
        RadarAxis(
            dimension=d.code,
            score=d.score,
            max=d.max,
            cohort_median=(dim_stats.get(d.code) or {}).get("p50"),
            percentile=d.percentile,
        )
        for d in score.dimensions
    ]
    strengths: list[Tag] = []
    weaknesses: list[Tag] = []
    if score.scored:
        for d in score.dimensions:
            if d.percentile is not None and d.percentile >= STRONG:
                strengths.append(Tag(code=d.code, kind="dimension", percentile=d.percentile))
            elif d.percentile is not None and d.percentile <= WEAK:
                weaknesses.append(Tag(code=d.code, kind="dimension", percentile=d.percentile))
        for i in score.indicators:
            if i.max_points <= 0 or i.percentile is None:
                continue
            if i.percentile >= 0.9:
                strengths.append(Tag(code=i.code, kind="indicator", percentile=i.percentile))
            elif i.missing:
                weaknesses.append(Tag(code=i.code, kind="indicator", percentile=i.percentile))
    return PortraitOut(
        uscc=score.uscc,
        name=score.name,
        period=score.period,
        stage=score.stage,
        tier=score.tier,
        radar=radar,
        strengths=strengths,
        weaknesses=weaknesses,
        trend=await _history(session, ent),
    )


class RankingItem(BaseModel):
    uscc: str
    name: str
    stage: str | None
    total: float
    rank: int
    tier: int
    percentile: float | None


StageQuery = Annotated[Stage, Query(description="The growth stage")]


@router.get(
    "/rankings",
    response_model=Page[RankingItem],
    summary="Ranking within a stage, best first",
    responses=problem_responses(401, 403, 404),
)
async def rankings(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    stage: StageQuery,
    period: Period = None,
) -> Page[RankingItem]:
    if principal.kind not in (PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE):
        raise Forbidden("Rankings of other enterprises are for the government")
    run = await published_run(session, period)
    stage_idx = STAGES.index(stage)
    params = {"r": run.id, "s": stage_idx, "limit": paging.limit, "offset": paging.offset}
    total = (
        await session.execute(
            text("SELECT count(*) FROM scoring.scores WHERE run_id = :r AND stage = :s AND scored"),
            params,
        )
    ).scalar_one()
    rows = (
        await session.execute(
            text(
                "SELECT e.uscc, e.name, s.stage, s.total, s.rank, s.tier, s.percentile "
                "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
                "WHERE s.run_id = :r AND s.stage = :s AND s.scored "
                "ORDER BY s.rank, e.uscc LIMIT :limit OFFSET :offset"
            ),
            params,
        )
    ).mappings()
    items = [
        RankingItem(
            uscc=r["uscc"],
            name=r["name"],
            stage=stage_name(r["stage"]),
            total=float(r["total"]),
            rank=r["rank"],
            tier=r["tier"],
            percentile=num(r["percentile"]),
        )
        for r in rows
    ]
    return Page.of(items, total, paging)


class CohortStatsOut(BaseModel):
    period: int
    run_id: uuid.UUID
    model_version: str
    stage: str
    cohort: str | None
    merges: list[dict[str, Any]]
    stats: dict[str, Any]


@router.get(
    "/cohorts/{stage}/stats",
    response_model=CohortStatsOut,
    summary="Quantiles of the stage cohort: total, dimensions, indicators",
    responses=problem_responses(401, 403, 404),
)
async def cohort_stats(
    stage: Stage,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    period: Period = None,
) -> CohortStatsOut:
    reject_banks(principal)
    run = await published_run(session, period)
    stats = await request.app.state.runs.cohort_stats(session, run)
    cohort_name: str | None = None
    for name, entry in stats.items():
        if stage.value in entry.get("members", [name]):
            cohort_name = name
            break
    if cohort_name is None:
        raise NotFound(f"No {stage.value} enterprise was scored in {run.period}")
    return CohortStatsOut(
        period=run.period,
        run_id=run.id,
        model_version=run.model_version,
        stage=stage.value,
        cohort=cohort_name,
        merges=run.merges,
        stats=stats[cohort_name],
    )


class ChampionItem(BaseModel):
    uscc: str
    name: str
    stage: str | None
    total: float
    tier: int
    percentile: float | None
    revenue_growth: float | None
    signals: list[str]


_GROWTH_COL = INDICATOR_CODES.index("revenue_growth") + 1  # PostgreSQL arrays start at 1
_QUALIFIED_COL = INDICATOR_CODES.index("qualified") + 1


@router.get(
    "/discoveries/hidden-champions",
    response_model=Page[ChampionItem],
    summary="No qualification yet, strong innovation or fast growth (隐形冠军线索)",
    responses=problem_responses(401, 403, 404),
)
async def hidden_champions(
    request: Request,
    session: DbSession,
    _: Government,
    paging: Paging,
    period: Period = None,
    min_tier: Annotated[int, Query(ge=1, le=5)] = 4,
    min_growth: Annotated[float, Query(ge=0, description="Revenue growth, %")] = 30.0,
) -> Page[ChampionItem]:
    run = await published_run(session, period)
    base = (
        "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
        "JOIN scoring.facts f ON f.uscc = e.uscc AND f.period = :p "
        "WHERE s.run_id = :r AND s.scored AND cardinality(f.qualifications) = 0 "
        f"AND coalesce(s.values[{_QUALIFIED_COL}], 0) = 0 "
        f"AND (s.tier >= :t OR s.values[{_GROWTH_COL}] >= :g) "
    )
    params = {
        "r": run.id,
        "p": run.period,
        "t": min_tier,
        "g": min_growth,
        "limit": paging.limit,
        "offset": paging.offset,
    }
    total = (await session.execute(text("SELECT count(*) " + base), params)).scalar_one()
    rows = (
        await session.execute(
            text(
                "SELECT e.uscc, e.name, s.stage, s.total, s.tier, s.percentile, "
                f"s.values[{_GROWTH_COL}] AS growth "
                + base
                + "ORDER BY s.percentile DESC, e.uscc LIMIT :limit OFFSET :offset"
            ),
            params,
        )
    ).mappings()
    items = []
    for r in rows:
        growth = num(r["growth"])
        signals = []
        if r["tier"] >= min_tier:
            signals.append("strong_innovation")
        if growth is not None and growth >= min_growth:
            signals.append("fast_growth")
        items.append(
            ChampionItem(
                uscc=r["uscc"],
                name=r["name"],
                stage=stage_name(r["stage"]),
                total=float(r["total"]),
                tier=r["tier"],
                percentile=num(r["percentile"]),
                revenue_growth=growth,
                signals=signals,
            )
        )
    return Page.of(items, total, paging)
