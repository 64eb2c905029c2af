"""The indicator catalogue (指标体系) and the growth stages, from the published vocabulary."""

from __future__ import annotations

from fastapi import APIRouter

from contracts.catalogue import INDICATORS, STAGES
from services.scoring.indicators.schemas import IndicatorList, IndicatorOut, StageList
from shared.auth.deps import CurrentPrincipal
from shared.db import CommittingRoute
from shared.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["catalogue"], route_class=CommittingRoute)


@router.get("/indicators", response_model=IndicatorList, responses=problem_responses(401))
async def list_indicators(_: CurrentPrincipal) -> IndicatorList:
    items = [IndicatorOut.of(i) for i in INDICATORS]
    return IndicatorList(items=items, total=len(items))


@router.get("/stages", response_model=StageList, responses=problem_responses(401))
async def list_stages(_: CurrentPrincipal) -> StageList:
    return StageList(items=[s.value for s in STAGES], total=len(STAGES))
