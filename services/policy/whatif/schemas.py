"""What a scoring run would do to pool eligibility, before it is published."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from services.policy.criteria import Status
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT


class EvaluationWhatIf(BaseModel):
    run_id: uuid.UUID = Field(description="A scoring run (in notice, completed, ...)")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=10_000_000)


class PoolCounts(BaseModel):
    pool: str
    title: str
    eligible_before: int
    eligible_after: int
    entering: int
    leaving: int


class EligibilityChange(BaseModel):
    uscc: str
    name: str | None
    pool: str
    title: str
    before: Status | None = Field(description="Status now; null: not in the population now")
    after: Status | None = Field(description="Status with the run; null: not in the run")


class ChangePage(BaseModel):
    items: list[EligibilityChange]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class EvaluationWhatIfOut(BaseModel):
    run_id: uuid.UUID
    current_run_id: uuid.UUID | None = Field(description="The published run matched now")
    enterprises: int
    pools: list[PoolCounts]
    changes: ChangePage = Field(
        description="(enterprise, pool) pairs entering or leaving a pool, by pool then USCC"
    )
