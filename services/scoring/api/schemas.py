"""Shapes and conversions shared by the scoring routers."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import BaseModel

from contracts.catalogue import STAGES
from shared.auth.deps import CurrentPrincipal, ensure_enterprise_access
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Forbidden

USCCPath = Annotated[str, Path(min_length=18, max_length=18, pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]


class DimensionScore(BaseModel):
    code: str
    score: float | None
    max: float
    percentile: float | None


class ScoreSummary(BaseModel):
    """What every view of a score carries: the bulk page for services and the detail."""

    uscc: str
    name: str
    stage: str | None
    cohort: str | None
    scored: bool
    exclusion: str | None
    total: float | None
    rank: int | None
    cohort_size: int | None
    percentile: float | None
    tier: int | None
    dimensions: list[DimensionScore]


def num(v: Any) -> float | None:
    """A stored float as JSON: NaN (not scored, missing) becomes null."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def stage_name(i: int | None) -> str | None:
    return STAGES[i].value if i is not None and 0 <= i < len(STAGES) else None


def reject_banks(principal: Principal) -> None:
    # Banks read scores through the credit service, which checks the enterprise's consent.
    if principal.kind is PrincipalKind.BANK:
        raise Forbidden("Banks see scores only through applications the enterprise consented to")


async def _visible_uscc(uscc: USCCPath, principal: CurrentPrincipal) -> str:
    reject_banks(principal)
    ensure_enterprise_access(principal, uscc)
    return uscc


VisibleUSCC = Annotated[str, Depends(_visible_uscc)]
"""An enterprise the caller may see: itself, or any for the government and services."""
