"""AUC, Gini, KS, curves and the count-based bootstrap, against hand arithmetic, sklearn, scipy."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score, roc_curve

from services.scoring.governance import GovernanceInputError, discrimination
from services.scoring.governance.discrimination import auc_ks_from_counts, score_counts


def _data(n: int, seed: int, decimals: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scores with ties (rounded) and defaults more likely at low scores."""
    rng = np.random.default_rng(seed)
    score = np.round(rng.normal(60.0, 12.0, n), decimals)
    bad = rng.random(n) < 1.0 / (1.0 + np.exp((score - 45.0) / 6.0))
    return score, bad


def test_hand_computed_case() -> None:
    # Goods at 3, 4, 5; bads at 1, 3.
    score = [1, 3, 3, 4, 5]
    bad = [1, 1, 0, 0, 0]
    r = discrimination(score, bad, resamples=0)
    # Pairs (bad, good): bad@1 is below all three goods -> 3; bad@3 ties the good@3 (1/2) and is
    # below 4 and 5 -> 2.5. AUC = 5.5 / (2 * 3).
    assert r.auc == pytest.approx(5.5 / 6)
    assert r.gini == pytest.approx(2 * 5.5 / 6 - 1)
    # Thresholds "score <= t": t=1 -> bads 1/2, goods 0/3; t=3 -> 2/2 vs 1/3; t=4 -> 2/2 vs 2/3.
    assert r.ks == pytest.approx(1 - 1 / 3)
    assert r.ks_score == 3.0
    assert (r.count, r.bad, r.good, r.distinct_scores) == (5, 2, 3, 4)
    assert r.bad_rate == pytest.approx(2 / 5)
    assert r.auc_ci is None and r.ks_ci is None and r.gini_ci is None


@pytest.mark.parametrize(("n", "seed", "decimals"), [(500, 1, 0), (5000, 2, 1), (20000, 3, 2)])
def test_point_estimates_equal_sklearn_and_scipy_on_raw_rows(
    n: int, seed: int, decimals: int
) -> None:
    score, bad = _data(n, seed, decimals)
    r = discrimination(score, bad, resamples=0)
    assert r.auc == pytest.approx(roc_auc_score(bad, -score), abs=1e-12)
    assert r.gini == pytest.approx(2 * roc_auc_score(bad, -score) - 1, abs=1e-12)
    assert r.ks == pytest.approx(ks_2samp(score[bad], score[~bad]).statistic, abs=1e-12)
    fpr, tpr, _ = roc_curve(bad, -score)
    assert r.ks == pytest.approx(np.max(tpr - fpr), abs=1e-12)


def test_curve_points_lie_on_sklearns_roc_and_show_the_ks() -> None:
    score, bad = _data(20000, 4, 2)
    r = discrimination(score, bad, resamples=0, max_curve_points=50)
    c = r.curve
    assert len(c.fpr) <= 50
    assert (c.fpr[0], c.tpr[0], c.population_share[0], c.score[0]) == (0.0, 0.0, 0.0, None)
    assert (c.fpr[-1], c.tpr[-1], c.population_share[-1]) == (1.0, 1.0, 1.0)
    assert all(np.diff(c.fpr) >= 0) and all(np.diff(c.tpr) >= 0)
    assert all(np.diff(c.population_share) > 0)
    fpr, tpr, thr = roc_curve(bad, -score, drop_intermediate=False)
    on_curve = {(round(f, 12), round(t, 12)) for f, t in zip(fpr, tpr, strict=True)}
    assert all((round(f, 12), round(t, 12)) in on_curve for f, t in zip(c.fpr, c.tpr, strict=True))
    # Every score point is one of sklearn's thresholds (negated back to a score).
    assert {s for s in c.score[1:]} <= {float(-t) for t in thr[1:]}
    # The KS maximum is one of the drawn points.
    gaps = np.array(c.tpr) - np.array(c.fpr)
    assert gaps.max() == pytest.approx(r.ks)
    assert c.score[int(np.argmax(gaps))] == r.ks_score


def test_counts_statistic_equals_sklearn_with_weights() -> None:
    rng = np.random.default_rng(5)
    values = np.arange(30, dtype=np.float64)
    goods = rng.integers(0, 20, 30)
    bads = rng.integers(0, 5, 30)
    auc, ks = auc_ks_from_counts(goods, bads)
    y = np.r_[np.ones(30), np.zeros(30)]
    w = np.r_[bads, goods]
    s = np.r_[-values, -values]
    assert auc[0] == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s, sample_weight=w)
    assert ks[0] == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-12)


