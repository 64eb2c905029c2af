"""The indicator catalogue as the API shows it."""

from __future__ import annotations

from pydantic import BaseModel

from contracts.catalogue import Indicator


class IndicatorOut(BaseModel):
    code: str
    dimension: str
    name_zh: str
    name_en: str
    unit: str
    kind: str

    @classmethod
    def of(cls, indicator: Indicator) -> IndicatorOut:
        return cls(
            code=indicator.code,
            dimension=indicator.dimension.value,
            name_zh=indicator.name_zh,
            name_en=indicator.name_en,
            unit=indicator.unit,
            kind=indicator.kind,
        )


class IndicatorList(BaseModel):
    items: list[IndicatorOut]
    total: int


class StageList(BaseModel):
    items: list[str]
    total: int
