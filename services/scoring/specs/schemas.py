"""Scoring-model versions as the API shows and accepts them (the `/v1/models` resource)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from services.scoring.models import ScoringModel


class ModelOut(BaseModel):
    version: str
    status: str
    description: str | None
    spec: dict[str, Any]
    created_by: str
    created_at: datetime
    published_at: datetime | None
    published_by: str | None = None
    challenger_report_id: uuid.UUID | None = Field(
        None, description="The challenger report the version was published on"
    )
    challenger_report: str | None = Field(None, description="Its URL under /v1")

    @model_validator(mode="after")
    def _link(self) -> ModelOut:
        if self.challenger_report_id is not None:
            self.challenger_report = f"/v1/challenger-reports/{self.challenger_report_id}"
        return self

    @classmethod
    def of(cls, model: ScoringModel) -> ModelOut:
        return cls.model_validate(model, from_attributes=True)


class ModelCreate(BaseModel):
    version: str = Field(pattern=r"^[0-9A-Za-z._-]{1,32}$")
    description: str | None = Field(None, max_length=2000)
    base_version: str | None = Field(
        None, description="Copy this version's spec, then apply the fields given here"
    )
    stage_bands: list[float] | None = None
    dimension_weights: dict[str, dict[str, float]] | None = None
    indicator_weights: dict[str, float] | None = None
    min_cohort: int | None = None
    cap_low: float | None = None
    cap_high: float | None = None
    tier_bands: list[float] | None = None
