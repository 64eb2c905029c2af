"""The indicator catalogue (指标体系)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from contracts.catalogue import INDICATORS, STAGES
from shared.auth.deps import CurrentPrincipal
from shared.db import CommittingRoute
from shared.errors import problem_responses

router = APIRouter(prefix="/v1", tags=["catalogue"], route_class=CommittingRoute)


class IndicatorOut(BaseModel):
    code: str
    dimension: str
    name_zh: str
    name_en: str
    unit: str
    kind: str


class IndicatorList(BaseModel):
    items: list[IndicatorOut]
    total: int


@router.get("/indicators", response_model=IndicatorList, responses=problem_responses(401))
async def list_indicators(_: CurrentPrincipal) -> IndicatorList:
    items = [
        IndicatorOut(
            code=i.code,
            dimension=i.dimension.value,
            name_zh=i.name_zh,
            name_en=i.name_en,
            unit=i.unit,
            kind=i.kind,
        )
        for i in INDICATORS
    ]
    return IndicatorList(items=items, total=len(items))


class StageList(BaseModel):
    items: list[str]
    total: int


@router.get("/stages", response_model=StageList, responses=problem_responses(401))
async def list_stages(_: CurrentPrincipal) -> StageList:
    return StageList(items=[s.value for s in STAGES], total=len(STAGES))
