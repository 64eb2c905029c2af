"""How a product turns a published score into a pre-approved line (授信额度). Pure code.

`line_for` is the rule for one enterprise and product; `compute_lines` applies it to every
enterprise of an evaluation x every published product version. The view `credit.credit_lines`
(its migration) states the same rule in SQL and computes the lines served when they are read;
tests hold the two equal. No I/O: a what-if computes lines here without storing them, and
`ineligibility` says why an enterprise has no line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator


class Stage(StrEnum):
    """Growth stages of the scoring model (种子期, 初创期, 成长期, 扩张期, 成熟期)."""

    SEED = "seed"
    SEEDLING = "seedling"
    GROWTH = "growth"
    EXPANSION = "expansion"
    MATURE = "mature"


class Ineligibility(StrEnum):
    """Why an enterprise gets no line from a product; each is a distinct problem on apply."""

    NOT_SCORED = "not-scored"
    NEGATIVE_LIST = "negative-list"
    STAGE_NOT_ELIGIBLE = "stage-not-eligible"
    BELOW_MINIMUM_TIER = "below-minimum-tier"
    BELOW_MINIMUM_PERCENTILE = "below-minimum-percentile"


Amount = Annotated[int, Field(ge=0, le=10_000_000_000, description="Whole CNY")]


class Band(BaseModel):
    min: float = Field(
        description="Lowest within-stage percentile (0..1, 1 best) or tier (1..5) of the band"
    )
    amount: Amount


class LineRule(BaseModel):
    """The line is the amount of the highest band the score reaches, else the base amount."""

    basis: Literal["percentile", "tier"] = "percentile"
    base_amount: Amount
    bands: list[Band] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        limit = 1.0 if self.basis == "percentile" else 5.0
        for band in self.bands:
            if not 0.0 <= band.min <= limit:
                raise ValueError(f"a {self.basis} band starts between 0 and {limit:g}")
            if band.amount < self.base_amount:
                raise ValueError("a band's amount is at least the base amount")
        # Highest threshold first, so the first band reached is the one that applies.
        self.bands = sorted(self.bands, key=lambda b: b.min, reverse=True)
        return self


# The PROPOSAL of domain.md section 3: by rank within stage, top 10% up to 10M, 10-30% up to
# 3M, 30-60% up to 1M, every other eligible enterprise the 500k base.
PILOT_RULE = LineRule(
    basis="percentile",
    base_amount=500_000,
    bands=[
        Band(min=0.9, amount=10_000_000),
        Band(min=0.7, amount=3_000_000),
        Band(min=0.4, amount=1_000_000),
    ],
)


@dataclass(frozen=True, slots=True)
class ScoreFacts:
    """The part of a published score a line depends on."""

    uscc: str
    stage: str | None
    scored: bool
    exclusion: str | None
    percentile: float | None
    tier: int | None


@dataclass(frozen=True, slots=True)
class ProductRule:
    """The part of a product version a line depends on."""

    product_id: str
    version: int
    eligible_stages: frozenset[str]
    min_tier: int | None
    min_percentile: float | None
    max_amount: int
    rule: LineRule


@dataclass(frozen=True, slots=True)
class Line:
    uscc: str
    product_id: str
    version: int
    amount: int
    band: int  # index into the rule's (sorted) bands; -1 for the base amount


def ineligibility(score: ScoreFacts, product: ProductRule) -> Ineligibility | None:
    if score.exclusion and score.exclusion.startswith("negative_list"):
        return Ineligibility.NEGATIVE_LIST
    if not score.scored or score.exclusion or score.stage is None:
        return Ineligibility.NOT_SCORED
    if score.stage not in product.eligible_stages:
        return Ineligibility.STAGE_NOT_ELIGIBLE
    if product.min_tier is not None and (score.tier or 0) < product.min_tier:
        return Ineligibility.BELOW_MINIMUM_TIER
    if product.min_percentile is not None and (score.percentile or 0.0) < product.min_percentile:
        return Ineligibility.BELOW_MINIMUM_PERCENTILE
    return None


def line_for(score: ScoreFacts, product: ProductRule) -> Line | None:
    if ineligibility(score, product) is not None:
        return None
    rule = product.rule
    value = score.percentile if rule.basis == "percentile" else score.tier
    amount, band = rule.base_amount, -1
    if value is not None:
        for i, b in enumerate(rule.bands):
            if value >= b.min:
                amount, band = b.amount, i
                break
    return Line(
        score.uscc, product.product_id, product.version, min(amount, product.max_amount), band
    )


def compute_lines(scores: Iterable[ScoreFacts], products: Sequence[ProductRule]) -> Iterator[Line]:
    """Every line of every enterprise for every product; ineligible pairs yield nothing."""
    for score in scores:
        for product in products:
            line = line_for(score, product)
            if line is not None:
                yield line


# A product open to every stage with no minimum: against it, `ineligibility` reports only
# what the score alone decides (not scored, on the negative list).
ANY_PRODUCT = ProductRule("", 0, frozenset(s.value for s in Stage), None, None, 0, PILOT_RULE)
