"""Evaluation runs and outbox events as the API shows them."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator

from services.scoring.common import SHANGHAI, ShanghaiTime
from services.scoring.models import EvaluationRun

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RunCreate(BaseModel):
    period: int = Field(ge=2000, le=2100)
    model_version: str | None = Field(None, description="Default: the latest published model")
    wait: bool = Field(False, description="Answer only when the run has finished")
    corrects_run_id: uuid.UUID | None = Field(
        None,
        description="The run in notice this run corrects (after accepted objections): it may "
        "then be published without a second notice",
    )


class NoticeCreate(BaseModel):
    """Put a completed run in public notice (公示) until `ends_at`."""

    ends_at: ShanghaiTime = Field(
        description="When the notice ends, Asia/Shanghai: a time (naive = Shanghai) or a "
        "date, meaning the end of that day"
    )

    @field_validator("ends_at", mode="before")
    @classmethod
    def _end_of_day(cls, value: Any) -> Any:
        # "2025-10-15": the notice runs through the 15th, Shanghai time.
        if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
            value = date.fromisoformat(value.strip())
        if isinstance(value, date) and not isinstance(value, datetime):
            if value >= date.max:
                raise ValueError("the date is out of range")
            return datetime.combine(value + timedelta(days=1), time(), SHANGHAI)
        return value


class RunOut(BaseModel):
    id: uuid.UUID
    period: int
    model_version: str
    status: str = Field(
        description="running | completed | failed | in_notice | published | superseded"
    )
    corrects_run_id: uuid.UUID | None
    notice_opened_at: ShanghaiTime | None
    notice_opened_by: str | None
    notice_ends_at: ShanghaiTime | None
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
    published_by: str | None

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


class ObjectionCounts(BaseModel):
    open: int = 0
    accepted: int = 0
    rejected: int = 0


class NoticeOut(BaseModel):
    """A run in public notice, as enterprises and the government see it."""

    run_id: uuid.UUID
    period: int
    model_version: str
    corrects_run_id: uuid.UUID | None
    opened_at: ShanghaiTime
    ends_at: ShanghaiTime
    accepting_objections: bool = Field(description="The notice has not ended yet")
    objections: ObjectionCounts = Field(
        description="The government sees every objection; an enterprise its own"
    )
