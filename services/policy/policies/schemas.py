from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.policy.criteria import Problem, Status

PolicyStatus = Literal["draft", "published", "archived"]
VersionStatus = Literal["draft", "published", "superseded", "archived"]
BenefitKind = Literal["reward", "subsidy", "interest_subsidy", "tax", "voucher", "service"]


# What a policy gives, the same whether staff write it or it is seeded. No docstring: it would
# become the schema's description in the published OpenAPI.
class Benefit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: BenefitKind
    description_zh: str
    amount_wan: float | None = Field(None, ge=0)  # most one firm can receive, in 万元


class PolicyContent(BaseModel):
    """What the government writes: everything of a policy but its code."""

    model_config = ConfigDict(extra="forbid")

    title_zh: str = Field(min_length=1, max_length=200)
    title_en: str = Field("", max_length=200)
    department_zh: str = Field(min_length=1, max_length=200)
    summary_zh: str = Field(min_length=1, max_length=4000)
    benefits: list[Benefit] = Field(default_factory=list, max_length=50)
    valid_from: date
    valid_to: date | None = Field(None, description="null: until revoked")
    pools: list[str] = Field(default_factory=list, max_length=20, description="Linked pools")
    criteria: dict[str, Any] = Field(
        description=(
            "The root of the eligibility rule: a criterion, an `all`/`any` group or a `points` "
            "group (see docs/policy.md)."
        )
    )
    approximations: list[str] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class PolicyCreate(PolicyContent):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$", description="Stable identifier")


class PolicyOut(BaseModel):
    id: uuid.UUID
    code: str
    status: PolicyStatus
    version: int = Field(description="The version shown")
    version_status: VersionStatus
    latest_version: int
    published_version: int | None
    title_zh: str
    title_en: str
    department_zh: str
    summary_zh: str
    benefits: list[Benefit]
    valid_from: date
    valid_to: date | None
    pools: list[str]
    criteria: dict[str, Any]
    approximations: list[str]
    illustrative: bool
    problems: list[Problem] = Field(description="Why this version could not be published")
    created_by: str
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    published_by: str | None = Field(None, description="Who published the version shown")
    archived_at: datetime | None
    archived_by: str | None = Field(None, description="Who archived the policy")


class Counts(BaseModel):
    eligible: int = 0
    near: int = 0
    ineligible: int = 0
    unknown: int = 0


class WhatIfOut(BaseModel):
    policy_id: uuid.UUID
    version: int
    run_id: uuid.UUID
    period: int
    population: int
    counts: Counts
    by_stage: dict[str, Counts]
    published: Counts | None = Field(
        None, description="The same population against the version now published, if any"
    )


class PublishOut(PolicyOut):
    matches: Counts = Field(description="The published version against the current evaluation")


def counts(c: dict[Status, int]) -> Counts:
    return Counts.model_validate(c)
