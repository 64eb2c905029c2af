from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.credit.applications.lifecycle import Status

MAX_MONEY = 10_000_000_000


class ReasonCode(StrEnum):
    """Why a bank rejects; a fixed list so statistics can count them."""

    SCORE_BELOW_BANK_THRESHOLD = "score_below_bank_threshold"
    INSUFFICIENT_REPAYMENT_CAPACITY = "insufficient_repayment_capacity"
    ADVERSE_CREDIT_HISTORY = "adverse_credit_history"
    INCOMPLETE_DOCUMENTS = "incomplete_documents"
    OUTSIDE_RISK_APPETITE = "outside_risk_appetite"
    EXISTING_EXPOSURE = "existing_exposure"
    OTHER = "other"


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    amount: int = Field(ge=1, le=MAX_MONEY, description="Whole CNY")
    term_months: int | None = Field(None, ge=1, le=360)


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


class DecisionIn(Note):
    decision: Literal["approve", "reject"]
    amount: int | None = Field(None, ge=1, le=MAX_MONEY, description="Whole CNY")
    rate: float | None = Field(None, gt=0, le=36, description="Percent per year")
    term_months: int | None = Field(None, ge=1, le=360)
    reason_codes: list[ReasonCode] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.decision == "approve":
            if self.amount is None or self.rate is None:
                raise ValueError("an approval states amount and rate")
            if self.reason_codes:
                raise ValueError("reason_codes are for rejections")
        else:
            if not self.reason_codes:
                raise ValueError("a rejection states at least one reason code")
            if self.amount is not None or self.rate is not None or self.term_months is not None:
                raise ValueError("a rejection carries no amount, rate or term")
        return self


class DisburseIn(Note):
    amount: int | None = Field(None, ge=1, description="Defaults to the approved amount")


class Evidence(BaseModel):
    """The published score and line the application was made on."""

    run_id: uuid.UUID
    period: int
    stage: str
    percentile: float | None
    tier: int | None
    total: float | None
    line_amount: int


class StatusChange(BaseModel):
    from_status: Status | None
    to_status: Status
    actor_kind: str
    actor: str
    note: str | None
    at: datetime


class ApplicationOut(BaseModel):
    id: uuid.UUID
    uscc: str
    enterprise_name: str
    bank_id: str
    product_id: uuid.UUID
    product_version: int
    status: Status
    requested_amount: int
    requested_term_months: int
    evidence: Evidence
    approved_amount: int | None
    approved_rate: float | None
    approved_term_months: int | None
    reason_codes: list[str] | None
    disbursed_amount: int | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    disbursed_at: datetime | None
    closed_at: datetime | None
    history: list[StatusChange] | None = Field(
        None, description="The status history (on the single-application endpoints)"
    )
