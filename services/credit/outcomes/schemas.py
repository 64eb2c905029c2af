"""Loan outcomes as the API shows them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.credit.applications.schemas import MAX_MONEY

# The observation window and the states that make a loan "bad" (docs/governance.md).
BAD_STATES = ("overdue_90_plus", "default")
BAD_DEFINITION = (
    "An enterprise is bad for period P when a loan granted on its period-P score was reported "
    "90+ days overdue or in default on a date within the 12 months after the period "
    "(P+1-01-01..P+1-12-31); good when its loans were reported within that window and none "
    "was; not observed otherwise."
)


class OutcomeState(StrEnum):
    CURRENT = "current"
    OVERDUE_30 = "overdue_30"
    OVERDUE_60 = "overdue_60"
    OVERDUE_90_PLUS = "overdue_90_plus"
    DEFAULT = "default"
    REPAID = "repaid"


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: OutcomeState
    as_of: date = Field(description="The date the loan was in this state")
    outstanding: int = Field(
        ge=0, le=MAX_MONEY, description="Principal outstanding on that date, whole CNY"
    )
    synthetic: bool = Field(
        False, description="Made up (the demo's back-book), not a real loan's performance"
    )


class OutcomeOut(BaseModel):
    id: int
    application_id: uuid.UUID
    bank_id: str
    uscc: str
    period: int = Field(description="The score period the loan was granted on")
    state: OutcomeState
    as_of: date
    outstanding: int
    synthetic: bool
    reported_by: str
    recorded_at: datetime


class LoanOutcomes(BaseModel):
    """One loan and every report on it, oldest first."""

    application_id: uuid.UUID
    bank_id: str
    uscc: str
    period: int
    disbursed_amount: int | None
    latest: OutcomeOut | None
    history: list[OutcomeOut]


class StateCount(BaseModel):
    state: OutcomeState
    loans: int = Field(description="Loans whose latest report is in this state")
    outstanding: int


class BankSummary(BaseModel):
    bank_id: str
    loans: int
    bad: int


class OutcomeSummary(BaseModel):
    """Aggregates only: no enterprise is named."""

    period: int | None
    loans: int = Field(description="Loans with at least one report")
    synthetic_loans: int
    states: list[StateCount]
    bad: int = Field(description="Enterprises bad under `definition` (period given)")
    observed: int = Field(description="Enterprises observed under `definition`")
    bad_rate: float | None
    definition: str = BAD_DEFINITION
    by_bank: list[BankSummary] | None = Field(None, description="Per bank, for the government only")


class Performance(BaseModel):
    uscc: str
    loans: int
    bad: bool
    synthetic: bool


class PerformanceOut(BaseModel):
    """Per enterprise, for the scoring service's validation (services only)."""

    period: int
    window_start: date
    window_end: date
    definition: str = BAD_DEFINITION
    snapshot: str = Field(description="sha256 of the items: the outcomes' fingerprint")
    last_outcome_id: int | None
    synthetic: bool = Field(description="Some of these outcomes are synthetic (demo)")
    items: list[Performance]
    approved: list[str] = Field(
        description="Enterprises with an application on the period's scores that was approved "
        "(approved, disbursed or closed)"
    )
    rejected: list[str] = Field(
        description="Enterprises with a decided application on the period's scores, none approved"
    )
    lines_run_id: uuid.UUID | None = Field(
        description="The run credit's lines come from, when it is of this period (else null: "
        "the lines served now say nothing about an earlier period's scores)"
    )
    with_line: list[str] = Field(
        description="Enterprises with a pre-approved line (at or above a product's base amount) "
        "from `lines_run_id`"
    )
