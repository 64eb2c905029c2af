from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class StageCount(BaseModel):
    members: int = 0
    reserve: int = 0


class PoolOut(BaseModel):
    code: str
    name_zh: str
    name_en: str
    target_stage: str
    clause: str
    sources: list[str]
    approximations: list[str]
    criteria: dict[str, Any]
    members: int = Field(description="Enterprises of the current evaluation that qualify")
    reserve: int = Field(description="Near-eligible: a few closeable criteria short")
    by_stage: dict[str, StageCount]


class PoolList(BaseModel):
    items: list[PoolOut]
    total: int


class Gap(BaseModel):
    id: str
    label_zh: str
    result: str
    gap: float | None
    unit: str
    clause: str


class Member(BaseModel):
    uscc: str
    name: str
    stage: str | None
    score: float | None
    tier: int | None
    status: str
    unmet: list[Gap] = Field(description="Criteria failed or unknown, with the gap to close")


class MemberPage(BaseModel):
    items: list[Member]
    total: int
    limit: int
    offset: int
    next_offset: int | None
    counts_by_stage: dict[str, int]
    failing_criteria: dict[str, int] = Field(
        default_factory=dict,
        description="Reserve list only: how many of its firms fail each criterion",
    )
