"""Bad rate by tier, rank ordering (Fisher, Somers' D) and calibration (binomial, traffic light)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from services.scoring.governance import (
    GovernanceInputError,
    calibration,
    expected_rates,
    tier_table,
    traffic_light,
)


def _firms(spec: dict[int, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows from {tier: (count, bad)}."""
    tiers, bads = [], []
    for tier, (count, bad) in spec.items():
        tiers += [tier] * count
        bads += [1] * bad + [0] * (count - bad)
    return np.array(tiers), np.array(bads)


def test_hand_computed_table() -> None:
    tier, bad = _firms({1: (4, 2), 2: (5, 1), 3: (0, 0), 4: (10, 1), 5: (1, 0), 0: (3, 1)})
    t = tier_table(tier, bad)
    assert [(r.tier, r.count, r.bad) for r in t.rows] == [
        (1, 4, 2),
        (2, 5, 1),
        (3, 0, 0),
        (4, 10, 1),
        (5, 1, 0),
    ]
    assert [r.bad_rate for r in t.rows] == [0.5, 0.2, None, 0.1, 0.0]
    assert [r.share for r in t.rows] == [4 / 20, 5 / 20, 0.0, 10 / 20, 1 / 20]
    assert (t.count, t.bad, t.unrated) == (20, 4, 3)
    assert t.bad_rate == 4 / 20
    ro = t.rank_ordering
    assert ro.monotonic and ro.violations == () and ro.significant_violations == 0
    # The empty tier 3 is skipped: tier 2 is compared with tier 4.
    assert [(a.lower_tier, a.higher_tier) for a in ro.adjacent] == [(1, 2), (2, 4), (4, 5)]


def test_adjacent_fisher_hand_case_and_scipy() -> None:
    # Tier 1: 2 firms, both defaulted; tier 2: 2 firms, none. With the margins fixed (2 bads
    # among 4 firms) the observed split is the most extreme of C(4, 2) = 6 equally likely ones.
    tier, bad = _firms({1: (2, 2), 2: (2, 0)})
    a = tier_table(tier, bad).rank_ordering.adjacent[0]
    assert a.p_separated == pytest.approx(1 / 6)
    assert a.p_reversed == pytest.approx(1.0)
    assert not a.violation
    tier, bad = _firms({1: (300, 30), 2: (500, 20), 3: (400, 30)})
    adj = tier_table(tier, bad).rank_ordering.adjacent
    for a, table in zip(adj, ([[30, 270], [20, 480]], [[20, 480], [30, 370]]), strict=True):
        assert a.p_separated == stats.fisher_exact(table, alternative="greater").pvalue
        assert a.p_reversed == stats.fisher_exact(table, alternative="less").pvalue


def test_violations_significant_and_not() -> None:
    # Tier 3 is far worse than tier 2: a violation a test confirms.
    tier, bad = _firms({1: (1000, 100), 2: (1000, 50), 3: (1000, 120), 4: (1000, 20)})
    ro = tier_table(tier, bad).rank_ordering
    assert not ro.monotonic
    assert [(v.lower_tier, v.higher_tier) for v in ro.violations] == [(2, 3)]
    assert ro.violations[0].significant_violation and ro.significant_violations == 1
    # A one-default wobble is a violation in the numbers but not a significant one.
    tier, bad = _firms({1: (100, 10), 2: (100, 5), 3: (100, 6), 4: (100, 1)})
    ro = tier_table(tier, bad).rank_ordering
    assert not ro.monotonic
    assert ro.violations[0].lower_bad_rate == 0.05 and ro.violations[0].higher_bad_rate == 0.06
    assert not ro.violations[0].significant_violation and ro.significant_violations == 0


def test_trend_is_somers_d_equal_to_the_tier_gini() -> None:
    # Hand case: tier 1 has 1 bad and 1 good, tier 2 has 1 good. Bad-good pairs: bad@1 vs
    # good@1 tie (0), bad@1 vs good@2 concordant (+1): D = (1 - 0) / (1 * 2) = 0.5.
    t = tier_table([1, 1, 2], [1, 0, 0])
    assert t.rank_ordering.trend is not None
    assert t.rank_ordering.trend.somers_d == pytest.approx(0.5)
    rng = np.random.default_rng(3)
    tier = rng.integers(1, 6, 5000)
    bad = rng.random(5000) < 0.12 - 0.02 * tier
    trend = tier_table(tier, bad).rank_ordering.trend
    assert trend is not None
    assert trend.somers_d == pytest.approx(2 * roc_auc_score(~bad, tier) - 1)
    assert trend.significant and trend.p_value < 1e-6
    # No relation at all: no significant trend.
    flat = tier_table(tier, rng.random(5000) < 0.05).rank_ordering.trend
    assert flat is not None and not flat.significant


