"""Evaluation runs and outbox events as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.scoring.models import EvaluationRun


class RunCreate(BaseModel):
    period: int = Field(ge=2000, le=2100)
    model_version: str | None = Field(None, description="Default: the latest published model")
    wait: bool = Field(False, description="Answer only when the run has finished")


class RunOut(BaseModel):
    id: uuid.UUID
    period: int
    model_version: str
    status: str
    input_fingerprint: str | None
    enterprise_count: int
    scored_count: int
    excluded_count: int
    merges: list[dict[str, Any]]
    error: str | None
    duration_ms: int | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    published_at: datetime | None

    @classmethod
    def of(cls, run: EvaluationRun) -> RunOut:
        return cls.model_validate(run, from_attributes=True)


class EventOut(BaseModel):
    id: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int
    latest: int = Field(description="Id of the newest event (for lag metrics)")
