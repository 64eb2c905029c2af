"""What a scoring run would do to pool eligibility, before it is published."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from services.policy.criteria import Status
from shared.pagination import Page, PageParams


class EvaluationWhatIf(PageParams):
    """A scoring run, and the page of changes wanted (`limit`, `offset`)."""

    run_id: uuid.UUID = Field(description="A scoring run (in notice, completed, ...)")


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


class EvaluationWhatIfOut(BaseModel):
    run_id: uuid.UUID
    current_run_id: uuid.UUID | None = Field(description="The published run matched now")
    enterprises: int
    pools: list[PoolCounts]
    changes: Page[EligibilityChange] = Field(
        description="(enterprise, pool) pairs entering or leaving a pool, by pool then USCC"
    )
