"""Objections (异议) and their evidence as the API shows them."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from services.scoring.common import ShanghaiTime
from services.scoring.provenance.schemas import SourceOut

USCC_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{18}$"


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class ObjectionCreate(BaseModel):
    run_id: uuid.UUID = Field(description="The run in notice")
    uscc: str = Field(pattern=USCC_PATTERN)
    indicator: str = Field(
        max_length=64, description="One of the 24 indicators, or operating_revenue (the stage)"
    )
    claimed_value: float = Field(description="The value the enterprise says is right")
    reason: str = Field(min_length=1, max_length=2000)

    _check = field_validator("claimed_value")(_finite)


class ObjectionDecision(BaseModel):
    decision: Literal["accepted", "rejected"]
    note: str = Field(min_length=1, max_length=2000)
    corrected_value: float | None = Field(
        None, description="For an accepted objection: the value to record (default: claimed)"
    )

    _check = field_validator("corrected_value")(_finite)


class EvidenceOut(BaseModel):
    id: uuid.UUID
    file_name: str
    media_type: str = Field(description="As sniffed from the content: PDF, PNG or JPEG")
    size: int
    sha256: str
    created_at: datetime


class ObjectionOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    period: int
    uscc: str
    indicator: str
    run_value: float | None = Field(description="The value the run was computed from")
    run_source: SourceOut | None
    claimed_value: float
    reason: str
    status: Literal["open", "accepted", "rejected"]
    created_by: str
    created_at: ShanghaiTime
    decided_by: str | None
    decided_at: ShanghaiTime | None
    decision_note: str | None
    corrected_value: float | None
    correction_source: SourceOut | None = Field(
        description="For an accepted objection: the correction, now the value's source"
    )
    evidence: list[EvidenceOut]
