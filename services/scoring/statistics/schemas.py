"""The programme overview's figures: stages, score distribution, tiers, change."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

# Score bins of the distribution: [0,10), [10,20) ... [90,100].
BIN_WIDTH = 10
BINS = 10
TIERS = 5


class RunRef(BaseModel):
    run_id: uuid.UUID
    period: int
    model_version: str


class StageFigures(BaseModel):
    stage: str = Field(description="A growth stage, or `unstaged` (no revenue)")
    enterprises: int = Field(description="Evaluated, scored or not")
    scored: int
    excluded: int = Field(description="Negative list or another exclusion reason")
    mean_total: float | None
    median_total: float | None
    histogram: list[int] = Field(
        description=f"Scored enterprises per {BIN_WIDTH}-point bin, 0-10 first; 100 in the last"
    )
    tiers: dict[str, int] = Field(description="Scored enterprises per tier 1..5")


class StageChange(BaseModel):
    stage: str
    enterprises: int
    scored: int
    mean_total: float | None = Field(description="Change of the mean total, points")
    median_total: float | None


class Migration(BaseModel):
    compared: int = Field(description="Enterprises scored in both runs")
    up: int = Field(description="A higher tier than in the previous run")
    down: int
    same: int


class Change(BaseModel):
    previous: RunRef
    enterprises: int
    scored: int
    tier_shares: dict[str, float | None] = Field(description="Change of each tier's share")
    by_stage: list[StageChange]
    migration: Migration


class Overview(BaseModel):
    evaluation: RunRef
    enterprises: int
    scored: int
    excluded: int
    tiers: dict[str, int]
    tier_shares: dict[str, float | None]
    by_stage: list[StageFigures]
    change: Change | None = Field(
        description="Against the published run of the latest earlier period, if any"
    )
