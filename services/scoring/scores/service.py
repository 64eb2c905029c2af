"""What a score shows (一图清), the portrait (创新画像), history, rankings, cohort statistics
and hidden champions, all read from the published run of a period (the latest by default);
the score also from any other run, for those who may preview it (`visible_run`).

A stored score row becomes what every view of a score carries in one place (`standing` and
`summary`), whichever view asks. A run's cohort statistics are immutable once it completes,
so they are cached per run id.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, TypedDict, TypeVar

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import DIMENSIONS, INDICATORS, STAGES, Stage
from services.scoring.engine import (
    STATUSES,
    ScoredRow,
    improvements,
    reasons,
    statuses,
    target_for,
)
from services.scoring.evaluations.service import READABLE, get_run, published_run
from services.scoring.models import Enterprise, EvaluationRun, Source
from services.scoring.provenance.repository import sources_by_id
from services.scoring.provenance.service import source_out
from services.scoring.scores import repository
from services.scoring.scores.schemas import (
    BulkPage,
    BulkScore,
    ChampionItem,
    CohortStatsOut,
    DimensionScore,
    HistoryItem,
    ImprovementOut,
    IndicatorScore,
    PortraitOut,
    RadarAxis,
    RankingItem,
    ReasonOut,
    ScoreOut,
    ScoreSummary,
    Tag,
    TargetOut,
)
from services.scoring.specs.service import SpecCache
from services.scoring.specs.spec import ModelSpec
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Conflict, NotFound

STRONG, WEAK = 0.75, 0.25

Summary = TypeVar("Summary", bound=ScoreSummary)


class RunCache:
    """Cohort statistics per run: written once when the run completes, read on every score."""

    def __init__(self) -> None:
        self._stats: dict[uuid.UUID, dict[str, Any]] = {}

    async def cohort_stats(self, session: AsyncSession, run: EvaluationRun) -> dict[str, Any]:
        stats = self._stats.get(run.id)
        if stats is None:
            stats = await repository.cohort_stats(session, run.id)
            if run.status in READABLE:  # immutable once the run completed
                self._stats[run.id] = stats
        return stats


# -- a stored score row as the API shows it -------------------------------------------------


def num(v: Any) -> float | None:
    """A stored float as JSON: NaN (not scored, missing) becomes null."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def stage_name(i: int | None) -> str | None:
    return STAGES[i].value if i is not None and 0 <= i < len(STAGES) else None


class Standing(TypedDict):
    stage: str | None
    scored: bool
    exclusion: str | None
    total: float | None
    rank: int | None
    cohort_size: int | None
    percentile: float | None
    tier: int | None


def standing(row: Mapping[Any, Any]) -> Standing:
    """Where a stored score puts the enterprise: the fields every view of a score shares."""
    return Standing(
        stage=stage_name(row["stage"]),
        scored=bool(row["scored"]),
        exclusion=row["exclusion"],
        total=num(row["total"]),
        rank=row["rank"],
        cohort_size=row["cohort_size"],
        percentile=num(row["percentile"]),
        tier=row["tier"],
    )


def summary(
    cls: type[Summary],
    row: Mapping[str, Any],
    spec: ModelSpec,
    *,
    uscc: str,
    name: str,
    **extra: Any,
) -> Summary:
    """A stored score row as a `ScoreSummary` (or a view extending it, with `extra`)."""
    scored = bool(row["scored"])
    # The engine gives every scored row a cohort and none to the others (stored as -1).
    cohort: int | None = row["cohort"] if scored else None
    maxima = spec.dimension_max(cohort) if cohort is not None else [0.0] * len(DIMENSIONS)
    dimensions = [
        DimensionScore(
            code=d.value,
            score=num(row["dimension_scores"][k]) if scored else None,
            max=maxima[k],
            percentile=num(row["dimension_percentiles"][k]) if scored else None,
        )
        for k, d in enumerate(DIMENSIONS)
    ]
    return cls(
        uscc=uscc,
        name=name,
        cohort=stage_name(cohort),
        dimensions=dimensions,
        **standing(row),
        **extra,
    )


# -- the score of one enterprise --------------------------------------------------------------


