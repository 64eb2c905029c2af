"""How a product turns a published score into a pre-approved line (授信额度). Pure code.

`line_for` is the rule for one enterprise and product; `compute_lines` applies it to every
enterprise of an evaluation x every published product version. `compute_line_columns` is the
same rule on columns (numpy), what the recomputation runs at a million enterprises, where
`compute_lines` takes seconds of Python; tests hold the two equal. No I/O: `lines.service`
reads the scores and writes what they yield, and a what-if computes lines without storing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Self

import numpy as np
import numpy.typing as npt
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


STAGE_ORDER: tuple[str, ...] = tuple(s.value for s in Stage)
NO_STAGE, OTHER_STAGE = -1, -2  # stage codes: none, or a name no product lists


@dataclass(frozen=True, slots=True)
class ScoreColumns:
    """`ScoreFacts` of many enterprises as columns; row i is one enterprise.

    `stage` indexes `STAGE_ORDER` (`NO_STAGE`, `OTHER_STAGE`), `clear` is scored with no
    exclusion, `percentile` and `tier` are NaN where missing. The codes are str, or ASCII
    bytes as read from the database (decoding a million of them would cost more than the
    rule).
    """

    usccs: npt.NDArray[np.str_] | npt.NDArray[np.bytes_]
    stage: npt.NDArray[np.int16]
    clear: npt.NDArray[np.bool_]
    percentile: npt.NDArray[np.float64]
    tier: npt.NDArray[np.float64]

    @classmethod
    def of(cls, scores: Sequence[ScoreFacts]) -> ScoreColumns:
        codes = {name: i for i, name in enumerate(STAGE_ORDER)}
        return cls(
            usccs=np.array([s.uscc for s in scores], dtype=str),
            stage=np.array(
                [NO_STAGE if s.stage is None else codes.get(s.stage, OTHER_STAGE) for s in scores],
                dtype=np.int16,
            ),
            clear=np.array([s.scored and not s.exclusion for s in scores], dtype=np.bool_),
            percentile=np.array(
                [np.nan if s.percentile is None else s.percentile for s in scores], dtype=float
            ),
            tier=np.array([np.nan if s.tier is None else s.tier for s in scores], dtype=float),
        )


@dataclass(frozen=True, slots=True)
class LineColumns:
    """Lines as columns: `row` indexes the scores, `product` the products."""

    row: npt.NDArray[np.intp]
    product: npt.NDArray[np.intp]
    amount: npt.NDArray[np.int64]
    band: npt.NDArray[np.int16]

    def lines(self, scores: ScoreColumns, products: Sequence[ProductRule]) -> Iterator[Line]:
        for r, p, amount, band in zip(
            self.row.tolist(),
            self.product.tolist(),
            self.amount.tolist(),
            self.band.tolist(),
            strict=True,
        ):
            product = products[p]
            code = scores.usccs[r]
            uscc = code.decode() if isinstance(code, bytes) else str(code)
            yield Line(uscc, product.product_id, product.version, amount, band)


def compute_line_columns(scores: ScoreColumns, products: Sequence[ProductRule]) -> LineColumns:
    """`compute_lines` on columns: the same lines, ordered by row, then by product as given."""
    n, p = len(scores.usccs), len(products)
    # One column per product; read row by row, the lines come out in (row, product) order.
    ok = np.zeros((n, p), dtype=np.bool_)
    amount = np.zeros((n, p), dtype=np.int64)
    band = np.zeros((n, p), dtype=np.int16)
    # Missing tier or percentile count as 0 against a product's minimum, as in `ineligibility`.
    tier0 = np.nan_to_num(scores.tier, nan=0.0)
    pct0 = np.nan_to_num(scores.percentile, nan=0.0)
    for k, product in enumerate(products):
        stages = [STAGE_ORDER.index(s) for s in product.eligible_stages if s in STAGE_ORDER]
        eligible = scores.clear & (scores.stage >= 0) & np.isin(scores.stage, stages)
        if product.min_tier is not None:
            eligible &= tier0 >= product.min_tier
        if product.min_percentile is not None:
            eligible &= pct0 >= product.min_percentile
        ok[:, k] = eligible
        rule = product.rule
        value = scores.percentile if rule.basis == "percentile" else scores.tier
        # Bands are sorted highest first: `reached` counts the bands whose minimum the value
        # reaches (0 for a missing value), and the highest of them is band len - reached.
        lowest_first = np.array([b.min for b in reversed(rule.bands)], dtype=np.float64)
        reached = np.searchsorted(lowest_first, value, side="right")
        reached[np.isnan(value)] = 0
        amounts = [rule.base_amount, *(b.amount for b in reversed(rule.bands))]
        indices = [-1, *reversed(range(len(rule.bands)))]
        amount[:, k] = np.minimum(np.take(amounts, reached), product.max_amount)
        band[:, k] = np.take(np.array(indices, dtype=np.int16), reached)
    row, product_index = np.nonzero(ok)
    return LineColumns(
        row=row.astype(np.intp),
        product=product_index.astype(np.intp),
        amount=amount[ok],
        band=band[ok],
    )