def test_resampling_rows_gives_exactly_the_count_statistic() -> None:
    # The heart of the fast bootstrap: for any resample of rows, AUC and KS depend only on how
    # many goods and bads fall on each distinct score, so the count form is exact.
    score, bad = _data(400, 6, 0)
    values, _, _ = score_counts(score, bad)
    rng = np.random.default_rng(7)
    goods_at = np.flatnonzero(~bad)
    bads_at = np.flatnonzero(bad)
    for _ in range(20):
        rows = np.r_[rng.choice(goods_at, goods_at.size), rng.choice(bads_at, bads_at.size)]
        s, b = score[rows], bad[rows]
        where = np.searchsorted(values, s)
        g_counts = np.bincount(where[~b], minlength=values.size)
        b_counts = np.bincount(where[b], minlength=values.size)
        auc, ks = auc_ks_from_counts(g_counts, b_counts)
        assert auc[0] == pytest.approx(roc_auc_score(b, -s), abs=1e-12)
        assert ks[0] == pytest.approx(ks_2samp(s[b], s[~b]).statistic, abs=1e-12)


def test_bootstrap_matches_a_naive_row_bootstrap_in_distribution() -> None:
    score, bad = _data(300, 8, 0)
    fast = discrimination(score, bad, resamples=2000, seed=11)
    rng = np.random.default_rng(12)
    goods_at, bads_at = np.flatnonzero(~bad), np.flatnonzero(bad)
    naive = []
    for _ in range(2000):
        rows = np.r_[rng.choice(goods_at, goods_at.size), rng.choice(bads_at, bads_at.size)]
        naive.append(roc_auc_score(bad[rows], -score[rows]))
    low, high = np.quantile(naive, [0.025, 0.975])
    assert fast.auc_ci is not None
    # Two independent Monte Carlo runs of the same bootstrap: the bounds agree to within the
    # noise of 2,000 replicates (their spread is ~0.1; 0.01 is several standard errors).
    assert fast.auc_ci.low == pytest.approx(low, abs=0.01)
    assert fast.auc_ci.high == pytest.approx(high, abs=0.01)


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    score, bad = _data(5000, 9, 1)
    a = discrimination(score, bad, resamples=300, seed=42)
    b = discrimination(score, bad, resamples=300, seed=42)
    c = discrimination(score, bad, resamples=300, seed=43)
    assert a == b
    assert a.auc_ci != c.auc_ci
    for est, ci in ((a.auc, a.auc_ci), (a.ks, a.ks_ci), (a.gini, a.gini_ci)):
        assert ci is not None
        assert ci.low < est < ci.high
    assert a.gini_ci is not None and a.auc_ci is not None
    assert a.gini_ci.low == pytest.approx(2 * a.auc_ci.low - 1)
    # A wider confidence gives a wider interval from the same replicates.
    wide = discrimination(score, bad, resamples=300, seed=42, confidence=0.99)
    assert wide.auc_ci is not None
    assert wide.auc_ci.low <= a.auc_ci.low and wide.auc_ci.high >= a.auc_ci.high


def test_bootstrap_in_chunks_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("services.scoring.governance.discrimination")
    score, bad = _data(2000, 10, 0)
    whole = discrimination(score, bad, resamples=50, seed=3)
    # Forcing one resample per chunk must not change the draws or their use.
    monkeypatch.setattr(module, "_CHUNK_ELEMENTS", 1)
    chunked = discrimination(score, bad, resamples=50, seed=3)
    assert chunked.auc_ci == whole.auc_ci and chunked.ks_ci == whole.ks_ci


@settings(max_examples=60, deadline=None)
@given(
    goods=st.lists(st.integers(0, 50), min_size=1, max_size=30),
    bads=st.lists(st.integers(0, 50), min_size=1, max_size=30),
)
def test_perfect_and_reversed_rankers(goods: list[int], bads: list[int]) -> None:
    # Every bad scores below every good: a perfect ranker.
    score = np.r_[np.array(bads) - 100.0, np.array(goods, dtype=np.float64)]
    bad = np.r_[np.ones(len(bads), bool), np.zeros(len(goods), bool)]
    perfect = discrimination(score, bad, resamples=0)
    # (sklearn's trapezoids may leave a last-bit rounding: 0.9999999999999998)
    assert (perfect.auc, perfect.gini, perfect.ks) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    reversed_ = discrimination(-score, bad, resamples=0)
    assert (reversed_.auc, reversed_.gini, reversed_.ks) == pytest.approx(
        (0.0, -1.0, 1.0), abs=1e-12
    )


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.integers(0, 6), min_size=2, max_size=40),
    flags=st.lists(st.booleans(), min_size=2, max_size=40),
)
def test_symmetry_and_sklearn_on_arbitrary_ties(scores: list[int], flags: list[bool]) -> None:
    n = min(len(scores), len(flags))
    score, bad = np.array(scores[:n], dtype=np.float64), np.array(flags[:n])
    if bad.all() or not bad.any():
        with pytest.raises(GovernanceInputError):
            discrimination(score, bad, resamples=0)
        return
    r = discrimination(score, bad, resamples=0)
    flipped = discrimination(-score, bad, resamples=0)
    assert r.auc + flipped.auc == pytest.approx(1.0)
    assert r.ks == pytest.approx(flipped.ks)
    assert r.auc == pytest.approx(roc_auc_score(bad, -score))
    assert 0.0 <= r.ks <= 1.0


