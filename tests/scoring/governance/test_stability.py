"""PSI and CSI: hand arithmetic, scipy's relative entropy, flags at every level, properties."""

from __future__ import annotations

import importlib
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from services.scoring.governance import (
    GovernanceInputError,
    characteristic_stability,
    psi,
    psi_flag,
)


def _values(shares: list[float], n: int) -> np.ndarray:
    """n values spread over bins (-inf, 1], (1, 2], ... with the given shares (bin k holds k+1)."""
    counts = np.round(np.asarray(shares) * n).astype(int)
    return np.repeat(np.arange(1, len(shares) + 1, dtype=np.float64), counts)


def test_hand_computed_psi() -> None:
    # Reference 50/50, current 25/75 over the cut at 1: bins (-inf, 1] and (1, inf).
    r = psi(_values([0.5, 0.5], 100), _values([0.25, 0.75], 100), bins=[1.0])
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3
    assert r.psi == pytest.approx(0.25 * math.log(3))
    assert r.flag == "act"
    assert [(b.lower, b.upper) for b in r.bins] == [(None, 1.0), (1.0, None)]
    assert [b.reference_count for b in r.bins] == [50, 50]
    assert [b.current_count for b in r.bins] == [25, 75]
    assert r.bins[0].contribution == pytest.approx(0.25 * math.log(2))


def test_psi_equals_symmetrised_relative_entropy() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 20000)
    cur = rng.normal(0.3, 1.1, 20000)
    r = psi(ref, cur, bins=10)
    e = np.array([b.reference_share for b in r.bins])
    a = np.array([b.current_share for b in r.bins])
    assert (e > 0).all() and (a > 0).all()  # no epsilon involved
    # PSI = KL(a || e) + KL(e || a), scipy.stats.entropy being the relative entropy.
    assert r.psi == pytest.approx(entropy(a, e) + entropy(e, a), rel=1e-12)


def test_reference_deciles_and_right_closed_bins() -> None:
    ref = np.arange(1.0, 101.0)  # 1..100
    r = psi(ref, ref, bins=10)
    # Cut points at the reference's deciles, as reference values: 10, 20, ..., 90.
    assert [b.upper for b in r.bins[:-1]] == [10.0 * k for k in range(1, 10)]
    assert [b.reference_count for b in r.bins] == [10] * 10
    assert r.psi == 0.0 and r.flag == "stable"
    # A value equal to a cut point belongs to the bin below (right-closed).
    on_cut = psi([1.0, 2.0, 3.0, 4.0], [2.0], bins=[2.0])
    assert [b.current_count for b in on_cut.bins] == [1, 0]


def test_tied_quantiles_merge_into_fewer_bins() -> None:
    # 60% zeros: the 1st..6th deciles are all 0, one cut; then 100, 200, 300: five bins.
    ref = np.r_[np.zeros(600), np.arange(1.0, 401.0)]
    r = psi(ref, ref, bins=10)
    assert [b.upper for b in r.bins] == [0.0, 100.0, 200.0, 300.0, None]
    assert [b.reference_count for b in r.bins] == [600, 100, 100, 100, 100]
    # A yes/no flag held by 30%: the deciles are 0 and 1, and 1 is the maximum: one cut.
    flag = np.r_[np.zeros(70), np.ones(30)]
    assert [b.reference_count for b in psi(flag, flag).bins] == [70, 30]
    # Every value the same: one bin.
    assert len(psi(np.ones(10), np.ones(5)).bins) == 1


def test_empty_bin_uses_the_documented_floor() -> None:
    ref = _values([0.5, 0.5, 0.0], 1000)
    cur = _values([0.5, 0.4, 0.1], 1000)
    r = psi(ref, cur, bins=[1.0, 2.0])
    eps = 1e-4
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - eps) * math.log(0.1 / eps)
    assert r.psi == pytest.approx(expected)
    assert r.epsilon == eps
    # A bin empty in both periods contributes nothing.
    both_empty = psi(_values([0.5, 0.5, 0.0], 100), _values([0.5, 0.5, 0.0], 100), bins=[1, 2])
    assert both_empty.psi == 0.0


def test_missing_values_get_a_bin_of_their_own() -> None:
    ref = np.r_[np.arange(100.0), [np.nan] * 0]
    cur = np.r_[np.arange(90.0), [np.nan] * 10]
    r = psi(ref, cur, bins=[49.5])
    assert r.bins[-1].missing and r.bins[-1].current_count == 10
    assert r.bins[-1].reference_count == 0
    no_nan = psi(ref, ref, bins=[49.5])
    assert not any(b.missing for b in no_nan.bins)


@pytest.mark.parametrize(
    ("value", "flag"),
    [(0.0, "stable"), (0.0999, "stable"), (0.1, "watch"), (0.2499, "watch"), (0.25, "act")],
)
def test_flag_boundaries(value: float, flag: str) -> None:
    assert psi_flag(value) == flag


@pytest.mark.parametrize(
    ("current", "flag"),
    [
        # 50/50 -> 45/55: 0.05 ln(55/45) + ... ~ 0.01
        ([0.45, 0.55], "stable"),
        # 50/50 -> 34/66: ~ 0.104
        ([0.34, 0.66], "watch"),
        # 50/50 -> 25/75: 0.25 ln 3 ~ 0.275
        ([0.25, 0.75], "act"),
    ],
)
def test_each_flag_level_from_data(current: list[float], flag: str) -> None:
    r = psi(_values([0.5, 0.5], 1000), _values(current, 1000), bins=[1.0])
    a = np.array(current)
    assert r.psi == pytest.approx(float(np.sum((a - 0.5) * np.log(a / 0.5))))
    assert r.flag == flag


