"""A run compared with another: tiers, migration, movers, and the downstream impact."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field


class TierCount(BaseModel):
    tier: int | None = Field(description="null: not scored (no revenue, negative list)")
    count: int


class RunSide(BaseModel):
    run_id: uuid.UUID
    period: int
    model_version: str
    status: str
    enterprises: int
    scored: int
    tiers: list[TierCount] = Field(description="Best tier first, then the unscored")


class Standing(BaseModel):
    stage: str | None
    total: float | None
    rank: int | None
    percentile: float | None
    tier: int | None


class Mover(BaseModel):
    uscc: str
    name: str
    before: Standing
    after: Standing
    delta_total: float
    delta_tier: int


class Movers(BaseModel):
    items: list[Mover]
    total: int


class Changes(BaseModel):
    """Enterprises whose scored state differs between the two runs."""

    only_in_run: int
    only_in_against: int
    became_scored: int
    became_unscored: int


class DownstreamPart(BaseModel):
    """One service's what-if, with its own status, as the gateway's dashboard reports parts."""

    status: Literal["ok", "error", "unavailable", "timeout"]
    http_status: int | None = None
    data: Any = None
    problem: dict[str, Any] | None = None


class ComparisonOut(BaseModel):
    run: RunSide
    against: RunSide
    basis: Literal["given", "published_same_period", "published_previous_period"] = Field(
        description="How `against` was chosen"
    )
    migration: dict[str, Any] = Field(
        description="Tier migration from `against` (rows) to `run` (columns), for the "
        "enterprises scored in both (governance.migration_matrix)"
    )
    changes: Changes
    movers_up: Movers = Field(description="Largest rises of the total, a page of them")
    movers_down: Movers = Field(description="Largest falls of the total, a page of them")
    limit: int
    offset: int
    credit: DownstreamPart = Field(
        description="Credit's what-if: enterprises whose best line would change if this run "
        "were published, against the lines served now"
    )
    policy: DownstreamPart = Field(
        description="Policy's what-if: pool eligibility that would change, against now"
    )