def test_one_score_for_everyone_separates_nothing() -> None:
    r = discrimination([50.0] * 6, [1, 0, 0, 1, 0, 0], resamples=20)
    assert (r.auc, r.ks, r.gini) == (0.5, 0.0, 0.0)
    assert r.auc_ci is not None and r.auc_ci.low == r.auc_ci.high == 0.5


@pytest.mark.parametrize(
    ("score", "bad", "kwargs", "message"),
    [
        ([1.0, 2.0], [0, 0], {}, "at least one defaulted"),
        ([1.0, 2.0], [1, 1], {}, "at least one defaulted"),
        ([1.0, np.nan], [0, 1], {}, "missing"),
        ([1.0, np.inf], [0, 1], {}, "infinite"),
        ([1.0, 2.0], [0, 2], {}, "only 0 and 1"),
        ([1.0, 2.0], [0.0, np.nan], {}, "only 0 and 1"),
        ([1.0, 2.0, 3.0], [0, 1], {}, "one entry per enterprise"),
        ([[1.0, 2.0]], [0, 1], {}, "one-dimensional"),
        (["a", "b"], [0, 1], {}, "numeric"),
        ([1.0, 2.0], [0, 1], {"resamples": 10**6}, "resamples"),
        ([1.0, 2.0], [0, 1], {"confidence": 1.0}, "confidence"),
        ([1.0, 2.0], [0, 1], {"max_curve_points": 2}, "max_curve_points"),
        ([1.0, 2.0], [0, 1], {"max_curve_points": 10**6}, "max_curve_points"),
        (np.arange(10_001.0), np.arange(10_001) % 2, {"resamples": 10_000}, "too much work"),
    ],
)
def test_bad_input_is_refused_with_a_reason(
    score: object, bad: object, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(GovernanceInputError, match=message):
        discrimination(score, bad, **kwargs)  # type: ignore[arg-type]


def test_result_is_json() -> None:
    score, bad = _data(1000, 13, 1)
    d = discrimination(score, bad, resamples=20).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert set(back) >= {"auc", "gini", "ks", "auc_ci", "ks_ci", "gini_ci", "curve"}
    assert back["curve"]["score"][0] is None
    assert set(back["auc_ci"]) == {"low", "high"}


def test_bootstrap_replicates_are_the_documented_draws() -> None:
    """Rebuild every replicate from the documented scheme (two streams spawned from the seed,
    goods' and bads' multinomials over the scores that hold one, the float AUC/KS of the
    counts) one after the other: the threaded, integer computation must give the same values."""
    module = importlib.import_module("services.scoring.governance.discrimination")
    score, bad = _data(3000, 12, 5)
    _, goods, bads = score_counts(score, bad)
    aucs, kss = module.bootstrap_auc_ks(goods, bads, 40, 9)
    rng_g, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(9).spawn(2))
    g = np.zeros((40, goods.size))
    b = np.zeros((40, goods.size))
    g[:, goods > 0] = rng_g.multinomial(goods.sum(), goods[goods > 0] / goods.sum(), size=40)
    b[:, bads > 0] = rng_b.multinomial(bads.sum(), bads[bads > 0] / bads.sum(), size=40)
    cum_g, cum_b = g.cumsum(axis=1), b.cumsum(axis=1)
    n_g, n_b = cum_g[:, -1:], cum_b[:, -1:]
    expected_auc = (b * (n_g - cum_g + 0.5 * g)).sum(axis=1) / (n_b[:, 0] * n_g[:, 0])
    expected_ks = np.abs(cum_b / n_b - cum_g / n_g).max(axis=1)
    np.testing.assert_allclose(aucs, expected_auc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kss, expected_ks, rtol=0, atol=1e-12)