def value_statuses(values: Any) -> list[str]:
    """The status of each of the 24 stored values, by the engine's own rule."""
    column = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    out = np.empty(len(INDICATORS), dtype=np.int8)
    for j, ind in enumerate(INDICATORS):
        out[j] = statuses(column[j : j + 1], flag=ind.kind == "flag")[0]
    return [STATUSES[int(k)] for k in out]


async def enterprise(session: AsyncSession, uscc: str) -> Enterprise:
    ent = await session.get(Enterprise, uscc)
    if ent is None:
        raise NotFound(f"No enterprise {uscc}")
    return ent


def build_score(
    ent: Enterprise,
    run: EvaluationRun,
    spec: ModelSpec,
    row: Mapping[str, Any],
    stats: dict[str, Any],
    sources: dict[int, Source] | None = None,
    *,
    with_person: bool = False,
) -> ScoreOut:
    """The detail: the summary, every indicator with its value's source, and the reasons and
    improvements."""
    sources = sources or {}
    value_sources = row.get("value_sources") or [0] * len(INDICATORS)

    def source(source_id: int | None) -> Any:
        return source_out(sources.get(source_id or 0), with_person=with_person)

    scored = bool(row["scored"])
    cohort = row["cohort"] if scored else -1
    values = [num(v) for v in row["values"]]
    points = [float(p) if p == p else 0.0 for p in row["points"]]
    maxima = [float(m) for m in spec.max_points(cohort)] if scored else [0.0] * len(points)
    pcts = [
        (p / m if m > 0 else (1.0 if p > 0 else 0.0)) if scored else None
        for p, m in zip(points, maxima, strict=True)
    ]
    status = value_statuses(row["values"])
    cohort_stats = stats.get(stage_name(cohort) or "", {}) if scored else {}
    indicators = [
        IndicatorScore(
            code=ind.code,
            dimension=ind.dimension.value,
            value=values[j],
            status=status[j],
            percentile=pcts[j],
            points=points[j] if scored else 0.0,
            max_points=maxima[j],
            missing=status[j] == "missing",
            target=(
                TargetOut(**target_for(j, values[j], points[j], maxima[j], cohort_stats))
                if cohort_stats
                else None
            ),
            source=source(value_sources[j]),
        )
        for j, ind in enumerate(INDICATORS)
    ]
    score = summary(
        ScoreOut,
        row,
        spec,
        uscc=ent.uscc,
        name=ent.name,
        period=run.period,
        run_id=run.id,
        run_status=run.status,
        model_version=run.model_version,
        revenue=num(row["revenue"]),
        revenue_source=source(row.get("revenue_source")),
        indicators=indicators,
        reasons=[],
        improvements=[],
    )
    if cohort_stats:
        explained = ScoredRow(
            index=0,
            stage=score.stage,
            cohort=score.cohort,
            scored=True,
            exclusion=None,
            values=tuple(values),
            percentiles=tuple(pcts),
            points=tuple(points),
            max_points=tuple(maxima),
            statuses=tuple(status),
            dimension_scores={d.code: d.score for d in score.dimensions},
            dimension_percentiles={d.code: d.percentile for d in score.dimensions},
            total=score.total,
            rank=score.rank,
            cohort_size=row["cohort_size"],
            percentile=score.percentile,
            tier=score.tier,
        )
        score.reasons = [ReasonOut(**r) for r in reasons(explained, cohort_stats)]
        score.improvements = [ImprovementOut(**i) for i in improvements(explained, cohort_stats)]
    return score


def public(run: EvaluationRun) -> bool:
    """Made public at some time: put in notice or published (enterprises may read it)."""
    return run.notice_opened_at is not None or run.published_at is not None


async def visible_run(
    session: AsyncSession, principal: Principal, period: int | None, run_id: uuid.UUID | None
) -> EvaluationRun:
    """The run to read: the period's published one, or `run_id` for a preview.

    The government (and services) read any run that has scores; an enterprise only a run put
    in notice or published (its own score: the route checked the USCC). Any other run is
    "not found" to an enterprise, so run ids tell it nothing. Banks never get here.
    """
    if run_id is None:
        return await published_run(session, period)
    if principal.kind is PrincipalKind.ENTERPRISE:
        run = await session.get(EvaluationRun, run_id)
        if run is None or run.status not in READABLE or not public(run):
            raise NotFound(f"No evaluation {run_id} in notice or published")
        return run
    run = await get_run(session, run_id)
    if run.status not in READABLE:
        raise Conflict(f"Evaluation {run_id} is {run.status}: it has no scores to read")
    return run


