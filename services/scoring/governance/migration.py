"""Tier migration (迁移矩阵) between two periods, and concentration (集中度) per tier.

A migration matrix counts, for the firms rated in both periods, how many went from tier i to
tier j. A stable model keeps most firms on the diagonal; a matrix with heavy off-diagonal mass,
or a drift one way, says the ranking is noisy or the population moved. Concentration: the share
of firms per tier and its Herfindahl-Hirschman index (HHI = sum of squared shares; 1/K when the
K tiers are equal, 1 when everyone sits in one tier), as the ECB's instructions for model
validation ask of rating grades.

Plain numpy: each is one bincount, and no statistics library has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.scoring.governance._base import (
    GovernanceInputError,
    IntArray,
    Result,
    as_tier_vector,
    same_length,
)
from services.scoring.governance.tiers import DEFAULT_TIERS


@dataclass(frozen=True, slots=True)
class Migration(Result):
    # tiers[i] labels row i (period before) and column i (period after).
    tiers: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]
    # counts / row total; None for a tier nobody was in before.
    row_shares: tuple[tuple[float | None, ...], ...]
    count: int
    stayed: int
    up: int
    down: int
    # Shares of `count`; moved_far = moved by two tiers or more (up or down).
    stayed_share: float | None
    up_share: float | None
    down_share: float | None
    moved_far_share: float | None
    # Pairs left out because the firm was not rated (tier 0) in one period or both.
    unrated: int


@dataclass(frozen=True, slots=True)
class Concentration(Result):
    tiers: tuple[int, ...]
    counts: tuple[int, ...]
    shares: tuple[float, ...]
    hhi: float | None
    # (HHI - 1/K) / (1 - 1/K): 0 for equal tiers, 1 for one tier holding everyone.
    hhi_normalised: float | None
    max_share: float | None
    unrated: int


def match_enterprises(
    before_ids: npt.ArrayLike, after_ids: npt.ArrayLike
) -> tuple[IntArray, IntArray]:
    """Positions (in each period's arrays) of the firms present in both, paired up, in the
    order of the after period.

    Ids (USCC strings or integer keys) must be unique within a period: a duplicate would pair
    one firm with two ratings.
    """
    a = np.asarray(before_ids)
    b = np.asarray(after_ids)
    if a.ndim != 1 or b.ndim != 1:
        raise GovernanceInputError("enterprise ids must be one-dimensional")
    # One sort of each period and a binary search: np.intersect1d would sort both again, and
    # np.unique (for the duplicate check) is slower still on a million keys.
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    for name, ids in (("before", sorted_a), ("after", np.sort(b))):
        if ids.size > 1 and bool((ids[1:] == ids[:-1]).any()):
            raise GovernanceInputError(f"enterprise ids of the {name} period are not unique")
    if a.size == 0 or b.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    pos = np.searchsorted(sorted_a, b).clip(0, a.size - 1)
    hit = sorted_a[pos] == b
    return order[pos[hit]].astype(np.int64), np.flatnonzero(hit).astype(np.int64)


def migration_matrix(
    tier_before: npt.ArrayLike, tier_after: npt.ArrayLike, *, n_tiers: int = DEFAULT_TIERS
) -> Migration:
    """Migration between two periods; entry k of both arrays is the same firm (see
    `match_enterprises`). "Up" is towards a better (higher) tier."""
    a = as_tier_vector(tier_before, "tier_before", n_tiers)
    b = as_tier_vector(tier_after, "tier_after", n_tiers)
    same_length("tier_before", a, "tier_after", b)
    rated = (a > 0) & (b > 0)
    k = n_tiers
    cells = (a[rated] - 1) * k + (b[rated] - 1)
    m = np.bincount(cells, minlength=k * k).reshape(k, k)
    n = int(m.sum())
    row_tot = m.sum(axis=1)
    i, j = np.indices((k, k))
    stayed = int(np.trace(m))
    up = int(m[j > i].sum())
    down = int(m[j < i].sum())
    far = int(m[np.abs(i - j) >= 2].sum())

    def share(x: int) -> float | None:
        return x / n if n else None

    return Migration(
        tiers=tuple(range(1, k + 1)),
        counts=tuple(tuple(int(v) for v in row) for row in m.tolist()),
        row_shares=tuple(
            tuple((int(v) / int(tot)) if tot else None for v in row)
            for row, tot in zip(m.tolist(), row_tot.tolist(), strict=True)
        ),
        count=n,
        stayed=stayed,
        up=up,
        down=down,
        stayed_share=share(stayed),
        up_share=share(up),
        down_share=share(down),
        moved_far_share=share(far),
        unrated=int((~rated).sum()),
    )


def concentration(tier: npt.ArrayLike, *, n_tiers: int = DEFAULT_TIERS) -> Concentration:
    """Share of rated firms per tier and the HHI of those shares."""
    t = as_tier_vector(tier, "tier", n_tiers)
    counts = np.bincount(t, minlength=n_tiers + 1)
    rated = counts[1:]
    n = int(rated.sum())
    shares = rated / n if n else np.zeros(n_tiers)
    hhi = float((shares**2).sum()) if n else None
    floor = 1.0 / n_tiers
    return Concentration(
        tiers=tuple(range(1, n_tiers + 1)),
        counts=tuple(int(c) for c in rated),
        shares=tuple(float(s) for s in shares),
        hhi=hhi,
        hhi_normalised=(hhi - floor) / (1.0 - floor) if hhi is not None else None,
        max_share=float(shares.max()) if n else None,
        unrated=int(counts[0]),
    )
