"""What a score looks like to its readers: the detail (一图清), the portrait, history,
rankings, cohort statistics, hidden champions and the bulk page for other services."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.scoring.provenance.schemas import SourceOut


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


ValueStatus = Literal["scored", "zero", "negative", "no", "missing"]
STATUS_DOC = (
    "scored: a positive value, ranked; zero; negative (a decline or a loss); no: a yes/no "
    "indicator answered no; missing: no data was provided. Only `scored` earns points."
)


class TargetOut(BaseModel):
    """What this indicator alone can still gain: the smallest value of its next band."""

    reachable: bool
    reason: Literal["at_maximum", "flag_yes", "no_weight", "no_target"] | None = Field(
        description="Why no target: full points already (at or above the high cap), a yes "
        "already, an indicator the model gives no points, or a run without the table"
    )
    target_op: Literal["ge", "gt"] | None = Field(
        description="ge: at least target_value; gt: any value above it (from 0, any amount)"
    )
    target_value: float | None
    target_percentile: float | None
    boundary: float | None = Field(description="The percentile boundary of the next band")
    points_gain: float


class IndicatorScore(BaseModel):
    code: str
    dimension: str
    value: float | None
    status: ValueStatus = Field(description=STATUS_DOC)
    percentile: float | None
    points: float
    max_points: float
    missing: bool = Field(description="No data was provided (status missing) only")
    target: TargetOut | None
    source: SourceOut | None = Field(description="Where the value came from, when the run read it")


class ReasonOut(BaseModel):
    code: str
    status: ValueStatus
    explanation: str
    points: float
    max_points: float
    points_lost: float
    value: float | None
    cohort_median: float | None
    missing: bool


class ImprovementOut(TargetOut):
    code: str
    status: ValueStatus
    value: float | None
    percentile: float


class ScoreOut(ScoreSummary):
    period: int
    run_id: uuid.UUID
    run_status: str = Field(description="published, or in_notice etc. for a preview")
    model_version: str
    revenue: float | None = Field(description="Operating revenue (万元): it sets the stage")
    revenue_source: SourceOut | None
    indicators: list[IndicatorScore]
    reasons: list[ReasonOut]
    improvements: list[ImprovementOut]


class EnterpriseOut(BaseModel):
    uscc: str
    name: str
    founded_on: date | None
    industry: str | None
    district: str | None


class HistoryItem(BaseModel):
    period: int
    run_id: uuid.UUID
    model_version: str
    stage: str | None
    scored: bool
    exclusion: str | None
    total: float | None
    rank: int | None
    cohort_size: int | None
    percentile: float | None
    tier: int | None
    dimensions: dict[str, float | None]


class RadarAxis(BaseModel):
    dimension: str
    score: float | None
    max: float
    cohort_median: float | None
    percentile: float | None


class Tag(BaseModel):
    code: str
    kind: str  # dimension | indicator
    percentile: float


class PortraitOut(BaseModel):
    uscc: str
    name: str
    period: int
    stage: str | None
    tier: int | None
    radar: list[RadarAxis]
    strengths: list[Tag]
    weaknesses: list[Tag]
    trend: list[HistoryItem]


class RankingItem(BaseModel):
    uscc: str
    name: str
    stage: str | None
    total: float
    rank: int
    tier: int
    percentile: float | None


class CohortStatsOut(BaseModel):
    period: int
    run_id: uuid.UUID
    model_version: str
    stage: str
    cohort: str | None
    merges: list[dict[str, Any]]
    stats: dict[str, Any]


class ChampionItem(BaseModel):
    uscc: str
    name: str
    stage: str | None
    total: float
    tier: int
    percentile: float | None
    revenue_growth: float | None
    signals: list[str]


class BulkScore(ScoreSummary):
    facts: dict[str, Any] | None = None


class BulkPage(BaseModel):
    items: list[BulkScore]
    total: int
    limit: int
    next_after: str | None
