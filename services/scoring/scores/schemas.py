"""What a score looks like to its readers: the detail (一图清), the portrait, history,
rankings, cohort statistics, hidden champions and the bulk page for other services."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pydantic import BaseModel


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


class IndicatorScore(BaseModel):
    code: str
    dimension: str
    value: float | None
    percentile: float | None
    points: float
    max_points: float
    missing: bool


class ReasonOut(BaseModel):
    code: str
    points: float
    max_points: float
    points_lost: float
    value: float | None
    cohort_median: float | None
    missing: bool


class ImprovementOut(BaseModel):
    code: str
    value: float | None
    target_value: float
    percentile: float
    target_percentile: float
    boundary: float
    points_gain: float


class ScoreOut(ScoreSummary):
    period: int
    run_id: uuid.UUID
    model_version: str
    indicators: list[IndicatorScore]
    reasons: list[ReasonOut]
    improvements: list[ImprovementOut]


class EnterpriseOut(BaseModel):
    uscc: str
    name: str
    founded_on: date | None
    industry: str | None


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
