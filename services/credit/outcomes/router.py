"""Loan outcomes (贷后表现): banks report, each party reads what is theirs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from services.credit.outcomes import service
from services.credit.outcomes.schemas import (
    LoanOutcomes,
    OutcomeIn,
    OutcomeOut,
    OutcomeState,
    OutcomeSummary,
    PerformanceOut,
)
from shared.auth.deps import CurrentPrincipal
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["outcomes"], route_class=CommittingRoute)

Period = Annotated[
    int, Query(ge=2000, le=2100, description="The score period loans were granted on")
]


@router.post(
    "/loans/{application_id}/outcomes",
    status_code=201,
    response_model=OutcomeOut,
    summary="The lending bank reports the loan's state on a date",
    description=(
        "Append-only. Idempotent by `Idempotency-Key` (optional) and by the natural key "
        "(loan, `as_of`, `state`): the same report again answers 200 with "
        "`Idempotent-Replayed: true`; a different one for the same key is a 409 (422 for a "
        "reused Idempotency-Key). Another bank's loan is a 404."
    ),
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def report_outcome(
    application_id: uuid.UUID,
    body: OutcomeIn,
    session: DbSession,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=255, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> JSONResponse:
    out, replayed = await service.report(session, principal, application_id, idempotency_key, body)
    headers = {"Location": f"/v1/loans/{application_id}/outcomes"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        out.model_dump(mode="json"), status_code=200 if replayed else 201, headers=headers
    )


@router.get(
    "/loans/{application_id}/outcomes",
    response_model=LoanOutcomes,
    summary="A loan's outcome history (its bank, its enterprise)",
    responses=problem_responses(401, 403, 404),
)
async def loan_outcomes(
    application_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> LoanOutcomes:
    return await service.loan_outcomes(session, principal, application_id)


@router.get(
    "/outcomes",
    response_model=Page[OutcomeOut],
    summary="The latest state of each loan: a bank's own loans, an enterprise's own",
    responses=problem_responses(401, 403, 422),
)
async def list_outcomes(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    period: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    state: Annotated[OutcomeState | None, Query()] = None,
) -> Page[OutcomeOut]:
    return await service.list_latest(session, principal, paging, period, state)


@router.get(
    "/outcomes/summary",
    response_model=OutcomeSummary,
    summary="Aggregated outcomes: the government all loans (and per bank), a bank its own",
    responses=problem_responses(401, 403, 422),
)
async def outcome_summary(
    session: DbSession,
    principal: CurrentPrincipal,
    period: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> OutcomeSummary:
    return await service.summary(session, principal, period)


@router.get(
    "/outcomes/performance",
    response_model=PerformanceOut,
    summary="Per enterprise: bad or good in the period's window (the scoring service only)",
    responses=problem_responses(401, 403, 422),
)
async def performance(
    session: DbSession, principal: CurrentPrincipal, period: Period
) -> PerformanceOut:
    return await service.performance(session, principal, period)
