from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.credit.lines.rules import Amount, LineRule, Stage

Rate = Annotated[float, Field(gt=0, le=36, description="Percent per year")]
ProductStatus = Literal["draft", "published", "withdrawn"]


class ProductTerms(BaseModel):
    """What a bank states about a product; one version of it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4000)
    eligible_stages: list[Stage] = Field(min_length=1, max_length=5)
    min_tier: int | None = Field(None, ge=1, le=5, description="Lowest tier (5 best) admitted")
    min_percentile: float | None = Field(
        None, ge=0, le=1, description="Lowest within-stage percentile admitted (1 best)"
    )
    line_rule: LineRule
    max_amount: Amount
    rate_min: Rate
    rate_max: Rate
    term_months: int = Field(ge=1, le=360)
    guarantee: Literal["pure_credit", "guaranteed", "collateral"] = "pure_credit"
    valid_from: date | None = None
    valid_to: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.eligible_stages)) != len(self.eligible_stages):
            raise ValueError("eligible_stages has duplicates")
        if self.rate_min > self.rate_max:
            raise ValueError("rate_min is above rate_max")
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise ValueError("valid_from is after valid_to")
        if self.line_rule.base_amount > self.max_amount:
            raise ValueError("the line rule's base amount is above max_amount")
        if self.max_amount < 1:
            raise ValueError("max_amount must be positive")
        return self


class ProductOut(ProductTerms):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    bank_id: str
    bank_name: str
    hotline: str
    status: ProductStatus
    version: int = Field(description="The version these terms belong to")
    version_published_at: datetime | None
    version_published_by: str | None = Field(
        None, description="Who published this version (the person, for staff)"
    )
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = Field(None, description="Who withdrew the product")
    created_by: str | None = Field(None, description="Who created the product")
    published_version: int | None = Field(description="The version enterprises are offered")
    latest_version: int
    created_at: datetime
    updated_at: datetime
