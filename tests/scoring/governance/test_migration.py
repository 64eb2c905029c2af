"""Tier migration matrix, enterprise matching and concentration (HHI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix

from services.scoring.governance import (
    GovernanceInputError,
    concentration,
    match_enterprises,
    migration_matrix,
)


def test_hand_computed_matrix() -> None:
    before = [1, 1, 2, 3, 3, 5, 0, 4]
    after = [1, 2, 2, 1, 3, 5, 3, 0]
    m = migration_matrix(before, after)
    # Rated in both: the first six pairs; (0, 3) and (4, 0) are left out.
    assert m.unrated == 2 and m.count == 6
    assert m.counts == (
        (1, 1, 0, 0, 0),
        (0, 1, 0, 0, 0),
        (1, 0, 1, 0, 0),
        (0, 0, 0, 0, 0),
        (0, 0, 0, 0, 1),
    )
    assert m.row_shares[0] == (0.5, 0.5, 0.0, 0.0, 0.0)
    assert m.row_shares[3] == (None,) * 5
    # Stayed: 1->1, 2->2, 3->3, 5->5; up: 1->2; down: 3->1 (two tiers: "far").
    assert (m.stayed, m.up, m.down) == (4, 1, 1)
    assert (m.stayed_share, m.up_share, m.down_share) == (4 / 6, 1 / 6, 1 / 6)
    assert m.moved_far_share == 1 / 6
    assert json.dumps(m.to_dict(), allow_nan=False)


def test_matrix_equals_sklearn_confusion_matrix() -> None:
    rng = np.random.default_rng(1)
    before = rng.integers(1, 6, 3000)
    after = np.clip(before + rng.integers(-1, 2, 3000), 1, 5)
    m = migration_matrix(before, after)
    expected = confusion_matrix(before, after, labels=[1, 2, 3, 4, 5])
    assert np.array_equal(np.array(m.counts), expected)


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=80))
def test_matrix_sums(pairs: list[tuple[int, int]]) -> None:
    before = np.array([p[0] for p in pairs], dtype=np.int64)
    after = np.array([p[1] for p in pairs], dtype=np.int64)
    m = migration_matrix(before, after)
    counts = np.array(m.counts).reshape(5, 5)
    both = (before > 0) & (after > 0)
    assert counts.sum() == m.count == both.sum()
    assert m.unrated == len(pairs) - m.count
    assert m.stayed + m.up + m.down == m.count
    assert counts.sum(axis=1).tolist() == [int(np.sum(before[both] == t)) for t in range(1, 6)]
    assert counts.sum(axis=0).tolist() == [int(np.sum(after[both] == t)) for t in range(1, 6)]
    for row in m.row_shares:
        if row[0] is not None:
            assert sum(v for v in row if v is not None) == pytest.approx(1.0)


def test_match_enterprises_pairs_the_same_firm() -> None:
    before = np.array(["C", "A", "B", "X"])
    after = np.array(["B", "Y", "A", "C"])
    ia, ib = match_enterprises(before, after)
    assert before[ia].tolist() == after[ib].tolist() == ["B", "A", "C"]
    assert ib.tolist() == [0, 2, 3]
    ia, ib = match_enterprises(np.array([5, 3, 9]), np.array([1, 2]))
    assert ia.size == ib.size == 0
    ia, ib = match_enterprises(np.array([], dtype=np.int64), np.array([1, 2]))
    assert ia.size == ib.size == 0
    with pytest.raises(GovernanceInputError, match="before period are not unique"):
        match_enterprises(["A", "A"], ["A"])
    with pytest.raises(GovernanceInputError, match="after period are not unique"):
        match_enterprises(["A"], ["B", "B"])


def test_concentration_hand_cases() -> None:
    half = concentration([1, 1, 2, 2, 0])
    assert half.shares == (0.5, 0.5, 0.0, 0.0, 0.0)
    # HHI = 0.5^2 + 0.5^2; normalised (0.5 - 1/5) / (1 - 1/5).
    assert half.hhi == pytest.approx(0.5)
    assert half.hhi_normalised == pytest.approx(0.3 / 0.8)
    assert half.max_share == 0.5 and half.unrated == 1
    equal = concentration([1, 2, 3, 4, 5] * 3)
    assert equal.hhi == pytest.approx(0.2) and equal.hhi_normalised == pytest.approx(0.0)
    one = concentration([3] * 7)
    assert one.hhi == 1.0 and one.hhi_normalised == 1.0
    empty = concentration([0, 0])
    assert empty.hhi is None and empty.max_share is None and empty.unrated == 2


def test_bad_input() -> None:
    with pytest.raises(GovernanceInputError, match="one entry per enterprise"):
        migration_matrix([1, 2], [1])
    with pytest.raises(GovernanceInputError, match=r"0\.\.5"):
        migration_matrix([1, 9], [1, 2])
    with pytest.raises(GovernanceInputError, match="n_tiers"):
        concentration([1], n_tiers=1)
