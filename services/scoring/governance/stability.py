"""Stability (稳定性): did the population move between two periods?

PSI = sum over bins of (current share - reference share) * ln(current share / reference share).
Each term is >= 0 (both factors have the same sign), so PSI >= 0 and is 0 for identical
distributions. The same function gives the CSI (characteristic stability index) of one
indicator or dimension: the PSI of that characteristic's values, as toad's `PSI` and
optbinning's per-variable table compute it (not the older points-weighted CSI of scorecards).

Flags, as optbinning and the industry use them: stable below 0.1, watch from 0.1, act from 0.25
(configurable).

Bins come from the reference period, so a later period is measured against a fixed ruler:
`bins=10` cuts at the reference's deciles, taken as reference values (the smallest value with
at least k/10 of the reference at or below it), duplicates merged and a cut at the maximum
dropped, so no reference bin is empty and a column with many ties (60% zeros, a yes/no flag)
gets fewer, wider bins; a sequence gives fixed cut points (score bands). Bins are
right-closed, (a, b], the first open below and the last open above, so every finite value has
a bin. Missing values (NaN: an indicator a firm did
not report) get their own bin whenever either period has one: a jump in missing data is a
shift a reviewer must see.

Empty bins: a share of 0 would make ln undefined, so each share is floored at `epsilon`
(default 1e-4, i.e. 0.01% of the population) before the sum. With that floor a bin that holds
10% of the reference and nobody now contributes (0.1 - 0.0001) * ln(1000) ~ 0.69: a real
disappearance is flagged "act", while a bin empty in both periods contributes exactly 0.

Written with numpy rather than a library: no maintained package outside toad/optbinning (both
pull pandas and more, and differ in binning and flooring) offers PSI, and the formula is one
line once the bins are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from services.scoring.governance._base import (
    FloatArray,
    GovernanceInputError,
    Result,
    as_float_vector,
)

Flag = Literal["stable", "watch", "act"]

DEFAULT_BINS = 10
DEFAULT_EPSILON = 1e-4
WATCH_AT = 0.1
ACT_AT = 0.25
MAX_BINS = 1000
# Up to this many cut points, bins are counted by comparisons rather than a binary search.
_COMPARE_UP_TO = 32


@dataclass(frozen=True, slots=True)
class PsiBin(Result):
    # (lower, upper]; None = unbounded. The missing-value bin has missing = True and no bounds.
    lower: float | None
    upper: float | None
    missing: bool
    reference_count: int
    current_count: int
    reference_share: float
    current_share: float
    contribution: float


@dataclass(frozen=True, slots=True)
class StabilityIndex(Result):
    name: str
    psi: float
    flag: Flag
    reference_count: int
    current_count: int
    bins: tuple[PsiBin, ...]
    epsilon: float
    watch_at: float
    act_at: float


def psi_flag(value: float, *, watch_at: float = WATCH_AT, act_at: float = ACT_AT) -> Flag:
    """stable < watch_at <= watch < act_at <= act."""
    if value >= act_at:
        return "act"
    if value >= watch_at:
        return "watch"
    return "stable"


def reference_edges(reference: FloatArray, bins: int | Sequence[float]) -> FloatArray:
    """Interior cut points: the reference's quantiles (merged where tied) or the given ones."""
    if isinstance(bins, int):
        _check_bin_count(bins)
        ordered = np.sort(reference)
        return _quantile_cuts(ordered[: _present(ordered)], bins)
    edges = as_float_vector(np.asarray(bins, dtype=np.float64), "bins")
    if edges.size > MAX_BINS:
        raise GovernanceInputError(f"at most {MAX_BINS} cut points")
    if edges.size and not (np.diff(edges) > 0).all():
        raise GovernanceInputError("cut points must be strictly increasing")
    return edges


def _check_bin_count(bins: int) -> None:
    if not 1 <= bins <= MAX_BINS:
        raise GovernanceInputError(f"bins must be between 1 and {MAX_BINS}")


def _present(ordered: FloatArray) -> int:
    """How many values of a sorted array are not NaN (numpy sorts NaN last)."""
    return int(ordered.size - np.count_nonzero(np.isnan(ordered)))


def _quantile_cuts(present: FloatArray, bins: int) -> FloatArray:
    """The cut points of `bins` quantile bins of sorted, NaN-free values.

    Cuts are reference values (the inverted CDF, no interpolation between two tied groups):
    the k-th is the value at sorted position ceil(n·k/bins) - 1, which is exactly
    `np.quantile(..., method="inverted_cdf")` (a test checks it for every n up to thousands)
    without its partition, which costs twice a sort of the whole column on this machine
    (profiled: the quantiles were a sixth of a 1M validation). A cut at the maximum would
    leave the top bin empty: with right-closed bins every reference bin then holds at least its
    own cut value.
    """
    n = present.size
    if n == 0 or bins == 1:
        return np.empty(0)
    probs = np.arange(1, bins) / bins
    at = np.clip(np.ceil(n * probs - 1), 0, n - 1).astype(np.intp)
    qs = np.unique(present[at])
    cuts: FloatArray = qs[qs < present[-1]]
    return cuts


