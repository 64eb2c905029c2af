"""Model validation, monitoring and fairness (`/v1/models/{version}/validation`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.scoring.validations import service
from services.scoring.validations.schemas import ValidationOut, ValidationPoint
from shared.auth.deps import require_kind
from shared.auth.principal import Principal, PrincipalKind
from shared.db import CommittingRoute, DbSession, WritingSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/models", tags=["model governance"], route_class=CommittingRoute)

# Banks lend on the score: they see the aggregate validation; enterprises do not.
GovernmentOrBank = Annotated[
    Principal, Depends(require_kind(PrincipalKind.GOVERNMENT, PrincipalKind.BANK))
]


@router.get(
    "/{version}/validation",
    response_model=ValidationOut,
    summary="Validation of a model version on a period: discrimination, tiers, stability, "
    "migration, fairness",
    description=(
        "The period's published scores of this version against the outcomes credit observed "
        "in the 12 months after the period (`outcomes.definition`), and the previous "
        "period's published run for stability and migration. Stored per (run, reference run, "
        "outcomes snapshot, configuration): the same inputs answer from the stored report "
        "(`cached: true`). The government may also validate an unpublished (shadow) run of "
        "the version."
    ),
    responses=problem_responses(401, 403, 404, 422, 502),
)
async def validation(
    version: str,
    request: Request,
    session: WritingSession,  # a GET that stores the report it computed (see above)
    principal: GovernmentOrBank,
    period: Annotated[int, Query(ge=2000, le=2100)],
    disparity_threshold: Annotated[
        float, Query(gt=0, lt=1, description="Flag a group below this ratio to the reference")
    ] = 0.8,
    min_group_size: Annotated[int, Query(ge=1, le=100_000)] = 30,
) -> Any:
    spec = await request.app.state.specs.get(session, version)
    knobs = service.Knobs(disparity_threshold, min_group_size)
    return await service.validation(
        request.app, session, principal, version, period, knobs, len(spec.tier_bands)
    )


@router.get(
    "/{version}/validations",
    response_model=list[ValidationPoint],
    summary="The headline figures of this version's stored validations, period by period",
    responses=problem_responses(401, 403, 404),
)
async def validations(
    version: str, request: Request, session: DbSession, _: GovernmentOrBank
) -> list[dict[str, Any]]:
    await request.app.state.specs.get(session, version)
    return await service.history(session, version)
