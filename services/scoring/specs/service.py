"""Scoring-model versions (评价模型版本): drafts derived from a published base, validated as a
whole, immutable once published; and the cache of their specs that every read uses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import ChallengerReport, ScoringModel
from services.scoring.specs.schemas import ModelCreate
from services.scoring.specs.spec import DEFAULT_MODEL, ModelSpec
from shared.errors import Conflict, NotFound, Unprocessable


class SpecCache:
    """Model specs by version: published ones never change, so they are cached forever."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] = {}

    def cached(self, version: str) -> ModelSpec | None:
        """A published spec already read, without a session (the score read's hot path)."""
        return self._specs.get(version)

    async def get(self, session: AsyncSession, version: str) -> ModelSpec:
        spec = self._specs.get(version)
        if spec is None:
            model = await session.get(ScoringModel, version)
            if model is None:
                raise NotFound(f"No scoring model {version}")
            spec = ModelSpec.from_dict(model.spec)
            if model.status == "published":
                self._specs[version] = spec
        return spec


async def seed_default_spec(session: AsyncSession) -> None:
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


async def list_specs(
    session: AsyncSession, limit: int, offset: int, *, published_only: bool = False
) -> tuple[Sequence[ScoringModel], int]:
    visible = [ScoringModel.status == "published"] if published_only else []
    total = (
        await session.execute(select(func.count()).select_from(ScoringModel).where(*visible))
    ).scalar_one()
    rows = await session.scalars(
        select(ScoringModel)
        .where(*visible)
        .order_by(ScoringModel.created_at, ScoringModel.version)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total


async def get_spec(session: AsyncSession, version: str) -> ScoringModel:
    model = await session.get(ScoringModel, version)
    if model is None:
        raise NotFound(f"No scoring model {version}")
    return model


async def create_spec(session: AsyncSession, body: ModelCreate, created_by: str) -> ScoringModel:
    """A draft: the base version's spec with the given fields replaced, checked as a whole."""
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
    model = ScoringModel(
        version=body.version,
        status="draft",
        description=body.description,
        spec=spec.to_dict(),
        created_by=created_by,
    )
    session.add(model)
    await session.flush()
    await session.refresh(model)
    return model


async def publish_spec(session: AsyncSession, version: str, by: str = "system") -> ScoringModel:
    model = await session.get(ScoringModel, version, with_for_update=True)
    if model is None:
        raise NotFound(f"No scoring model {version}")
    if model.status != "published":
        model.status = "published"
        model.published_at = datetime.now(UTC)
        model.published_by = by
        model.challenger_report_id = await session.scalar(
            select(ChallengerReport.id)
            .where(ChallengerReport.challenger_version == version)
            .order_by(ChallengerReport.created_at.desc())
            .limit(1)
        )
        await session.flush()
    return model


async def latest_published_version(session: AsyncSession) -> str:
    version = await session.scalar(
        select(ScoringModel.version)
        .where(ScoringModel.status == "published")
        .order_by(ScoringModel.published_at.desc())
        .limit(1)
    )
    if version is None:
        raise Conflict("No published scoring model")
    return version
