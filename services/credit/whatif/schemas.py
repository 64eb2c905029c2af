"""What a scoring run would do to the pre-approved lines, before it is published."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from shared.pagination import Page, PageParams


class EvaluationWhatIf(PageParams):
    """A scoring run, and the page of changes wanted (`limit`, `offset`)."""

    run_id: uuid.UUID = Field(description="A scoring run (in notice, completed, ...)")


class BestLine(BaseModel):
    """An enterprise's largest pre-approved line: its amount and the band that gave it."""

    amount: int
    product_id: uuid.UUID
    product_version: int
    band: int = Field(description="Index of the band applied; -1 for the base amount")
    lines: int = Field(description="How many products offer it a line")


class LineChange(BaseModel):
    uscc: str
    name: str | None
    before: BestLine | None = Field(description="With the lines served now; null: no line")
    after: BestLine | None = Field(description="With the run's scores; null: no line")
    delta: int


class LineCounts(BaseModel):
    enterprises: int = Field(description="Enterprises in the run")
    with_line_before: int
    with_line_after: int
    lines_before: int
    lines_after: int
    pre_approved_before: int = Field(description="Sum of every line, CNY")
    pre_approved_after: int
    gained: int = Field(description="No line now, one with the run")
    lost: int
    raised: int
    lowered: int
    same_amount_other_band: int = Field(description="Same best amount from another product/band")


class EvaluationWhatIfOut(BaseModel):
    run_id: uuid.UUID
    current_run_id: uuid.UUID | None = Field(description="The published run the lines come from")
    products: int
    counts: LineCounts
    changes: Page[LineChange] = Field(
        description="Enterprises whose best line changes, largest first"
    )