def test_trend_needs_two_tiers_and_both_outcomes() -> None:
    assert tier_table([1, 1, 1], [0, 1, 0]).rank_ordering.trend is None
    assert tier_table([1, 2, 3], [0, 0, 0]).rank_ordering.trend is None
    assert tier_table([], []).rank_ordering.trend is None


def test_binomial_test_hand_case_and_scipy() -> None:
    # Tier 1: 10 firms, 3 defaults, expected 10%. P(X >= 3) = 1 - P(0) - P(1) - P(2).
    tier, bad = _firms({1: (10, 3), 2: (10, 0)})
    c = calibration(tier_table(tier, bad), {1: 0.1})
    row = c.rows[0]
    p_le_2 = 0.9**10 + 10 * 0.1 * 0.9**9 + 45 * 0.1**2 * 0.9**8
    assert row.p_greater == pytest.approx(1 - p_le_2)
    assert row.cumulative_probability == pytest.approx(p_le_2 + 120 * 0.1**3 * 0.9**7)
    assert row.p_two_sided == stats.binomtest(3, 10, 0.1).pvalue
    assert row.observed_rate == 0.3 and row.expected_rate == 0.1
    assert c.untested_tiers == (2,)


@pytest.mark.parametrize(
    ("defaults", "zone"), [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red")]
)
def test_traffic_light_reproduces_the_basel_table(defaults: int, zone: str) -> None:
    # Basel Committee (1996) backtesting: 250 observations at 1% -> green 0-4, yellow 5-9,
    # red from 10. Cumulative probability by hand: sum of C(250, k) 0.01^k 0.99^(250-k).
    cum = sum(math.comb(250, k) * 0.01**k * 0.99 ** (250 - k) for k in range(defaults + 1))
    p, z = traffic_light(defaults, 250, 0.01)
    assert p == pytest.approx(cum)
    assert z == zone


def test_calibration_zones_and_exceeding_tiers() -> None:
    tier, bad = _firms({1: (1000, 150), 2: (1000, 65), 3: (1000, 30), 4: (1000, 10), 5: (0, 0)})
    expected = {1: 0.10, 2: 0.05, 3: 0.03, 4: 0.01, 5: 0.005}
    c = calibration(tier_table(tier, bad), expected)
    zones = {r.tier: r.zone for r in c.rows}
    assert zones == {1: "red", 2: "yellow", 3: "green", 4: "green"}
    assert c.zone == "red"
    assert c.exceeding_tiers == (1, 2)
    assert c.untested_tiers == (5,)
    nothing = calibration(tier_table(tier, bad), {})
    assert nothing.rows == () and nothing.zone is None
    assert json.dumps(c.to_dict(), allow_nan=False)


def test_expected_rates_from_a_reference_table() -> None:
    tier, bad = _firms({1: (10, 2), 2: (10, 0), 3: (4, 4), 4: (10, 1)})
    assert expected_rates(tier_table(tier, bad)) == {1: 0.2, 4: 0.1}


@pytest.mark.parametrize(
    ("tier", "bad", "message"),
    [
        ([1, 6], [0, 1], r"0\.\.5"),
        ([1, -1], [0, 1], r"0\.\.5"),
        ([1.5, 2], [0, 1], "whole tier"),
        ([1, 2], [0, 1, 1], "one entry per enterprise"),
        ([1, 2], [0, 3], "only 0 and 1"),
    ],
)
def test_bad_tier_input(tier: list[float], bad: list[int], message: str) -> None:
    with pytest.raises(GovernanceInputError, match=message):
        tier_table(tier, bad)


def test_bad_calibration_input() -> None:
    t = tier_table([1, 2], [0, 1])
    with pytest.raises(GovernanceInputError, match="unknown tier"):
        calibration(t, {7: 0.1})
    with pytest.raises(GovernanceInputError, match=r"\(0, 1\)"):
        calibration(t, {1: 0.0})
    with pytest.raises(GovernanceInputError, match="yellow_at"):
        calibration(t, {1: 0.1}, yellow_at=0.99, red_at=0.95)
