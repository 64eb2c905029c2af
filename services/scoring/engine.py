"""Vectorised batch scoring (评分引擎): percentile ranks within growth-stage cohorts.

The rules (domain.md section 1, PROPOSAL), made precise:

* Cohorts. A firm's stage comes from last year's revenue (`ModelSpec.stage_bands`); firms
  without revenue or on the negative list are not scored. A stage with fewer than
  `min_cohort` scored firms is merged into a neighbouring stage, repeatedly (see
  `merge_cohorts`). A merged firm is scored wholly as a member of its cohort, with the cohort's
  dimension weights, so two firms with equal values in one cohort always get equal points.
* Indicator points = max points x percentile. For a positive value v the percentile is the
  share of the cohort whose value is <= v once every non-missing value of that column has been
  clipped to the column's [cap_low, cap_high] quantiles; missing values count as below every
  value, so the denominator is the whole cohort and the cohort's best always gets 1.0.
* Zero, negative and missing values earn 0 points. Each value has a status (`STATUSES`):
  `scored` (positive), `zero`, `negative` (for growth rates and ROE: the firm shrank or lost
  money; the scheme rewards improvement), `no` (a yes/no indicator answered no) or `missing`
  (no data). Only `missing` means "no data"; every non-scoring value still counts in the
  denominator, so every firm with a positive value is ranked above it.
* Flag indicators (yes/no) score all or nothing: percentile 1.0 for yes, 0.0 otherwise.
* One tie rule for every percentile of a computed score (dimension scores and totals): values
  are compared after rounding to 1e-9 (`tie_key`), so that sums of the same points in a
  different order cannot break a tie. Indicator values are inputs, compared as stored: equal
  decimal inputs are equal doubles.
* Rank 1 is best, ties share the best rank (1, 2, 2, 4). Tiers follow from rank: tier 5 while
  fewer than 10% of the cohort are strictly ahead, and so on down `ModelSpec.tier_bands`, so
  tied firms always share a tier.
* Improvement targets (`improvements`, `target_for`): per indicator and percentile boundary
  of the model, the smallest value (a whole number for counts and flags) that reaches the
  boundary with the rest of the cohort, caps included, held fixed. docs/scoring.md has every
  formula with a worked example.

Rows that are not scored carry NaN in every score array, 0 in rank, tier and cohort_size and
-1 in cohort.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from contracts.catalogue import (
    DIMENSIONS,
    INDICATOR_CODES,
    INDICATORS,
    STAGES,
)
from services.scoring.specs.spec import DEFAULT_MODEL, ModelSpec, stage_indices

# Part of every fingerprint: bump it whenever a rule here changes, so an old fingerprint can
# never be mistaken for a reproduction by different code.
# engine-2: dimension percentiles compare scores rounded to 1e-9 (the totals' tie rule), and
# cohort statistics carry exact improvement targets per indicator.
ENGINE_VERSION = "engine-2"

MISSING_REVENUE = "missing_revenue"
STAT_QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)
_QUANTILE_KEYS: tuple[str, ...] = ("p10", "p25", "p50", "p75", "p90")
_TIE_DECIMALS = 9
_PARALLEL_FROM = 50_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

# The status of a value, stored per [row, indicator] as an index into this tuple.
STATUSES: tuple[str, ...] = ("scored", "zero", "negative", "no", "missing")
SCORED, ZERO, NEGATIVE, NO, MISSING = range(len(STATUSES))

_N = len(INDICATORS)
_INTEGER_KINDS = frozenset({"count", "flag"})
_FLAG_COLUMNS: frozenset[int] = frozenset(j for j, i in enumerate(INDICATORS) if i.kind == "flag")
_INTEGER_COLUMNS: frozenset[int] = frozenset(
    j for j, i in enumerate(INDICATORS) if i.kind in _INTEGER_KINDS
)
_DIMENSION_COLUMNS: tuple[tuple[int, ...], ...] = tuple(
    tuple(j for j, i in enumerate(INDICATORS) if i.dimension == d) for d in DIMENSIONS
)


@dataclass(frozen=True)
class EngineInput:
    """One evaluation's input: revenue (万元) and the 24 indicators, NaN where missing.

    `excluded_reason` holds, per row, why the firm must not be scored (the negative list), or
    None / "" when it may be.
    """

    revenue: FloatArray
    values: FloatArray
    excluded_reason: Sequence[str | None] | ObjectArray

    def __post_init__(self) -> None:
        revenue = np.ascontiguousarray(self.revenue, dtype=np.float64)
        values = np.ascontiguousarray(self.values, dtype=np.float64)
        if revenue.ndim != 1:
            raise ValueError("revenue must be one-dimensional")
        n = revenue.shape[0]
        if values.shape != (n, _N):
            raise ValueError(f"values must have shape ({n}, {_N}), got {values.shape}")
        reasons = np.empty(n, dtype=object)
        reasons[:] = self.excluded_reason
        if np.isinf(revenue).any() or np.isinf(values).any():
            raise ValueError("revenue and values must be finite or NaN (missing)")
        object.__setattr__(self, "revenue", revenue)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "excluded_reason", reasons)

    @property
    def n(self) -> int:
        return int(self.revenue.shape[0])

    def excluded_mask(self) -> BoolArray:
        reasons = np.asarray(self.excluded_reason, dtype=object)
        return np.asarray((reasons != None) & (reasons != ""), dtype=np.bool_)  # noqa: E711


@dataclass(frozen=True)
class EngineResult:
    """Per-row score arrays (row order = input order) plus run-level merges and cohort stats.

    The [n, 24] and [n, 4] arrays are transposed views of column-major buffers (Fortran
    order), which saves copying 200 MB per array at a million rows; index them freely, and
    use np.ascontiguousarray before handing them to code that insists on C order.
    """

    model_version: str
    values: FloatArray  # the input values, kept for explanations (not a copy)
    max_points: FloatArray  # [stage, indicator] maxima of the model used
    stage: npt.NDArray[np.int8]
    cohort: npt.NDArray[np.int8]
    scored: BoolArray
    exclusion: ObjectArray
    percentiles: FloatArray
    points: FloatArray
    status: npt.NDArray[np.int8]  # index into STATUSES per [row, indicator]
    dimension_scores: FloatArray
    dimension_percentiles: FloatArray
    total: FloatArray
    rank: IntArray
    cohort_size: IntArray
    percentile: FloatArray
    tier: npt.NDArray[np.int8]
    merges: list[dict[str, Any]] = field(default_factory=list)
    cohort_stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def missing(self) -> BoolArray:
        """No data: NaN values only (a zero, a decline or a "no" is data)."""
        return np.asarray(self.status == MISSING)

    def row(self, i: int) -> ScoredRow:
        """One row as plain Python values, the input of `reasons` and `improvements`."""
        scored = bool(self.scored[i])
        stage = int(self.stage[i])
        cohort = int(self.cohort[i])
        maxima = tuple(float(v) for v in self.max_points[cohort]) if scored else (0.0,) * _N
        return ScoredRow(
            index=i,
            stage=STAGES[stage].value if stage >= 0 else None,
            cohort=STAGES[cohort].value if cohort >= 0 else None,
            scored=scored,
            exclusion=None if self.exclusion[i] is None else str(self.exclusion[i]),
            values=tuple(_opt(v) for v in self.values[i]),
            percentiles=tuple(_opt(v) for v in self.percentiles[i]),
            points=tuple(_opt(v) for v in self.points[i]),
            max_points=maxima,
            statuses=tuple(STATUSES[int(v)] for v in self.status[i]),
            dimension_scores={
                d.value: _opt(v) for d, v in zip(DIMENSIONS, self.dimension_scores[i], strict=True)
            },
            dimension_percentiles={
                d.value: _opt(v)
                for d, v in zip(DIMENSIONS, self.dimension_percentiles[i], strict=True)
            },
            total=_opt(self.total[i]),
            rank=int(self.rank[i]) if scored else None,
            cohort_size=int(self.cohort_size[i]),
            percentile=_opt(self.percentile[i]),
            tier=int(self.tier[i]) if scored else None,
        )


@dataclass(frozen=True)
class ScoredRow:
    index: int
    stage: str | None
    cohort: str | None
    scored: bool
    exclusion: str | None
    values: tuple[float | None, ...]
    percentiles: tuple[float | None, ...]
    points: tuple[float | None, ...]
    max_points: tuple[float, ...]
    statuses: tuple[str, ...]  # STATUSES, per indicator
    dimension_scores: dict[str, float | None]
    dimension_percentiles: dict[str, float | None]
    total: float | None
    rank: int | None
    cohort_size: int
    percentile: float | None
    tier: int | None

    @property
    def missing(self) -> tuple[bool, ...]:
        return tuple(s == "missing" for s in self.statuses)


class Reason(TypedDict):
    code: str
    status: str
    explanation: str
    points: float
    max_points: float
    points_lost: float
    value: float | None
    cohort_median: float | None
    missing: bool


class Target(TypedDict):
    """What one indicator alone can still gain: the next band's smallest value, or why not.

    `target_op` is "ge" (reach at least `target_value`) or "gt" (any value above it: from a
    zero, negative or missing amount, any positive value earns, and no smallest one exists).
    """

    reachable: bool
    reason: str | None  # why not reachable: at_maximum | flag_yes | no_weight | no_target
    target_op: str | None
    target_value: float | None
    target_percentile: float | None
    boundary: float | None
    points_gain: float


class Improvement(Target):
    code: str
    status: str
    value: float | None
    percentile: float


# -- cohorts ------------------------------------------------------------------------------------


def merge_cohorts(sizes: Sequence[int], min_cohort: int) -> tuple[list[int], list[dict[str, Any]]]:
    """Map each stage to its cohort label (a stage index) and record every merge.

    Stages with no scored firm take no part (their neighbours become adjacent). While more than
    one cohort remains and some cohort is smaller than `min_cohort`, the smallest such cohort
    (lowest stage on ties) joins its smaller adjacent cohort (lower stage on ties). Joining the
    smaller neighbour changes the peer group of the fewest firms and is the quickest way over the
    threshold; the merged cohort keeps the receiving cohort's label, and with it its weights.
    Stages without a label (-1) have no scored firm.
    """
    groups: list[tuple[list[int], int, int]] = [
        ([s], int(size), s) for s, size in enumerate(sizes) if size > 0
    ]
    merges: list[dict[str, Any]] = []
    while len(groups) > 1:
        small = [i for i, (_, size, _) in enumerate(groups) if size < min_cohort]
        if not small:
            break
        i = min(small, key=lambda k: (groups[k][1], k))
        neighbours = [k for k in (i - 1, i + 1) if 0 <= k < len(groups)]
        j = min(neighbours, key=lambda k: (groups[k][1], k))
        members_i, size_i, label_i = groups[i]
        members_j, size_j, label_j = groups[j]
        merges.append(
            {
                "merged": [STAGES[s].value for s in members_i],
                "into": [STAGES[s].value for s in members_j],
                "cohort": STAGES[label_j].value,
                "sizes": [size_i, size_j],
                "size": size_i + size_j,
                "reason": (
                    f"cohort '{STAGES[label_i].value}' has {size_i} scored enterprises, fewer "
                    f"than min_cohort {min_cohort}; merged into its smaller neighbouring cohort "
                    f"'{STAGES[label_j].value}'"
                ),
            }
        )
        groups[min(i, j)] = (sorted(members_i + members_j), size_i + size_j, label_j)
        del groups[max(i, j)]
    labels = [-1] * len(sizes)
    for members, _, label in groups:
        for s in members:
            labels[s] = label
    return labels, merges


# -- ranking primitives -------------------------------------------------------------------------


def tie_key(x: FloatArray) -> FloatArray:
    """What a computed score is compared by when ranked: rounded to 1e-9.

    Dimension scores and totals are sums of points; the same points added in another order
    can differ in the last bit, which must never split a tie. 1e-9 is far above that noise
    (1e-14 on a 0..100 scale) and far below any real difference of points (at least 1e-7 of
    a point between two firms for cohorts below ten million).
    """
    return np.round(x, _TIE_DECIMALS)


def statuses(column: FloatArray, *, flag: bool) -> npt.NDArray[np.int8]:
    """The status of each value of one indicator (an index into STATUSES)."""
    out = np.full(column.shape, ZERO, dtype=np.int8)
    if flag:
        out[:] = NO
    else:
        out[column < 0] = NEGATIVE
    out[column > 0] = SCORED
    out[np.isnan(column)] = MISSING
    return out


def _counts_le_sorted(sorted_values: FloatArray) -> IntArray:
    """For a sorted array, how many elements are <= each element (ties -> end of their run)."""
    k = sorted_values.size
    run_end = np.empty(k, dtype=np.bool_)
    run_end[:-1] = sorted_values[1:] != sorted_values[:-1]
    run_end[-1] = True
    ends = np.where(run_end, np.arange(1, k + 1, dtype=np.int64), k)
    return np.minimum.accumulate(ends[::-1])[::-1]


@dataclass
class _Ranked:
    """A column ranked within one cohort; sorted arrays kept for the cohort statistics."""

    share: FloatArray  # percentile per row (cohort order), 0 for non-positive / missing
    sorted_raw: FloatArray  # non-missing raw values, ascending
    sorted_capped: FloatArray
    sorted_count: IntArray  # cohort members <= each sorted_capped value (missing included)
    sorted_rows: IntArray  # cohort positions of the sorted non-missing values
    caps: tuple[float, float] | None


_SIGN = np.uint64(1 << 63)
_REPAIRS = 64


def argsort(x: FloatArray) -> IntArray:
    """An order that sorts `x` ascending, NaN last, as `np.argsort` gives (ties may come in
    another order: every caller takes counts of values at or below, alike for all of a tie).

    By a sort of 64-bit keys instead of an argsort: each value's bits made to sort as the
    value does, with the row's index in place of the lowest bits. numpy sorts such keys
    more than ten times faster than it argsorts the doubles (AVX-512; 1M values: ~12 against
    ~150 ms, and the 24 columns and 5 scores of a run are argsorted per cohort). Values that
    differ only in those lowest bits (relatively less than ~2^-32 apart at a million) can
    come out in index order instead: each such run of keys is sorted again by value, and
    should there be many, the whole is argsorted as before."""
    m = x.size
    if m < 2:
        return np.argsort(x)
    bits = (m - 1).bit_length()
    mask = np.uint64((1 << bits) - 1)
    u = x.view(np.uint64)
    key = np.where(u >= _SIGN, ~u, u | _SIGN)
    missing = np.isnan(x)
    key[missing] = np.uint64(0xFFFF_FFFF_FFFF_FFFF)  # NaN last, whatever its sign bit
    key &= ~mask
    key |= np.arange(m, dtype=np.uint64)
    key.sort()
    order = (key & mask).astype(np.intp)
    k = m - int(np.count_nonzero(missing))
    xs = x[order[:k]]
    bad = np.flatnonzero(xs[1:] < xs[:-1])
    if bad.size > _REPAIRS:
        return np.argsort(x)
    if bad.size:
        high = key >> np.uint64(bits)
        for i in bad.tolist():
            a = int(np.searchsorted(high, high[i], "left"))
            b = int(np.searchsorted(high, high[i], "right"))
            run = order[a:b]
            order[a:b] = run[np.argsort(x[run], kind="stable")]
    return order


def _rank(x: FloatArray, caps: tuple[float, float] | None) -> _Ranked:
    m = x.size
    order = argsort(x)  # NaN sorts last
    k = m - int(np.count_nonzero(np.isnan(x)))
    kept = order[:k]
    raw = x[kept]
    share = np.zeros(m, dtype=np.float64)
    if k == 0:
        empty = np.empty(0, dtype=np.float64)
        none = np.empty(0, dtype=np.int64)
        return _Ranked(share, empty, empty, none, none, None)
    cap_values: tuple[float, float] | None = None
    capped = raw
    if caps is not None:
        # A cap at the 0 or 1 quantile is no cap: clipping to the cohort's own minimum or
        # maximum changes none of its values, but it would pin an improvement target below
        # the minimum (or above the maximum) to it.
        lo, hi = sorted_quantiles(raw, caps)
        cap_values = (
            float(lo) if caps[0] > 0.0 else -math.inf,
            float(hi) if caps[1] < 1.0 else math.inf,
        )
        capped = np.clip(raw, *cap_values)
    count = (m - k) + _counts_le_sorted(capped)
    first_positive = int(np.searchsorted(raw, 0.0, side="right"))
    sorted_share = count / m
    sorted_share[:first_positive] = 0.0
    share[kept] = sorted_share
    return _Ranked(share, raw, capped, count, kept, cap_values)


def sorted_quantiles(sorted_values: FloatArray, qs: Sequence[float]) -> FloatArray:
    """`np.quantile(sorted_values, qs)` (its default, linear method) of values already sorted
    ascending, without NaN and not empty, by numpy's own arithmetic: the same neighbours and
    the same interpolation, bit for bit (a test holds the two equal), without the copy and
    the partial sort np.quantile makes of the whole array for each call (~1.5 s of CPU per
    million-row run: a run takes quantiles of every column in every cohort)."""
    n = sorted_values.size
    virtual = (n - 1) * np.asanyarray(qs, dtype=np.float64)
    previous = np.floor(virtual)
    following = previous + 1
    last = virtual >= n - 1
    previous[last] = -1
    following[last] = -1
    at = previous.astype(np.intp)
    a, b = sorted_values[at], sorted_values[following.astype(np.intp)]
    gamma = virtual - at
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def _quantiles(sorted_values: FloatArray) -> dict[str, float | None]:
    if sorted_values.size == 0:
        return dict.fromkeys(_QUANTILE_KEYS, None)
    qs = sorted_quantiles(sorted_values, STAT_QUANTILES)
    return {k: float(v) for k, v in zip(_QUANTILE_KEYS, qs, strict=True)}


def _count_at(ranked: _Ranked, m: int, capped: float) -> int:
    """Cohort members at or below a capped value, gaps included (the percentile's numerator)."""
    gaps = m - ranked.sorted_capped.size
    return gaps + int(np.searchsorted(ranked.sorted_capped, capped, side="right"))


def _clip(ranked: _Ranked, v: float) -> float:
    if ranked.caps is None:
        return v
    lo, hi = ranked.caps
    return min(max(v, lo), hi)


def _first_positive(ranked: _Ranked, m: int, integer: bool) -> tuple[str, float, int]:
    """The lowest band a positive value reaches: (op, value, members at or below).

    A whole-number indicator's smallest positive value is 1. Any positive amount earns the
    same as the low cap (or ranks just above every non-positive value without caps), and no
    smallest positive real exists, so the target is "above 0".
    """
    if integer:
        return "ge", 1.0, _count_at(ranked, m, _clip(ranked, 1.0))
    if ranked.caps is not None and ranked.caps[1] <= 0.0:
        return "gt", 0.0, m  # every non-missing value is capped at or below 0: the top
    if ranked.caps is not None and ranked.caps[0] > 0.0:
        return "gt", 0.0, _count_at(ranked, m, ranked.caps[0])
    gaps = m - ranked.sorted_capped.size
    return "gt", 0.0, gaps + int(np.searchsorted(ranked.sorted_capped, 0.0, side="right"))


def _target_table(
    ranked: _Ranked, m: int, boundaries: Sequence[float], integer: bool
) -> list[dict[str, Any]]:
    """Per percentile boundary b: the smallest value that reaches b, and the percentile it
    gives, with the rest of the cohort and the caps held fixed.

    A value v > 0 reaches (gaps + #{capped <= clip(v)}) / m: a step function of v that steps
    up at each distinct capped value. Moving a firm up never changes how it counts itself (it
    was at or below its old value and is at or below its new one), so the table serves every
    member of the cohort.
    """
    op, first, first_count = _first_positive(ranked, m, integer)
    table: list[dict[str, Any]] = []
    for b in boundaries:
        need = math.ceil(b * m - 1e-9)
        if first_count >= need:
            table.append({"boundary": b, "op": op, "value": first, "percentile": first_count / m})
            continue
        # The smallest capped value with enough members at or below it: it lies above the
        # low cap and above 0 (it beats the first positive band), so it is reached exactly by
        # itself (by the next whole number for counts).
        i = int(np.searchsorted(ranked.sorted_count, need, side="left"))
        t = float(ranked.sorted_capped[i])
        v = float(math.ceil(t)) if integer else t
        count = _count_at(ranked, m, _clip(ranked, v))
        table.append({"boundary": b, "op": "ge", "value": v, "percentile": count / m})
    return table


def _flag_stats(x: FloatArray, m: int, boundaries: Sequence[float]) -> dict[str, Any]:
    known = np.sort(x[~np.isnan(x)])
    quantiles = _quantiles(known)
    return {
        "quantiles": quantiles,
        "median": quantiles["p50"],
        "caps": None,
        "missing": int(m - known.size),
        "non_positive": int(np.count_nonzero(known <= 0)),
        # A yes earns the full points whatever the peers hold.
        "boundaries": [
            {"boundary": b, "op": "ge", "value": 1.0, "percentile": 1.0} for b in boundaries
        ],
    }


# -- evaluation ---------------------------------------------------------------------------------


def _threads(n: int) -> int:
    # Sorting releases the GIL, so columns rank in parallel; more than four workers rarely help
    # because the gathers are memory-bound, and small runs are not worth a pool.
    if n < _PARALLEL_FROM:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class _Cohorts:
    """Who is scored, in which cohort, and where each cohort's rows lie once grouped."""

    stage: npt.NDArray[np.int8]
    exclusion: ObjectArray
    scored: BoolArray
    unscored: npt.NDArray[np.intp]
    labels: list[int]  # stage -> cohort label (-1: no scored firm)
    merges: list[dict[str, Any]]
    cohort: npt.NDArray[np.int8]  # per row, -1 when not scored
    # Scored rows grouped by cohort (row order kept inside a cohort): every (cohort, column)
    # slice of a gathered column is then contiguous, at `bounds[c]` in `order`.
    order: npt.NDArray[np.intp]
    present: list[int]
    bounds: dict[int, tuple[int, int]]


def _cohorts(inp: EngineInput, spec: ModelSpec) -> _Cohorts:
    """Stages from revenue, exclusions, merged cohorts and the rows grouped by cohort."""
    n = inp.n
    stage = stage_indices(inp.revenue, spec.stage_bands)
    excluded = inp.excluded_mask()
    exclusion = np.full(n, None, dtype=object)
    exclusion[stage < 0] = MISSING_REVENUE
    exclusion[excluded] = np.asarray(inp.excluded_reason, dtype=object)[excluded]
    scored = (stage >= 0) & ~excluded
    unscored = np.flatnonzero(~scored)

    sizes = np.bincount(stage[scored].astype(np.int64), minlength=len(STAGES))
    labels, merges = merge_cohorts([int(s) for s in sizes], spec.min_cohort)
    label_of_stage = np.asarray([*labels, -1], dtype=np.int8)  # index -1 -> -1
    cohort = np.where(scored, label_of_stage[stage], np.int8(-1)).astype(np.int8)

    rows = np.flatnonzero(scored)
    order = rows[np.argsort(cohort[rows], kind="stable")]
    sorted_labels = cohort[order]
    present = sorted({c for c in labels if c >= 0})
    bounds = {
        c: (
            int(np.searchsorted(sorted_labels, c, "left")),
            int(np.searchsorted(sorted_labels, c, "right")),
        )
        for c in present
    }
    return _Cohorts(
        stage, exclusion, scored, unscored, labels, merges, cohort, order, present, bounds
    )


def _indicator_stats(
    ranked: _Ranked, m: int, boundaries: Sequence[float], integer: bool
) -> dict[str, Any]:
    quantiles = _quantiles(ranked.sorted_raw)
    return {
        "quantiles": quantiles,
        "median": quantiles["p50"],
        "caps": None
        if ranked.caps is None
        else {
            k: v if math.isfinite(v) else None
            for k, v in zip(("low", "high"), ranked.caps, strict=True)
        },
        "missing": int(m - ranked.sorted_raw.size),
        "non_positive": int(np.searchsorted(ranked.sorted_raw, 0.0, side="right")),
        "boundaries": _target_table(ranked, m, boundaries, integer),
    }


class _IndicatorRanking:
    """Percentiles and points of the 24 indicators, one column at a time, within cohorts.

    Outputs are built column-major ([indicator, row]) and returned transposed: each column
    (and so each thread) then writes contiguous memory, and no [n, 24] array is ever copied.
    """

    def __init__(
        self, values: FloatArray, cohorts: _Cohorts, spec: ModelSpec, max_matrix: FloatArray
    ) -> None:
        n = values.shape[0]
        self.cohorts = cohorts
        self.boundaries = spec.percentile_boundaries()
        self.caps = (spec.cap_low, spec.cap_high)
        # Max points by cohort, with a NaN row that unscored rows (cohort -1) pick up.
        self.max_by_cohort = np.vstack([max_matrix, np.full(_N, np.nan)])
        self.values_t = np.ascontiguousarray(values.T)
        self.percentiles_t = np.empty((_N, n))
        self.points_t = np.empty((_N, n))
        self.status_t = np.empty((_N, n), dtype=np.int8)
        self.stats: dict[tuple[int, int], dict[str, Any]] = {}

    def run(self, workers: int) -> None:
        if workers == 1:
            for j in range(_N):
                self.rank_column(j)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self.rank_column, range(_N)))

    def rank_column(self, j: int) -> None:
        co = self.cohorts
        column = self.values_t[j]
        self.status_t[j] = statuses(column, flag=j in _FLAG_COLUMNS)
        gathered = column[co.order]
        share = np.empty(co.order.size)
        for c in co.present:
            a, b = co.bounds[c]
            x = gathered[a:b]
            m = b - a
            if j in _FLAG_COLUMNS:
                share[a:b] = x > 0
                self.stats[(c, j)] = _flag_stats(x, m, self.boundaries)
                continue
            ranked = _rank(x, self.caps)
            share[a:b] = ranked.share
            self.stats[(c, j)] = _indicator_stats(ranked, m, self.boundaries, j in _INTEGER_COLUMNS)
        out = self.percentiles_t[j]
        out[co.order] = share
        out[co.unscored] = np.nan
        np.multiply(out, self.max_by_cohort[:, j][co.cohort], out=self.points_t[j])


