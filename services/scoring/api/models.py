"""Scoring models (评价模型) as data: versioned, immutable once published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.scoring.model_spec import DEFAULT_MODEL, ModelSpec
from services.scoring.models import ScoringModel
from shared.auth.deps import CurrentPrincipal, Government
from shared.db import CommittingRoute, DbSession
from shared.errors import Conflict, NotFound, Unprocessable, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=CommittingRoute)


class ModelOut(BaseModel):
    version: str
    status: str
    description: str | None
    spec: dict[str, Any]
    created_by: str
    created_at: datetime
    published_at: datetime | None


class ModelCreate(BaseModel):
    version: str = Field(pattern=r"^[0-9A-Za-z._-]{1,32}$")
    description: str | None = Field(None, max_length=2000)
    base_version: str | None = Field(
        None, description="Copy this version's spec, then apply the fields given here"
    )
    stage_bands: list[float] | None = None
    dimension_weights: dict[str, dict[str, float]] | None = None
    indicator_weights: dict[str, float] | None = None
    min_cohort: int | None = None
    cap_low: float | None = None
    cap_high: float | None = None
    tier_bands: list[float] | None = None


def _out(m: ScoringModel) -> ModelOut:
    return ModelOut.model_validate(m, from_attributes=True)


async def seed_default_model(session: Any) -> None:
    """Model 1.0 (domain.md's proposal), published, if absent."""
    if await session.get(ScoringModel, DEFAULT_MODEL.version) is None:
        session.add(
            ScoringModel(
                version=DEFAULT_MODEL.version,
                status="published",
                description="Model 1.0: Binjiang stage bands, domain.md proposal weights",
                spec=DEFAULT_MODEL.to_dict(),
                created_by="seed",
                published_at=datetime.now(UTC),
            )
        )
        await session.flush()


@router.get("", response_model=Page[ModelOut], responses=problem_responses(401, 403))
async def list_models(session: DbSession, _: CurrentPrincipal, paging: Paging) -> Page[ModelOut]:
    total = (await session.execute(select(func.count()).select_from(ScoringModel))).scalar_one()
    rows = await session.scalars(
        select(ScoringModel)
        .order_by(ScoringModel.created_at, ScoringModel.version)
        .limit(paging.limit)
        .offset(paging.offset)
    )
    return Page.of([_out(m) for m in rows], total, paging)


@router.get("/{version}", response_model=ModelOut, responses=problem_responses(401, 404))
async def get_model(version: str, session: DbSession, _: CurrentPrincipal) -> ModelOut:
    m = await session.get(ScoringModel, version)
    if m is None:
        raise NotFound(f"No scoring model {version}")
    return _out(m)


@router.post(
    "", status_code=201, response_model=ModelOut, responses=problem_responses(401, 403, 409, 422)
)
async def create_model(body: ModelCreate, session: DbSession, principal: Government) -> ModelOut:
    if await session.get(ScoringModel, body.version) is not None:
        raise Conflict(f"Model {body.version} exists; versions are immutable, pick a new one")
    base_version = body.base_version or DEFAULT_MODEL.version
    base = await session.get(ScoringModel, base_version)
    if base is None:
        raise NotFound(f"No scoring model {base_version} to start from")
    data = dict(base.spec)
    data["version"] = body.version
    for key, value in body.model_dump(
        exclude_none=True, exclude={"version", "description", "base_version"}
    ).items():
        data[key] = value
    try:
        spec = ModelSpec.from_dict(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise Unprocessable(f"The model is not valid: {exc}") from exc
    errors = spec.validate()
    if errors:
        raise Unprocessable("The model is not valid", errors=errors)
    m = ScoringModel(
        version=body.version,
        status="draft",
        description=body.description,
        spec=spec.to_dict(),
        created_by=principal.act or principal.sub,
    )
    session.add(m)
    await session.flush()
    await session.refresh(m)
    return _out(m)


@router.post(
    "/{version}/publish", response_model=ModelOut, responses=problem_responses(401, 403, 404)
)
async def publish_model(version: str, session: DbSession, _: Government) -> ModelOut:
    m = await session.get(ScoringModel, version, with_for_update=True)
    if m is None:
        raise NotFound(f"No scoring model {version}")
    if m.status != "published":
        m.status = "published"
        m.published_at = datetime.now(UTC)
        await session.flush()
    return _out(m)