def _counts(values: FloatArray, edges: FloatArray) -> tuple[npt.NDArray[np.int64], int]:
    """Firms per bin (right-closed) and the number of missing values."""
    n_missing = int(np.count_nonzero(np.isnan(values)))
    if edges.size <= _COMPARE_UP_TO:
        # One vectorised comparison per cut point beats a binary search per value by ~10x for
        # the usual ten bins (NaN compares false, so it falls in no bin).
        at_most = [np.count_nonzero(values <= e) for e in edges.tolist()]
        cum = np.array([0, *at_most, values.size - n_missing], dtype=np.int64)
        return np.diff(cum), n_missing
    present = values[~np.isnan(values)] if n_missing else values
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=edges.size + 1)
    return counts.astype(np.int64), n_missing


def _sorted_counts(present: FloatArray, edges: FloatArray) -> npt.NDArray[np.int64]:
    """Firms per bin (right-closed) of sorted, NaN-free values: a binary search per cut."""
    at_most = np.searchsorted(present, edges, side="right")
    return np.diff(np.concatenate([[0], at_most, [present.size]])).astype(np.int64)


def _validate_flags(watch_at: float, act_at: float, epsilon: float) -> None:
    if not 0.0 < watch_at < act_at:
        raise GovernanceInputError("need 0 < watch_at < act_at")
    if not 0.0 < epsilon < 0.01:
        raise GovernanceInputError("epsilon must lie in (0, 0.01)")


def psi(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    name: str = "total",
    bins: int | Sequence[float] = DEFAULT_BINS,
    epsilon: float = DEFAULT_EPSILON,
    watch_at: float = WATCH_AT,
    act_at: float = ACT_AT,
) -> StabilityIndex:
    """PSI of `current` against `reference` (one value per firm each; NaN = missing)."""
    _validate_flags(watch_at, act_at, epsilon)
    ref = as_float_vector(reference, f"{name} (reference)", allow_nan=True)
    cur = as_float_vector(current, f"{name} (current)", allow_nan=True)
    if ref.size == 0 or cur.size == 0:
        raise GovernanceInputError(f"{name}: both periods need at least one firm")
    if isinstance(bins, int):
        # The quantile cuts need the reference sorted; its counts then come from the same
        # sorted column by binary search instead of another pass per cut.
        _check_bin_count(bins)
        ordered = np.sort(ref)
        present = ordered[: _present(ordered)]
        edges = _quantile_cuts(present, bins)
        ref_counts, ref_missing = _sorted_counts(present, edges), ref.size - present.size
    else:
        edges = reference_edges(ref, bins)
        ref_counts, ref_missing = _counts(ref, edges)
    cur_counts, cur_missing = _counts(cur, edges)
    lowers: list[float | None] = [None, *edges.tolist()]
    uppers: list[float | None] = [*edges.tolist(), None]
    missing = [False] * len(lowers)
    if ref_missing or cur_missing:
        ref_counts = np.append(ref_counts, ref_missing)
        cur_counts = np.append(cur_counts, cur_missing)
        lowers.append(None)
        uppers.append(None)
        missing.append(True)
    ref_share = ref_counts / ref.size
    cur_share = cur_counts / cur.size
    e = np.maximum(ref_share, epsilon)
    a = np.maximum(cur_share, epsilon)
    contrib = (a - e) * np.log(a / e)
    value = float(contrib.sum())
    return StabilityIndex(
        name=name,
        psi=value,
        flag=psi_flag(value, watch_at=watch_at, act_at=act_at),
        reference_count=int(ref.size),
        current_count=int(cur.size),
        bins=tuple(
            PsiBin(
                lower=lo,
                upper=hi,
                missing=m,
                reference_count=int(rc),
                current_count=int(cc),
                reference_share=float(rs),
                current_share=float(cs),
                contribution=float(c),
            )
            for lo, hi, m, rc, cc, rs, cs, c in zip(
                lowers,
                uppers,
                missing,
                ref_counts.tolist(),
                cur_counts.tolist(),
                ref_share.tolist(),
                cur_share.tolist(),
                contrib.tolist(),
                strict=True,
            )
        ),
        epsilon=epsilon,
        watch_at=watch_at,
        act_at=act_at,
    )


def characteristic_stability(
    reference: Mapping[str, npt.ArrayLike],
    current: Mapping[str, npt.ArrayLike],
    *,
    bins: int | Sequence[float] = DEFAULT_BINS,
    epsilon: float = DEFAULT_EPSILON,
    watch_at: float = WATCH_AT,
    act_at: float = ACT_AT,
) -> tuple[StabilityIndex, ...]:
    """CSI of every characteristic present in both periods (indicators, dimension scores), in
    the reference's order. A characteristic in only one period is an error, not a silent skip:
    a model whose inputs changed is compared with a different ruler."""
    only = set(reference) ^ set(current)
    if only:
        raise GovernanceInputError(
            f"characteristics must be the same in both periods; differ in {sorted(only)}"
        )
    return tuple(
        psi(
            reference[k],
            current[k],
            name=k,
            bins=bins,
            epsilon=epsilon,
            watch_at=watch_at,
            act_at=act_at,
        )
        for k in reference
    )
