from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.policy.criteria import Actual, Result, Status, Threshold


class CriterionOut(BaseModel):
    id: str
    label_zh: str
    result: Result
    actual: Actual
    threshold: Threshold
    gap: float | None = Field(description="Signed change of `actual` that would pass, in `unit`")
    unit: str
    clause: str
    missing: list[str] = Field(default_factory=list, description="Facts absent (unknown)")


class MatchOut(BaseModel):
    kind: Literal["pool", "policy"]
    code: str
    policy_id: str | None
    version: int | None
    title: str
    status: Status
    blocking: list[str] = Field(description="When near: the criteria to close")
    missing_facts: list[str]
    criteria: list[CriterionOut]


class MatchList(BaseModel):
    uscc: str
    name: str
    stage: str | None
    score: float | None
    run_id: str
    period: int
    items: list[MatchOut]


class PushOut(BaseModel):
    id: int
    kind: Literal["pool", "policy"]
    code: str
    title: str
    status: Status
    run_id: str | None
    created_at: datetime
    read_at: datetime | None
    read: bool


class PushPage(BaseModel):
    items: list[PushOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
    unread: int
