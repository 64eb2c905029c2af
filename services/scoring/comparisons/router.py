"""Comparing a run before it is published (or after): what moved, and what it would change
downstream."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.scoring.comparisons import service
from services.scoring.comparisons.schemas import ComparisonOut
from shared.auth.deps import GovernmentCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Paging

router = APIRouter(prefix="/v1", tags=["evaluations"], route_class=CommittingRoute)


@router.get(
    "/evaluations/{run_id}/comparison",
    response_model=ComparisonOut,
    summary="Compare a run with another: tiers, migration matrix, movers, downstream impact",
    description=(
        "`against` defaults to the published run of the same period, else the previous "
        "period's. `limit`/`offset` page the movers and the downstream changes alike. Credit "
        "and policy each report their own part; one that is down is marked, never a 500."
    ),
    responses=problem_responses(401, 403, 404, 409),
)
async def comparison(
    run_id: uuid.UUID,
    request: Request,
    session: DbSession,
    _: GovernmentCaller,
    paging: Paging,
    against: Annotated[uuid.UUID | None, Query(description="The run to compare with")] = None,
    downstream: Annotated[
        bool, Query(description="Ask credit and policy for their what-ifs")
    ] = True,
) -> ComparisonOut:
    return await service.compare(
        request.app,
        session,
        request.app.state.specs,
        run_id,
        against,
        paging.limit,
        paging.offset,
        with_downstream=downstream,
    )
