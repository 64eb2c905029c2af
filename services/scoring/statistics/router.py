"""Programme statistics for the government: the figures of the overview page, computed in
the database from a published run, so a console needs one call rather than thousands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.scoring.evaluations.service import published_run
from services.scoring.statistics import service
from services.scoring.statistics.schemas import Overview
from shared.auth.deps import GovernmentCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/statistics", tags=["statistics"], route_class=CommittingRoute)


@router.get(
    "/overview",
    response_model=Overview,
    summary="Enterprises by stage, score distribution, tier shares, change from last period",
    description=(
        "From the published run of `period` (default: the latest), compared with the "
        "published run of the latest earlier period. Government only: it describes every "
        "enterprise of the programme."
    ),
    responses=problem_responses(401, 403, 404),
)
async def overview(
    session: DbSession,
    _: GovernmentCaller,
    period: Annotated[int | None, Query(ge=2000, le=2100, description="Default: latest")] = None,
) -> Overview:
    run = await published_run(session, period)
    return await service.overview(session, run)
