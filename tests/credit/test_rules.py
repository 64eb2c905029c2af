"""The line rule as a pure function: bands, caps, eligibility reasons."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.credit.lines.rules import (
    ANY_PRODUCT,
    PILOT_RULE,
    Band,
    Ineligibility,
    LineRule,
    ProductRule,
    ScoreFacts,
    compute_lines,
    ineligibility,
    line_for,
)

ALL = frozenset({"seed", "seedling", "growth", "expansion", "mature"})
PILOT = ProductRule("p1", 1, ALL, None, None, 10_000_000, PILOT_RULE)


def score(
    pct: float | None,
    *,
    stage: str | None = "growth",
    tier: int | None = 3,
    scored: bool = True,
    exclusion: str | None = None,
    uscc: str = "u",
) -> ScoreFacts:
    return ScoreFacts(uscc, stage, scored, exclusion, pct, tier)


@pytest.mark.parametrize(
    ("pct", "amount", "band"),
    [
        (1.0, 10_000_000, 0),
        (0.9, 10_000_000, 0),  # exactly the top 10%
        (0.8999, 3_000_000, 1),
        (0.7, 3_000_000, 1),
        (0.5, 1_000_000, 2),
        (0.4, 1_000_000, 2),
        (0.3999, 500_000, -1),
        (0.0, 500_000, -1),
    ],
)
def test_pilot_bands_by_within_stage_percentile(pct: float, amount: int, band: int) -> None:
    line = line_for(score(pct), PILOT)
    assert line is not None
    assert (line.amount, line.band) == (amount, band)


def test_max_amount_caps_the_band() -> None:
    capped = ProductRule("p", 1, ALL, None, None, 2_000_000, PILOT_RULE)
    line = line_for(score(0.95), capped)
    assert line is not None and line.amount == 2_000_000


def test_tier_basis() -> None:
    rule = LineRule(basis="tier", base_amount=300_000, bands=[Band(min=4, amount=2_000_000)])
    product = ProductRule("p", 1, ALL, None, None, 5_000_000, rule)
    assert line_for(score(0.1, tier=5), product).amount == 2_000_000  # type: ignore[union-attr]
    assert line_for(score(0.99, tier=3), product).amount == 300_000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("facts", "product", "reason"),
    [
        (
            score(0.5, exclusion="negative_list:serious_dishonesty", scored=False),
            PILOT,
            Ineligibility.NEGATIVE_LIST,
        ),
        (score(None, stage=None, scored=False, tier=None), PILOT, Ineligibility.NOT_SCORED),
        (
            score(0.5, stage="seed"),
            ProductRule("p", 1, frozenset({"growth"}), None, None, 1, PILOT_RULE),
            Ineligibility.STAGE_NOT_ELIGIBLE,
        ),
        (
            score(0.5, tier=2),
            ProductRule("p", 1, ALL, 3, None, 1, PILOT_RULE),
            Ineligibility.BELOW_MINIMUM_TIER,
        ),
        (
            score(0.5),
            ProductRule("p", 1, ALL, None, 0.6, 1, PILOT_RULE),
            Ineligibility.BELOW_MINIMUM_PERCENTILE,
        ),
    ],
)
def test_ineligible_enterprises_get_no_line_and_a_reason(
    facts: ScoreFacts, product: ProductRule, reason: Ineligibility
) -> None:
    assert ineligibility(facts, product) is reason
    assert line_for(facts, product) is None


def test_score_level_reasons_against_any_product() -> None:
    assert ineligibility(score(0.5), ANY_PRODUCT) is None
    neg = score(0.5, exclusion="negative_list:x", scored=False)
    assert ineligibility(neg, ANY_PRODUCT) is Ineligibility.NEGATIVE_LIST


def test_compute_lines_is_the_product_of_scores_and_products() -> None:
    scores = [score(i / 100, uscc=f"u{i}") for i in range(100)]
    scores.append(score(None, stage=None, scored=False, tier=None, uscc="none"))
    products = [PILOT, ProductRule("p2", 3, frozenset({"growth"}), None, 0.5, 10**7, PILOT_RULE)]
    lines = list(compute_lines(scores, products))
    assert sum(1 for ln in lines if ln.product_id == "p1") == 100
    assert sum(1 for ln in lines if ln.product_id == "p2") == 50
    assert {ln.version for ln in lines if ln.product_id == "p2"} == {3}
    # Deterministic: the same inputs give the same lines.
    assert lines == list(compute_lines(scores, products))
    base = sum(1 for ln in lines if ln.product_id == "p1" and ln.amount >= 500_000)
    assert base == 100


@pytest.mark.parametrize(
    "bad",
    [
        {"base_amount": 500_000, "bands": [{"min": 1.5, "amount": 1_000_000}]},
        {"base_amount": 500_000, "bands": [{"min": 0.5, "amount": 100}]},
        {"basis": "tier", "base_amount": 1, "bands": [{"min": 6, "amount": 2}]},
        {"base_amount": -1},
    ],
)
def test_line_rule_refuses_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LineRule.model_validate(bad)