async def load_score(
    session: AsyncSession,
    specs: SpecCache,
    runs: RunCache,
    uscc: str,
    run: EvaluationRun,
    *,
    with_person: bool = False,
) -> tuple[ScoreOut, dict[str, Any], Enterprise]:
    """The enterprise's score in `run`, the run's cohort statistics and the enterprise."""
    ent = await enterprise(session, uscc)
    row = await repository.score_row(session, run.id, ent.id)
    if row is None:
        raise NotFound(f"{uscc} was not part of the {run.period} evaluation")
    spec = await specs.get(session, run.model_version)
    stats = await runs.cohort_stats(session, run)
    ids = [*(row.get("value_sources") or []), row.get("revenue_source") or 0]
    sources = await sources_by_id(session, ids)
    score = build_score(ent, run, spec, row, stats, sources, with_person=with_person)
    return score, stats, ent


async def history(session: AsyncSession, ent: Enterprise) -> list[HistoryItem]:
    return history_items(await repository.history_rows(session, ent.id))


def history_items(rows: Iterable[Mapping[Any, Any]]) -> list[HistoryItem]:
    """The items of `repository.history_rows` (or of the same query on the read path)."""
    return [
        HistoryItem(
            period=r["period"],
            run_id=r["id"],
            model_version=r["model_version"],
            dimensions={
                d.value: (num(r["dimension_scores"][k]) if r["scored"] else None)
                for k, d in enumerate(DIMENSIONS)
            },
            **standing(r),
        )
        for r in rows
    ]


def portrait(score: ScoreOut, stats: dict[str, Any], trend: list[HistoryItem]) -> PortraitOut:
    """Radar against the cohort's medians; strengths and weaknesses by percentile."""
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
            elif i.status != "scored":
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
        trend=trend,
    )


# -- lists over a run ---------------------------------------------------------------------------


async def rankings(
    session: AsyncSession,
    run: EvaluationRun,
    stage: Stage,
    limit: int,
    offset: int,
    q: str | None = None,
) -> tuple[list[RankingItem], int]:
    rows, total = await repository.ranking(session, run.id, STAGES.index(stage), limit, offset, q)
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
    return items, total


def cohort_stats(run: EvaluationRun, stats: dict[str, Any], stage: Stage) -> CohortStatsOut:
    """The statistics of the cohort the stage was scored in (itself, or the merged one)."""
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


async def hidden_champions(
    session: AsyncSession,
    run: EvaluationRun,
    min_tier: int,
    min_growth: float,
    limit: int,
    offset: int,
) -> tuple[list[ChampionItem], int]:
    rows, total = await repository.hidden_champions(
        session, run, min_tier, min_growth, limit, offset
    )
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
    return items, total


def _age_years(founded: date | None, period: int) -> float | None:
    if founded is None:
        return None
    return round((date(period, 12, 31) - founded).days / 365.25, 2)


def _facts(row: Mapping[str, Any], period: int) -> dict[str, Any]:
    facts = {c: row[c] for c in repository.FACT_COLUMNS}
    facts["founded_on"] = row["founded_on"].isoformat() if row["founded_on"] else None
    facts["age_years"] = _age_years(row["founded_on"], period)
    return facts


async def run_scores(
    session: AsyncSession,
    run: EvaluationRun,
    spec: ModelSpec,
    after: str | None,
    limit: int,
    *,
    with_facts: bool,
) -> BulkPage:
    """A keyset page of every score of a run, for the credit and policy services."""
    rows = await repository.run_rows(session, run, after, limit, with_facts=with_facts)
    items = [
        summary(
            BulkScore,
            r,
            spec,
            uscc=r["uscc"],
            name=r["name"],
            facts=_facts(r, run.period) if with_facts else None,
        )
        for r in rows
    ]
    next_after = items[-1].uscc if len(items) == limit else None
    return BulkPage(items=items, total=run.enterprise_count, limit=limit, next_after=next_after)
