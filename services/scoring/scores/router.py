"""Reading scores: the detail (一图清), the enterprise, history, portrait (创新画像),
rankings, cohort statistics and hidden champions, from the published run of a period."""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from contracts.catalogue import Stage
from services.scoring.common import reject_banks
from services.scoring.evaluations.service import published_run
from services.scoring.scores import service
from services.scoring.scores.detail import ScoreReader
from services.scoring.scores.hot import SCORE_READ_FAILED, SCORE_READ_MISSED
from services.scoring.scores.schemas import (
    ChampionItem,
    CohortStatsOut,
    EnterpriseOut,
    HistoryItem,
    PortraitOut,
    RankingItem,
    ScoreOut,
)
from shared.auth.deps import CurrentPrincipal, GovernmentCaller, VisibleUSCC
from shared.auth.principal import PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["scores"], route_class=CommittingRoute)

Period = Annotated[int | None, Query(ge=2000, le=2100, description="Default: the latest")]
StageQuery = Annotated[Stage, Query(description="The growth stage")]


@router.get(
    "/enterprises/{uscc}/score",
    response_model=ScoreOut,
    summary="An enterprise's score with reasons and improvement directions (一图清)",
    description=(
        "The published run of the period by default. With `run_id`, a preview: the "
        "government reads any run with scores; an enterprise its own score in a run in "
        "notice (or published). Every indicator carries its value's status and source."
    ),
    responses=problem_responses(401, 403, 404, 409),
)
async def get_score(
    uscc: VisibleUSCC,
    request: Request,
    principal: CurrentPrincipal,
    period: Period = None,
    run_id: Annotated[uuid.UUID | None, Query(description="Preview this run")] = None,
) -> Response:
    state = request.app.state
    with_person = principal.is_government
    # What the hot path (scores/hot.py) already found out for this very request.
    marks = request.scope.get("state", {})
    failed: Exception | None = marks.pop(SCORE_READ_FAILED, None)
    if failed is not None:
        raise failed
    if run_id is None and not marks.get(SCORE_READ_MISSED):
        # The published run's score, one query (see scores/detail.py).
        reader: ScoreReader = state.score_reader
        doc = await reader.published_score(state.specs, uscc, period, with_person=with_person)
        if doc is not None:
            return Response(orjson.dumps(doc), media_type="application/json")
    async with state.sessionmaker() as session:
        run = await service.visible_run(session, principal, period, run_id)
        score, _, _ = await service.load_score(
            session, state.specs, state.runs, uscc, run, with_person=with_person
        )
    return Response(score.model_dump_json(), media_type="application/json")


@router.get(
    "/enterprises/{uscc}", response_model=EnterpriseOut, responses=problem_responses(401, 403, 404)
)
async def get_enterprise(uscc: VisibleUSCC, session: DbSession) -> EnterpriseOut:
    ent = await service.enterprise(session, uscc)
    return EnterpriseOut.model_validate(ent, from_attributes=True)


@router.get(
    "/enterprises/{uscc}/history",
    response_model=Page[HistoryItem],
    summary="Scores across all published periods, oldest first",
    responses=problem_responses(401, 403, 404),
)
async def get_history(uscc: VisibleUSCC, session: DbSession, paging: Paging) -> Page[HistoryItem]:
    items = await service.history(session, await service.enterprise(session, uscc))
    return Page.of(items[paging.offset : paging.offset + paging.limit], len(items), paging)


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
    state = request.app.state
    # The published score as the score read has it (scores/detail.py): one query, no
    # explanation computed again; anything that read cannot show goes the way it always did.
    reader: ScoreReader = state.score_reader
    found = await reader.published_portrait(state.specs, uscc, period)
    if found is not None:
        doc, stats, history = found
        score = ScoreOut.model_validate(doc)
        return service.portrait(score, stats, service.history_items(history))
    run = await published_run(session, period)
    score, stats, ent = await service.load_score(session, state.specs, state.runs, uscc, run)
    return service.portrait(score, stats, await service.history(session, ent))


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
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Search: name contains it, or the USCC starts with it",
        ),
    ] = None,
) -> Page[RankingItem]:
    if principal.kind not in (PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE):
        raise Forbidden("Rankings of other enterprises are for the government")
    run = await published_run(session, period)
    query = q.strip() if q else None
    items, total = await service.rankings(
        session, run, stage, paging.limit, paging.offset, query or None
    )
    return Page.of(items, total, paging)


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
    return service.cohort_stats(run, stats, stage)


@router.get(
    "/discoveries/hidden-champions",
    response_model=Page[ChampionItem],
    summary="No qualification yet, strong innovation or fast growth (隐形冠军线索)",
    responses=problem_responses(401, 403, 404),
)
async def hidden_champions(
    request: Request,
    session: DbSession,
    _: GovernmentCaller,
    paging: Paging,
    period: Period = None,
    min_tier: Annotated[int, Query(ge=1, le=5)] = 4,
    min_growth: Annotated[float, Query(ge=0, description="Revenue growth, %")] = 30.0,
) -> Page[ChampionItem]:
    run = await published_run(session, period)
    items, total = await service.hidden_champions(
        session, run, min_tier, min_growth, paging.limit, paging.offset
    )
    return Page.of(items, total, paging)
