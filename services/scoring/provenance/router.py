"""A value's history (数据变更记录): where it came from and every change since."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.scoring.models import FACT_VALUE_COLUMNS
from services.scoring.provenance import service
from services.scoring.provenance.schemas import ValueHistory
from shared.auth.deps import CurrentPrincipal, VisibleUSCC
from shared.db import CommittingRoute, DbSession
from shared.errors import Unprocessable, problem_responses
from shared.pagination import Paging

router = APIRouter(prefix="/v1", tags=["provenance"], route_class=CommittingRoute)


@router.get(
    "/enterprises/{uscc}/facts/{period}/history",
    response_model=ValueHistory,
    summary="A value now, with its source, and its changes newest first",
    responses=problem_responses(401, 403, 404, 422),
)
async def value_history(
    uscc: VisibleUSCC,
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    period: Annotated[int, Path(ge=2000, le=2100)],
    indicator: Annotated[
        str, Query(max_length=64, description="An indicator or profile attribute code")
    ],
) -> ValueHistory:
    if indicator not in FACT_VALUE_COLUMNS:
        raise Unprocessable(f"{indicator!r} is not an indicator or profile attribute")
    return await service.value_history(
        session,
        uscc,
        period,
        indicator,
        paging.limit,
        paging.offset,
        with_person=principal.is_government,
    )