def test_configured_thresholds() -> None:
    r = psi(_values([0.5, 0.5], 1000), _values([0.45, 0.55], 1000), bins=[1.0], watch_at=0.005)
    assert r.flag == "watch" and r.watch_at == 0.005


@settings(max_examples=80, deadline=None)
@given(
    ref=st.lists(st.integers(0, 9), min_size=1, max_size=60),
    cur=st.lists(st.integers(0, 9), min_size=1, max_size=60),
)
def test_psi_is_non_negative_symmetric_and_zero_on_identity(ref: list[int], cur: list[int]) -> None:
    cuts = [float(c) + 0.5 for c in range(9)]
    r = psi(ref, cur, bins=cuts)
    assert r.psi >= 0.0
    assert all(b.contribution >= 0.0 for b in r.bins)
    # With fixed cuts both ways, the formula is symmetric in the two periods.
    assert psi(cur, ref, bins=cuts).psi == pytest.approx(r.psi)
    assert psi(ref, ref, bins=cuts).psi == 0.0
    assert psi(ref, list(reversed(ref)), bins=5).psi == 0.0


def test_characteristic_stability_per_indicator() -> None:
    rng = np.random.default_rng(2)
    ref = {"rd_expense": rng.lognormal(0, 1, 5000), "qualified": rng.random(5000) < 0.3}
    cur = {"rd_expense": rng.lognormal(0.8, 1, 5000), "qualified": rng.random(5000) < 0.3}
    out = characteristic_stability(ref, cur)
    assert [c.name for c in out] == ["rd_expense", "qualified"]
    assert out[0].flag == "act"
    assert out[1].flag == "stable"
    # A yes/no indicator gets its two values as bins.
    assert len(out[1].bins) == 2
    assert out[0].psi == psi(ref["rd_expense"], cur["rd_expense"], name="rd_expense").psi
    with pytest.raises(GovernanceInputError, match="differ in"):
        characteristic_stability(ref, {"rd_expense": cur["rd_expense"]})


def test_comparison_and_search_counting_agree() -> None:
    # Up to 32 cut points the bins are counted by comparisons, beyond by a binary search.
    rng = np.random.default_rng(4)
    ref = rng.normal(0, 1, 3000)
    cur = np.r_[rng.normal(0.2, 1, 3000), [np.nan] * 30]
    few = psi(ref, cur, bins=30)
    many = psi(ref, cur, bins=60)
    merged = [b.current_count for b in many.bins]
    assert sum(merged) == sum(b.current_count for b in few.bins) == 3030
    cuts = [b.upper for b in many.bins if b.upper is not None]
    expected = np.bincount(
        np.searchsorted(cuts, cur[~np.isnan(cur)], side="left"), minlength=len(cuts) + 1
    )
    assert merged[:-1] == expected.tolist()
    expected_few = [
        int(
            np.sum(
                (cur > (b.lower if b.lower is not None else -np.inf))
                & (cur <= (b.upper if b.upper is not None else np.inf))
            )
        )
        for b in few.bins[:-1]
    ]
    assert [b.current_count for b in few.bins[:-1]] == expected_few


@pytest.mark.parametrize(
    ("ref", "cur", "kwargs", "message"),
    [
        ([], [1.0], {}, "at least one firm"),
        ([1.0], [np.inf], {}, "infinite"),
        ([1.0], [1.0], {"bins": 0}, "bins"),
        ([1.0], [1.0], {"bins": [2.0, 1.0]}, "increasing"),
        ([1.0], [1.0], {"epsilon": 0.0}, "epsilon"),
        ([1.0], [1.0], {"watch_at": 0.3}, "watch_at"),
    ],
)
def test_bad_input(
    ref: list[float], cur: list[float], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(GovernanceInputError, match=message):
        psi(ref, cur, **kwargs)  # type: ignore[arg-type]


def test_result_is_json() -> None:
    r = psi([1.0, 2.0, np.nan], [1.0, 3.0, 4.0], bins=[1.5])
    back = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert back["bins"][0]["lower"] is None and back["bins"][-1]["missing"] is True


def test_quantile_cuts_are_numpys_inverted_cdf_quantiles() -> None:
    """The cuts are read off the sorted column by position; they must be the values
    `np.quantile(method="inverted_cdf")` gives, ties, NaN and awkward sizes included."""
    module = importlib.import_module("services.scoring.governance.stability")
    rng = np.random.default_rng(7)
    for n in [*range(1, 400), 1009, 4096, 99_991]:
        for bins in (2, 3, 7, 10, 20):
            values = rng.integers(0, max(2, n // 3), n).astype(np.float64)
            values[rng.random(n) < 0.1] = np.nan
            present = values[~np.isnan(values)]
            edges = module.reference_edges(values, bins)
            if present.size == 0:
                assert edges.size == 0
                continue
            qs = np.unique(np.quantile(present, np.arange(1, bins) / bins, method="inverted_cdf"))
            assert np.array_equal(edges, qs[qs < present.max()]), (n, bins)


def test_reference_counts_from_the_sorted_column_equal_a_count_per_bin() -> None:
    rng = np.random.default_rng(11)
    ref = np.round(rng.lognormal(0.0, 1.0, 20_000), 1)
    ref[rng.random(ref.size) < 0.05] = np.nan
    cur = np.round(rng.lognormal(0.2, 1.0, 15_000), 1)
    r = psi(ref, cur, bins=10)
    edges = [b.upper for b in r.bins if not b.missing and b.upper is not None]
    bounds = [-np.inf, *edges, np.inf]
    expected = [
        int(np.count_nonzero((ref > lo) & (ref <= hi))) for lo, hi in itertools.pairwise(bounds)
    ]
    assert [b.reference_count for b in r.bins if not b.missing] == expected
    assert [b.reference_count for b in r.bins if b.missing] == [int(np.isnan(ref).sum())]
