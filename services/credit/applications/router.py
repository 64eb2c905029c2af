"""Loan applications (贷款申请) and their lifecycle."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from services.credit.applications import service
from services.credit.applications.lifecycle import Status
from services.credit.applications.schemas import (
    ApplicationCreate,
    ApplicationOut,
    DecisionIn,
    DisburseIn,
    Note,
)
from shared.auth.deps import CurrentPrincipal, EnterpriseCaller, USCCFilter
from shared.db import CommittingRoute, DbSession
from shared.errors import BadRequest, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/applications", tags=["applications"], route_class=CommittingRoute)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Unique per application attempt; a replay returns the first answer",
    ),
]


@router.post(
    "",
    response_model=ApplicationOut,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def apply(
    session: DbSession,
    principal: EnterpriseCaller,
    body: ApplicationCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Apply for up to the pre-approved line; this consents to the bank seeing the score."""
    if not idempotency_key:
        raise BadRequest("The Idempotency-Key header is required", header="Idempotency-Key")
    body_json, replayed = await service.apply(session, principal, idempotency_key, body)
    headers = {"Location": f"/v1/applications/{body_json['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body_json, status_code=201, headers=headers)


@router.get("", response_model=Page[ApplicationOut], responses=problem_responses(401, 422))
async def list_applications(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    uscc: USCCFilter,
    status: Annotated[Status | None, Query()] = None,
    product_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[ApplicationOut]:
    """An enterprise sees its own, a bank those made to it, government all."""
    return await service.list_applications(session, principal, paging, status, uscc, product_id)


@router.get(
    "/{application_id}", response_model=ApplicationOut, responses=problem_responses(401, 404)
)
async def get_application(
    session: DbSession, principal: CurrentPrincipal, application_id: uuid.UUID
) -> ApplicationOut:
    """The application with its status history."""
    return await service.get_application(session, principal, application_id)


_TRANSITION_PROBLEMS = problem_responses(401, 403, 404, 409, 422)


@router.post(
    "/{application_id}/review", response_model=ApplicationOut, responses=_TRANSITION_PROBLEMS
)
async def review(
    session: DbSession,
    principal: CurrentPrincipal,
    application_id: uuid.UUID,
    body: Note | None = None,
) -> ApplicationOut:
    """The bank starts reviewing (submitted -> under_review)."""
    return await service.review(session, principal, application_id, body.note if body else None)


@router.post(
    "/{application_id}/decision", response_model=ApplicationOut, responses=_TRANSITION_PROBLEMS
)
async def decide(
    session: DbSession, principal: CurrentPrincipal, application_id: uuid.UUID, body: DecisionIn
) -> ApplicationOut:
    """Approve (amount, rate, term) or reject (reason codes), from submitted or under review."""
    return await service.decide(session, principal, application_id, body)


@router.post(
    "/{application_id}/withdraw", response_model=ApplicationOut, responses=_TRANSITION_PROBLEMS
)
async def withdraw(
    session: DbSession,
    principal: CurrentPrincipal,
    application_id: uuid.UUID,
    body: Note | None = None,
) -> ApplicationOut:
    """The enterprise withdraws, until the credit is disbursed."""
    return await service.withdraw(session, principal, application_id, body.note if body else None)


@router.post(
    "/{application_id}/disburse", response_model=ApplicationOut, responses=_TRANSITION_PROBLEMS
)
async def disburse(
    session: DbSession,
    principal: CurrentPrincipal,
    application_id: uuid.UUID,
    body: DisburseIn | None = None,
) -> ApplicationOut:
    """The bank grants the credit (approved -> disbursed)."""
    return await service.disburse(session, principal, application_id, body or DisburseIn())


@router.post(
    "/{application_id}/close", response_model=ApplicationOut, responses=_TRANSITION_PROBLEMS
)
async def close(
    session: DbSession,
    principal: CurrentPrincipal,
    application_id: uuid.UUID,
    body: Note | None = None,
) -> ApplicationOut:
    """The bank closes a disbursed credit (repaid or ended)."""
    return await service.close(session, principal, application_id, body.note if body else None)