def _dimension_totals(points_t: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Dimension scores ([dimension, row]) and totals from the points ([indicator, row])."""
    n = points_t.shape[1]
    dims_t = np.empty((len(DIMENSIONS), n))
    for d, cols in enumerate(_DIMENSION_COLUMNS):
        # Row by row, in catalogue order: a fixed summation order keeps totals reproducible.
        dims_t[d] = points_t[cols[0]]
        for col in cols[1:]:
            dims_t[d] += points_t[col]
    total = dims_t[0].copy()
    for d in range(1, len(DIMENSIONS)):
        total += dims_t[d]
    return dims_t, total


@dataclass
class _Standings:
    """Per row: dimension percentiles, total percentile, rank, tier and cohort size; and the
    statistics of every cohort."""

    dimension_percentiles_t: FloatArray
    percentile: FloatArray
    rank: IntArray
    tier: npt.NDArray[np.int8]
    cohort_size: IntArray
    cohort_stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def _rank_cohorts(
    cohorts: _Cohorts,
    dims_t: FloatArray,
    total: FloatArray,
    tier_bands: Sequence[float],
    indicator_stats: Mapping[tuple[int, int], dict[str, Any]],
) -> _Standings:
    n = total.shape[0]
    out = _Standings(
        dimension_percentiles_t=np.full((len(DIMENSIONS), n), np.nan),
        percentile=np.full(n, np.nan),
        rank=np.zeros(n, dtype=np.int64),
        tier=np.zeros(n, dtype=np.int8),
        cohort_size=np.zeros(n, dtype=np.int64),
    )
    for c in cohorts.present:
        _rank_cohort(c, cohorts, dims_t, total, tier_bands, indicator_stats, out)
    return out


def _rank_cohort(
    c: int,
    cohorts: _Cohorts,
    dims_t: FloatArray,
    total: FloatArray,
    tier_bands: Sequence[float],
    indicator_stats: Mapping[tuple[int, int], dict[str, Any]],
    out: _Standings,
) -> None:
    """One cohort's dimension percentiles, ranks and tiers, written into `out`."""
    a, b = cohorts.bounds[c]
    m = b - a
    members = cohorts.order[a:b]
    dim_stats: dict[str, dict[str, float | None]] = {}
    for d, dim in enumerate(DIMENSIONS):
        ranked = _rank(tie_key(dims_t[d][members]), None)
        out.dimension_percentiles_t[d][members] = ranked.share
        dim_stats[dim.value] = _quantiles(np.sort(dims_t[d][members]))
    totals = total[members]
    ranked = _rank(tie_key(totals), None)
    out.percentile[members] = ranked.share
    at_or_below = np.empty(m, dtype=np.int64)
    at_or_below[ranked.sorted_rows] = ranked.sorted_count
    cohort_rank = m - at_or_below + 1
    # Tier t holds the firms with fewer than ceil(share above * m) firms strictly ahead.
    n_tiers = len(tier_bands)
    cum_top = np.cumsum(np.asarray(tier_bands, dtype=np.float64))[:-1]
    thresholds = np.ceil(cum_top * m - 1e-9).astype(np.int64)
    cohort_tier = (n_tiers - np.searchsorted(thresholds, cohort_rank - 1, side="right")).astype(
        np.int8
    )
    out.rank[members] = cohort_rank
    out.tier[members] = cohort_tier
    out.cohort_size[members] = m
    out.cohort_stats[STAGES[c].value] = {
        "cohort": STAGES[c].value,
        "size": m,
        "members": [STAGES[s].value for s in range(len(STAGES)) if cohorts.labels[s] == c],
        "total": _quantiles(np.sort(totals)),
        "dimensions": dim_stats,
        "tiers": _tier_table(totals, cohort_tier, n_tiers),
        "indicators": {code: indicator_stats[(c, j)] for j, code in enumerate(INDICATOR_CODES)},
    }


def evaluate(inp: EngineInput, spec: ModelSpec = DEFAULT_MODEL) -> EngineResult:
    """Score every row of `inp` with `spec`. Raises ValueError for an invalid spec.

    Four steps: place rows in cohorts, rank each indicator within its cohort, add points up
    to dimensions and totals, then rank totals within cohorts into ranks and tiers.
    """
    errors = spec.validate()
    if errors:
        raise ValueError("invalid scoring model: " + "; ".join(errors))
    max_matrix = spec.max_points_matrix()
    cohorts = _cohorts(inp, spec)
    indicators = _IndicatorRanking(inp.values, cohorts, spec, max_matrix)
    indicators.run(_threads(inp.n))
    dims_t, total = _dimension_totals(indicators.points_t)
    standings = _rank_cohorts(cohorts, dims_t, total, spec.tier_bands, indicators.stats)
    return EngineResult(
        model_version=spec.version,
        values=inp.values,
        max_points=max_matrix,
        stage=cohorts.stage,
        cohort=cohorts.cohort,
        scored=cohorts.scored,
        exclusion=cohorts.exclusion,
        percentiles=indicators.percentiles_t.T,
        points=indicators.points_t.T,
        status=indicators.status_t.T,
        dimension_scores=dims_t.T,
        dimension_percentiles=standings.dimension_percentiles_t.T,
        total=total,
        rank=standings.rank,
        cohort_size=standings.cohort_size,
        percentile=standings.percentile,
        tier=standings.tier,
        merges=cohorts.merges,
        cohort_stats=standings.cohort_stats,
    )


def _tier_table(
    totals: FloatArray, tiers: npt.NDArray[np.int8], n_tiers: int
) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    for t in range(n_tiers, 0, -1):
        members = totals[tiers == t]
        table.append(
            {
                "tier": t,
                "count": int(members.size),
                "min_total": float(members.min()) if members.size else None,
                "max_total": float(members.max()) if members.size else None,
            }
        )
    return table


# -- explanations -------------------------------------------------------------------------------


_EXPLANATIONS: dict[str, str] = {
    "missing": "No data was provided for this indicator, so it earns no points.",
    "zero": "The value is zero, so it earns no points.",
    "negative": "The value is negative (a decline or a loss), so it earns no points.",
    "no": "The answer is no, so this yes/no indicator earns no points.",
}


def explanation(status: str, percentile: float | None) -> str:
    """Why an indicator earned what it did, in words that tell no data from no."""
    text = _EXPLANATIONS.get(status)
    if text is not None:
        return text
    share = 0.0 if percentile is None else percentile
    return f"The value ranks at the {share:.1%} percentile of the cohort, so it earns that share."


def reasons(row: ScoredRow, stats: Mapping[str, Any], limit: int = 4) -> list[Reason]:
    """The indicators that cost the firm the most points, worst first.

    `stats` is the row's own cohort entry of `EngineResult.cohort_stats`. Indicators that lost
    nothing are left out, so a perfect row has no reasons.
    """
    if not row.scored or row.cohort is None:
        return []
    maxima = row.max_points
    out: list[Reason] = []
    for j, code in enumerate(INDICATOR_CODES):
        earned = row.points[j] or 0.0
        lost = float(maxima[j]) - earned
        if lost <= 1e-12:
            continue
        status = row.statuses[j]
        out.append(
            Reason(
                code=code,
                status=status,
                explanation=explanation(status, row.percentiles[j]),
                points=earned,
                max_points=float(maxima[j]),
                points_lost=lost,
                value=row.values[j],
                cohort_median=stats["indicators"][code]["median"],
                missing=status == "missing",
            )
        )
    out.sort(key=lambda r: -r["points_lost"])  # stable: catalogue order breaks ties
    return out[:limit]


def _unreachable(reason: str) -> Target:
    return Target(
        reachable=False,
        reason=reason,
        target_op=None,
        target_value=None,
        target_percentile=None,
        boundary=None,
        points_gain=0.0,
    )


def _entries(value: float | None, boundaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The stored boundary table; a run scored before engine-2 stored the smallest capped
    value per boundary, which is a valid target only when it lies above the firm's value."""
    out: list[dict[str, Any]] = []
    floor = 0.0 if value is None else max(value, 0.0)
    for e in boundaries:
        if "op" in e:
            out.append(dict(e))
        elif e.get("value") is not None and e["value"] > floor and e.get("percentile"):
            out.append({**e, "op": "ge"})
    return out


def target_for(
    j: int,
    value: float | None,
    points: float,
    max_points: float,
    stats: Mapping[str, Any],
) -> Target:
    """The next band indicator j alone can reach, from the cohort's boundary table.

    The next band is the first boundary above the firm's percentile; its smallest value lies
    strictly above the firm's value (a smaller one would already reach it) and the gain is
    exact with the rest of the cohort and the caps held fixed.
    """
    if max_points <= 0.0:
        return _unreachable("no_weight")
    if max_points - points <= 1e-12:
        return _unreachable("flag_yes" if j in _FLAG_COLUMNS else "at_maximum")
    current = points / max_points
    entry = stats["indicators"][INDICATOR_CODES[j]]
    for e in _entries(value, entry["boundaries"]):
        pct = e.get("percentile")
        if e["boundary"] <= current + 1e-12 or pct is None or pct <= current + 1e-12:
            continue
        return Target(
            reachable=True,
            reason=None,
            target_op=str(e["op"]),
            target_value=float(e["value"]),
            target_percentile=float(pct),
            boundary=float(e["boundary"]),
            points_gain=max_points * float(pct) - points,
        )
    return _unreachable("no_target")


def improvements(row: ScoredRow, stats: Mapping[str, Any], limit: int = 3) -> list[Improvement]:
    """For the indicators that cost the most points, the smallest value that reaches the next
    band among the firm's peers and the points it would add (`target_for`); an indicator that
    cannot gain alone says so (`reachable` false, no target)."""
    out: list[Improvement] = []
    for r in reasons(row, stats, limit=limit):
        j = INDICATOR_CODES.index(r["code"])
        target = target_for(j, r["value"], r["points"], r["max_points"], stats)
        out.append(
            Improvement(
                code=r["code"],
                status=r["status"],
                value=r["value"],
                percentile=r["points"] / r["max_points"],
                **target,
            )
        )
    return out


# -- explanations computed in the batch ----------------------------------------------------------

# `explain_codes` lays out, per row, EXPLAIN_WIDTH signed bytes: the 24 value statuses (indices
# into STATUSES), then per indicator its target (the index of the boundary entry `target_for`
# picks, or one of the negative codes below), then the indicators of `reasons` in order (-1
# pads). A read turns them into the same reasons, improvements and targets without searching.
EXPLAIN_WIDTH = 2 * _N + 4
REASONS_STORED = 4
TARGET_NO_WEIGHT, TARGET_AT_MAXIMUM, TARGET_NONE, TARGET_UNSCORED = -1, -2, -3, -4
_EPS = 1e-12


@dataclass(frozen=True)
class BandTables:
    """Every cohort's boundary tables as arrays [entry, cohort, indicator], padded with +inf
    (never reached), and each table's length: what `explain_codes` searches."""

    bounds: FloatArray  # [entry, cohort, indicator]
    percentiles: FloatArray
    lengths: IntArray  # [cohort, indicator]

    @property
    def lowest(self) -> FloatArray:
        """Per entry, the lower of its boundary and its percentile: a share reaches either
        exactly when it reaches this one."""
        return np.minimum(self.bounds, self.percentiles)


def band_tables(result: EngineResult) -> BandTables | None:
    """The tables of `result`, or None when one cannot be searched as ascending arrays (a
    legacy table without `op`, or one not ascending in both boundary and percentile; the
    engine's own tables always can: each entry's value and its count grow with the
    boundary)."""
    tables: dict[tuple[int, int], tuple[list[float], list[float]]] = {}
    for c, stage in enumerate(STAGES):
        stats = result.cohort_stats.get(stage.value)
        if stats is None:
            continue
        for j, code in enumerate(INDICATOR_CODES):
            entries = stats["indicators"][code]["boundaries"]
            if any("op" not in e or e.get("percentile") is None for e in entries):
                return None
            b = [float(e["boundary"]) for e in entries]
            p = [float(e["percentile"]) for e in entries]
            if b != sorted(b) or p != sorted(p):
                return None
            tables[(c, j)] = (b, p)
    width = max((len(b) for b, _ in tables.values()), default=0)
    bounds = np.full((width, len(STAGES), _N), np.inf)
    pcts = np.full((width, len(STAGES), _N), np.inf)
    lengths = np.zeros((len(STAGES), _N), dtype=np.int64)
    for (c, j), (b, p) in tables.items():
        bounds[: len(b), c, j] = b
        pcts[: len(p), c, j] = p
        lengths[c, j] = len(b)
    return BandTables(bounds, pcts, lengths)


def _target_codes(
    points: FloatArray, maxima: FloatArray, cohort: npt.NDArray[np.int8], tables: BandTables
) -> npt.NDArray[np.int8]:
    """Per [row, indicator], the entry `target_for` returns, without a loop over rows.

    `target_for` takes the first entry whose boundary and percentile both lie above the
    row's share (points / max): with both ascending, that is the larger of the two counts of
    entries at or below it (a few entries: counted by comparison, not searched).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        current = points / maxima + _EPS
    k = np.zeros(points.shape, dtype=np.int8)
    below = np.empty(points.shape, dtype=np.bool_)
    lowest = tables.lowest
    for e in range(lowest.shape[0]):
        # Contiguous [cohort, indicator] planes: gathering rows of them by cohort is a copy.
        np.less_equal(lowest[e][cohort], current, out=below)
        k += below  # ascending: once one is at or below, so are those before
    out = np.where(k < tables.lengths[cohort], k, TARGET_NONE).astype(np.int8)
    out[maxima - points <= _EPS] = TARGET_AT_MAXIMUM
    out[maxima <= 0.0] = TARGET_NO_WEIGHT
    return out


def _reason_order(points: FloatArray, maxima: FloatArray) -> npt.NDArray[np.int8]:
    """The indicators `reasons` lists, worst first, -1 where fewer lost anything: the
    largest loss left, four times (argmax takes the first of equals: catalogue order breaks
    ties, as the stable sort of `reasons` does)."""
    lost = maxima - points
    lost[lost <= _EPS] = -np.inf
    out = np.full((points.shape[0], REASONS_STORED), -1, dtype=np.int8)
    rows = np.arange(points.shape[0])
    for r in range(REASONS_STORED):
        j = np.argmax(lost, axis=1)
        found = lost[rows, j] > -np.inf
        out[found, r] = j[found]
        lost[rows, j] = -np.inf
    return out


def explain_codes(
    result: EngineResult, rows: npt.NDArray[np.intp], tables: BandTables
) -> npt.NDArray[np.int8]:
    """The stored explanation of each of `rows` ([len(rows), EXPLAIN_WIDTH]; see above),
    with `tables = band_tables(result)`.

    Unscored rows have statuses only (no targets, no reasons), as a read shows them.
    """
    out = np.empty((rows.size, EXPLAIN_WIDTH), dtype=np.int8)
    out[:, :_N] = result.status[rows]
    out[:, _N:] = TARGET_UNSCORED
    out[:, 2 * _N :] = -1
    scored = result.scored[rows]
    if not scored.any():
        return out
    sel = rows[scored]
    cohort = result.cohort[sel]
    points = result.points[sel]
    points[np.isnan(points)] = 0.0
    maxima = result.max_points[cohort]
    codes = np.empty((sel.size, _N + REASONS_STORED), dtype=np.int8)
    codes[:, :_N] = _target_codes(points, maxima, cohort, tables)
    codes[:, _N:] = _reason_order(points, maxima)
    out[scored, _N:] = codes
    return out


# -- reproducibility ----------------------------------------------------------------------------


def _canonical(a: FloatArray) -> bytes:
    # One NaN payload and no negative zero, so equal inputs hash equally however they were made.
    clean = np.where(np.isnan(a), np.nan, a) + 0.0
    return np.ascontiguousarray(clean, dtype="<f8").tobytes()


def fingerprint(inp: EngineInput, spec: ModelSpec = DEFAULT_MODEL) -> str:
    """sha256 over the engine version, the spec's JSON and the input arrays, in a fixed order.

    None and "" exclusion reasons hash alike: both mean "may be scored".
    """
    h = hashlib.sha256()
    h.update(ENGINE_VERSION.encode())
    h.update(b"\x00")
    h.update(json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")).encode())
    h.update(b"\x00")
    h.update(inp.n.to_bytes(8, "little"))
    h.update(",".join(INDICATOR_CODES).encode())
    h.update(_canonical(inp.revenue))
    h.update(_canonical(inp.values))
    reasons_text = "\x1e".join("" if r is None else str(r) for r in inp.excluded_reason)
    h.update(reasons_text.encode())
    return h.hexdigest()


def _opt(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f
