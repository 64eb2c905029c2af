from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field


class EvaluationRef(BaseModel):
    run_id: uuid.UUID
    period: int
    model_version: str


class ScoreEvidence(BaseModel):
    """The published score a line was computed from."""

    run_id: uuid.UUID
    period: int
    model_version: str
    stage: str | None
    scored: bool
    exclusion: str | None
    total: float | None
    rank: int | None
    cohort_size: int | None
    percentile: float | None = Field(description="Within stage, 0..1, 1 best")
    tier: int | None = Field(description="5 best .. 1")


class RuleEvidence(BaseModel):
    basis: Literal["percentile", "tier"]
    band: int = Field(description="Index of the band applied; -1 for the base amount")
    band_min: float | None
    base_amount: int
    max_amount: int


class Offer(BaseModel):
    product_id: uuid.UUID
    product_version: int
    product_name: str
    bank_id: str
    bank_name: str
    hotline: str
    amount: int = Field(description="Pre-approved line (授信额度), CNY")
    rate_min: float
    rate_max: float
    term_months: int
    guarantee: str
    rule: RuleEvidence


class Offers(BaseModel):
    """The financial supermarket (金融超市) of one enterprise."""

    uscc: str
    name: str
    eligible: bool
    reason: str | None = Field(None, description="Why there are no offers, when there are none")
    score: ScoreEvidence
    items: list[Offer]
    total: int


class LineOut(BaseModel):
    product_id: uuid.UUID
    product_version: int
    product_name: str
    bank_id: str
    amount: int
    rule: RuleEvidence


class ApplicationAmount(BaseModel):
    id: uuid.UUID
    bank_id: str
    product_id: uuid.UUID
    product_version: int
    status: str
    requested_amount: int
    approved_amount: int | None
    approved_rate: float | None
    approved_term_months: int | None
    disbursed_amount: int | None


class ApprovedAmounts(BaseModel):
    """What a bank system may read of an enterprise that applied or consented to it."""

    uscc: str
    name: str
    score: ScoreEvidence
    lines: list[LineOut]
    applications: list[ApplicationAmount]
    pre_approved_total: int
    approved_total: int
    disbursed_total: int
