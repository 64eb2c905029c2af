"""Scoring models (评价模型) as data: versioned, immutable once published (`/v1/models`)."""

from __future__ import annotations

from fastapi import APIRouter

from services.scoring.specs import service
from services.scoring.specs.schemas import ModelCreate, ModelOut
from shared.auth.deps import CurrentPrincipal, GovernmentCaller, actor
from shared.db import CommittingRoute, DbSession
from shared.errors import NotFound, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=CommittingRoute)


@router.get("", response_model=Page[ModelOut], responses=problem_responses(401, 403))
async def list_models(
    session: DbSession, principal: CurrentPrincipal, paging: Paging
) -> Page[ModelOut]:
    """Drafts are the government's work in progress: everyone else sees published models."""
    rows, total = await service.list_specs(
        session, paging.limit, paging.offset, published_only=not principal.is_government
    )
    return Page.of([ModelOut.of(m) for m in rows], total, paging)


@router.get("/{version}", response_model=ModelOut, responses=problem_responses(401, 404))
async def get_model(version: str, session: DbSession, principal: CurrentPrincipal) -> ModelOut:
    model = await service.get_spec(session, version)
    if model.status != "published" and not principal.is_government:
        # As if absent: a draft's existence is not for others to learn.
        raise NotFound(f"No scoring model {version}")
    return ModelOut.of(model)


@router.post(
    "", status_code=201, response_model=ModelOut, responses=problem_responses(401, 403, 409, 422)
)
async def create_model(
    body: ModelCreate, session: DbSession, principal: GovernmentCaller
) -> ModelOut:
    return ModelOut.of(await service.create_spec(session, body, actor(principal)))


@router.post(
    "/{version}/publish", response_model=ModelOut, responses=problem_responses(401, 403, 404)
)
async def publish_model(version: str, session: DbSession, principal: GovernmentCaller) -> ModelOut:
    """Records who published and links the version's latest challenger report."""
    return ModelOut.of(await service.publish_spec(session, version, actor(principal)))
