"""Evaluation runs (评价批次), public notice (公示), publication, bulk scores for other
services, events."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from services.scoring.common import reject_banks
from services.scoring.evaluations import service
from services.scoring.evaluations.export import stream_scores
from services.scoring.evaluations.schemas import (
    EventOut,
    EventPage,
    NoticeCreate,
    NoticeOut,
    RunCreate,
    RunOut,
)
from services.scoring.scores import service as scores
from services.scoring.scores.schemas import BulkPage
from services.scoring.settings import ScoringSettings
from shared.app import start_background
from shared.auth.deps import CurrentPrincipal, GovernmentCaller, GovernmentOrServiceCaller, actor
from shared.auth.principal import PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["evaluations"], route_class=CommittingRoute)

BULK_MAX = 5000


@router.post(
    "/evaluations",
    status_code=202,
    response_model=RunOut,
    summary="Score a period with a model version",
    description="Runs in the background (202 + Location) unless `wait` is true (201).",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_evaluation(
    body: RunCreate, request: Request, session: DbSession, principal: GovernmentCaller
) -> Any:
    run = await service.create_run(
        session, body.period, body.model_version, actor(principal), body.corrects_run_id
    )
    await session.commit()  # the run must exist before the work that fills it starts
    engine = request.app.state.engine
    if body.wait:
        await service.execute_run(engine, run.id)
        await session.refresh(run)
        return JSONResponse(
            RunOut.of(run).model_dump(mode="json"),
            status_code=201,
            headers={"Location": f"/v1/evaluations/{run.id}"},
        )
    start_background(request.app, service.execute_run(engine, run.id), f"evaluation-{run.id}")
    return JSONResponse(
        RunOut.of(run).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/evaluations/{run.id}"},
    )


@router.get("/evaluations", response_model=Page[RunOut], responses=problem_responses(401, 403))
async def list_evaluations(
    session: DbSession,
    _: GovernmentOrServiceCaller,
    paging: Paging,
    period: Annotated[int | None, Query()] = None,
    status: Annotated[
        Literal["running", "completed", "failed", "in_notice", "published", "superseded"] | None,
        Query(),
    ] = None,
) -> Page[RunOut]:
    rows, total = await service.list_runs(session, period, status, paging.limit, paging.offset)
    return Page.of([RunOut.of(r) for r in rows], total, paging)


@router.get(
    "/evaluations/{run_id}", response_model=RunOut, responses=problem_responses(401, 403, 404)
)
async def get_evaluation(run_id: uuid.UUID, session: DbSession, _: GovernmentCaller) -> RunOut:
    return RunOut.of(await service.get_run(session, run_id))


@router.post(
    "/evaluations/{run_id}/publish",
    response_model=RunOut,
    summary="Make this run what clients see for its period",
    description=(
        "Refused (409) while a run of the period is in notice and the notice has not ended "
        "(`notice-running`), or objections to it are open (`objections-open`); a noticed run "
        "with accepted objections is replaced by a run correcting it (`correction-required`), "
        "which is published without a second notice. Credit and policy hear of the run now."
    ),
    responses=problem_responses(401, 403, 404, 409),
)
async def publish_evaluation(
    run_id: uuid.UUID, request: Request, session: DbSession, principal: GovernmentCaller
) -> RunOut:
    settings: ScoringSettings = request.app.state.settings
    run, _changed = await service.publish_run(
        session,
        run_id,
        actor(principal),
        now=request.app.state.clock(),
        require_notice=settings.require_notice,
    )
    return RunOut.of(run)


@router.post(
    "/evaluations/{run_id}/notice",
    response_model=RunOut,
    summary="Put a completed run in public notice (公示) until ends_at (Asia/Shanghai)",
    description=(
        "During the notice each enterprise reads its proposed score with "
        "`GET /v1/enterprises/{uscc}/score?run_id=` and may object to its values; the "
        "published results do not change. Posting again on a run in notice extends it."
    ),
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def open_notice(
    run_id: uuid.UUID,
    body: NoticeCreate,
    request: Request,
    session: DbSession,
    principal: GovernmentCaller,
) -> RunOut:
    run = await service.open_notice(
        session, run_id, body.ends_at, actor(principal), request.app.state.clock()
    )
    return RunOut.of(run)


@router.get(
    "/notices",
    response_model=Page[NoticeOut],
    summary="Runs in public notice, newest first (enterprises and the government)",
    responses=problem_responses(401, 403),
)
async def list_notices(
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    state: Annotated[Literal["open", "all"], Query(description="open: still taking objections")] = (
        "all"
    ),
) -> Page[NoticeOut]:
    reject_banks(principal)
    now = request.app.state.clock()
    rows, total = await service.notices(session, state, now, paging.limit, paging.offset)
    own = principal.uscc if principal.kind is PrincipalKind.ENTERPRISE else None
    items = []
    for run in rows:
        assert run.notice_opened_at is not None and run.notice_ends_at is not None
        items.append(
            NoticeOut(
                run_id=run.id,
                period=run.period,
                model_version=run.model_version,
                corrects_run_id=run.corrects_run_id,
                opened_at=run.notice_opened_at,
                ends_at=run.notice_ends_at,
                accepting_objections=now < run.notice_ends_at,
                objections=await service.objection_counts(session, run.id, own),
            )
        )
    return Page.of(items, total, paging)


@router.get(
    "/evaluations/{run_id}/scores",
    response_model=BulkPage,
    summary="Every score of a run, in USCC order (for the credit and policy services)",
    responses=problem_responses(401, 403, 404),
)
async def run_scores(
    run_id: uuid.UUID,
    request: Request,
    session: DbSession,
    _: GovernmentOrServiceCaller,
    limit: Annotated[int, Query(ge=1, le=BULK_MAX)] = 1000,
    after: Annotated[str | None, Query(max_length=18, description="Last USCC seen")] = None,
    include: Annotated[Literal["facts"] | None, Query()] = None,
) -> BulkPage:
    run = await service.get_run(session, run_id)
    spec = await request.app.state.specs.get(session, run.model_version)
    return await scores.run_scores(session, run, spec, after, limit, with_facts=include == "facts")


@router.get(
    "/evaluations/{run_id}/scores/export",
    response_class=StreamingResponse,
    summary="Every score of a run as one CSV stream (for the credit and policy services)",
    description=(
        "The fields of the paged endpoint's items (without `dimensions`), one row per "
        "enterprise in USCC order, with a header; `include=facts` adds the period's facts "
        "(tags as JSON arrays). `X-Total-Count` is the run's enterprise count, so a reader "
        "can tell a complete body from a cut one."
    ),
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 403, 404)},
)
async def export_run_scores(
    run_id: uuid.UUID,
    request: Request,
    session: DbSession,
    _: GovernmentOrServiceCaller,
    include: Annotated[Literal["facts"] | None, Query()] = None,
) -> StreamingResponse:
    run = await service.get_run(session, run_id)
    period, count = run.period, run.enterprise_count
    # The request's session is not held while the body streams: COPY has its own connection.
    await session.commit()
    body = stream_scores(request.app.state.engine, run_id, period, include == "facts")
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"X-Total-Count": str(count or 0), "Cache-Control": "no-store"},
    )


@router.get(
    "/events",
    response_model=EventPage,
    summary="The outbox feed: read from your own cursor, nothing is ever lost",
    responses=problem_responses(401, 403),
)
async def list_events(
    session: DbSession,
    _: GovernmentOrServiceCaller,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    type: Annotated[str | None, Query(max_length=64)] = None,
) -> EventPage:
    rows, latest = await service.list_events(session, after, limit, type)
    return EventPage(
        items=[EventOut.model_validate(e, from_attributes=True) for e in rows],
        next_after=rows[-1].id if rows else after,
        latest=latest,
    )
