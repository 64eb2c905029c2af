"""Fairness reporting (公平性): how do groups of firms fare under the score?

For one grouping (stage, industry, district 区县, firm age band) and several metrics (mean
score, share in the top tiers, share with a line at or above the base, approval rate, default
rate), each group's value is compared with the overall value and with the best group. Groups
beyond a configured disparity are flagged for programme staff to look at: this reports, it does
not correct anything.

The quantities are fairlearn's `MetricFrame` ones: `by_group` (the metric within each group),
`overall`, `difference(method="between_groups" | "to_overall")` and `ratio(...)`; the tests
compare them with MetricFrame on random data (fairlearn is a dev dependency for that). They are
computed here with numpy rather than by MetricFrame at run time because every metric is a mean
of a per-firm value within a group, i.e. one `np.bincount`: MetricFrame would bring pandas and
narwhals into the service and call a Python function per group and metric (slow for hundreds of
districts over a million firms), for the same numbers.

Per metric, rows whose value is NaN are outside that metric's population (e.g. the approval
rate counts only firms that applied, the default rate only firms that borrowed); group sizes
are counted per metric. A group smaller than `min_group_size` on a metric is reported with its
value but never flagged, and the aggregates (difference/ratio between groups and to overall)
leave it out: a district with 4 firms would otherwise dominate them by chance alone. With
`min_group_size=1` the aggregates are exactly MetricFrame's.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from services.scoring.governance._base import (
    GovernanceInputError,
    IntArray,
    Result,
    as_float_vector,
    opt_float,
    same_length,
)

Direction = Literal["higher_is_better", "lower_is_better"]
CompareTo = Literal["overall", "best"]

DEFAULT_MIN_GROUP_SIZE = 30
# The four-fifths rule: a group's rate below 80% of the reference rate is a disparity to look at.
DEFAULT_RATIO_THRESHOLD = 0.8
UNKNOWN = "unknown"
MAX_GROUPS = 10_000
_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class Grouping:
    """Firms assigned to groups: `codes[i]` indexes `labels` for firm i.

    Codes plus labels (what a SQL enum, a pandas Categorical or `np.unique(return_inverse=True)`
    gives) keep a million-row grouping cheap; `from_labels` builds one from raw labels.
    """

    codes: IntArray
    labels: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels: npt.ArrayLike, *, missing: str = UNKNOWN) -> Grouping:
        """Group by raw labels; None and "" become `missing` (a group of its own)."""
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise GovernanceInputError("group labels must be one-dimensional")
        if arr.dtype.kind == "O":
            arr = np.array([missing if v is None or v == "" else str(v) for v in arr.tolist()])
        elif arr.dtype.kind in "US":
            arr = np.where(arr == "", missing, arr.astype(str))
        elif arr.dtype.kind not in "biu":
            raise GovernanceInputError(f"group labels of dtype {arr.dtype} are not supported")
        uniq, inverse = np.unique(arr, return_inverse=True)
        return cls.of(inverse, tuple(str(u) for u in uniq.tolist()))

    @classmethod
    def of(cls, codes: npt.ArrayLike, labels: Sequence[str]) -> Grouping:
        c = np.asarray(codes)
        if c.ndim != 1 or (c.size and c.dtype.kind not in "iu"):
            raise GovernanceInputError("group codes must be a one-dimensional integer array")
        if not 0 < len(labels) <= MAX_GROUPS:
            raise GovernanceInputError(f"a grouping needs between 1 and {MAX_GROUPS} labels")
        if len(set(labels)) != len(labels):
            raise GovernanceInputError("group labels must be distinct")
        c = c.astype(np.int64)
        if c.size and (int(c.min()) < 0 or int(c.max()) >= len(labels)):
            raise GovernanceInputError("group codes must index the labels")
        return cls(codes=c, labels=tuple(labels))


@dataclass(frozen=True, slots=True)
class FairnessMetric:
    """A per-firm value to compare across groups (its group mean is the metric): a score, or a
    0/1 indicator whose mean is a rate. NaN = the firm is outside this metric's population."""

    name: str
    values: npt.ArrayLike
    direction: Direction = "higher_is_better"
    # Flag a group whose value differs from the reference by more than this (absolute units of
    # the metric); None = only the ratio flags.
    difference_threshold: float | None = None


@dataclass(frozen=True, slots=True)
class GroupValue(Result):
    group: str
    count: int
    value: float | None
    # value - overall, value / overall (None where overall is 0).
    difference: float | None
    ratio: float | None
    # Against the best eligible group, oriented so that <= 1 means "worse than the best":
    # value / best for higher_is_better, best / value for lower_is_better.
    ratio_to_best: float | None
    # Worse than overall in the metric's direction.
    disadvantaged: bool
    # Large enough (count >= min_group_size) to be flagged and to enter the aggregates.
    eligible: bool
    flagged: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricDisparity(Result):
    metric: str
    direction: Direction
    count: int
    overall: float | None
    best_group: str | None
    groups: tuple[GroupValue, ...]
    # fairlearn's aggregates over the eligible groups.
    difference_between_groups: float | None
    difference_to_overall: float | None
    ratio_between_groups: float | None
    ratio_to_overall: float | None
    flagged_groups: tuple[str, ...]
    difference_threshold: float | None


@dataclass(frozen=True, slots=True)
class FairnessReport(Result):
    grouping: str
    compare_to: CompareTo
    ratio_threshold: float
    min_group_size: int
    metrics: tuple[MetricDisparity, ...]


def _reasons(
    value: float,
    overall: float,
    best: float | None,
    direction: Direction,
    compare_to: CompareTo,
    ratio_threshold: float,
    difference_threshold: float | None,
) -> list[str]:
    reasons: list[str] = []
    if compare_to == "overall":
        ref, label = overall, "overall"
        r = value / overall if overall else None
        # Symmetric, like fairlearn's ratio(method="to_overall"): far above is shown too.
        low = None if r is None else r if r <= 1.0 else 1.0 / r
    else:
        if best is None:
            return reasons
        ref, label = best, "the best group"
        if direction == "higher_is_better":
            low = value / best if best else None
        else:
            low = best / value if value else None
    # A value exactly at a threshold is not beyond it: 0.04 / 0.05 is 0.7999999999999999 in
    # floating point, and must not be flagged by the four-fifths rule.
    if low is not None and low < ratio_threshold - _TOLERANCE:
        reasons.append(f"ratio to {label} {low:.3f} < {ratio_threshold:g}")
    if difference_threshold is not None and abs(value - ref) > difference_threshold + _TOLERANCE:
        reasons.append(f"difference to {label} {value - ref:+.4g} beyond ±{difference_threshold:g}")
    return reasons


def _metric(
    grouping: Grouping,
    metric: FairnessMetric,
    *,
    min_group_size: int,
    ratio_threshold: float,
    compare_to: CompareTo,
) -> MetricDisparity:
    values = as_float_vector(metric.values, metric.name, allow_nan=True)
    same_length("group codes", grouping.codes, metric.name, values)
    present = ~np.isnan(values)
    codes = grouping.codes[present]
    v = values[present]
    g = len(grouping.labels)
    counts = np.bincount(codes, minlength=g)
    sums = np.bincount(codes, weights=v, minlength=g)
    overall = float(v.mean()) if v.size else None
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    eligible = (counts >= min_group_size) & (counts > 0)
    elig_vals = means[eligible]
    best_at: int | None = None
    if elig_vals.size:
        pick = np.argmax if metric.direction == "higher_is_better" else np.argmin
        best_at = int(np.flatnonzero(eligible)[pick(elig_vals)])
    best = float(means[best_at]) if best_at is not None else None
    rows = []
    for i, label in enumerate(grouping.labels):
        n = int(counts[i])
        if n == 0:
            rows.append(GroupValue(label, 0, None, None, None, None, False, False, False, ()))
            continue
        value = float(means[i])
        ratio = value / overall if overall else None
        if best is None:
            to_best = None
        elif metric.direction == "higher_is_better":
            to_best = value / best if best else None
        else:
            to_best = best / value if value else None
        worse = (
            (value < overall if metric.direction == "higher_is_better" else value > overall)
            if overall is not None
            else False
        )
        reasons = (
            _reasons(
                value,
                overall,
                best,
                metric.direction,
                compare_to,
                ratio_threshold,
                metric.difference_threshold,
            )
            if bool(eligible[i]) and overall is not None
            else []
        )
        rows.append(
            GroupValue(
                group=label,
                count=n,
                value=value,
                difference=value - overall if overall is not None else None,
                ratio=ratio,
                ratio_to_best=to_best,
                disadvantaged=worse,
                eligible=bool(eligible[i]),
                flagged=bool(reasons),
                reasons=tuple(reasons),
            )
        )
    diff_between = diff_overall = ratio_between = ratio_overall = None
    if elig_vals.size and overall is not None:
        hi, lo = float(elig_vals.max()), float(elig_vals.min())
        diff_between = hi - lo
        diff_overall = float(np.abs(elig_vals - overall).max())
        ratio_between = opt_float(lo / hi) if hi else None
        if overall:
            r = elig_vals / overall
            with np.errstate(divide="ignore"):
                ratio_overall = opt_float(np.where(r > 1.0, 1.0 / r, r).min())
    return MetricDisparity(
        metric=metric.name,
        direction=metric.direction,
        count=int(v.size),
        overall=overall,
        best_group=grouping.labels[best_at] if best_at is not None else None,
        groups=tuple(rows),
        difference_between_groups=diff_between,
        difference_to_overall=diff_overall,
        ratio_between_groups=ratio_between,
        ratio_to_overall=ratio_overall,
        flagged_groups=tuple(r.group for r in rows if r.flagged),
        difference_threshold=metric.difference_threshold,
    )


def fairness(
    name: str,
    grouping: Grouping,
    metrics: Sequence[FairnessMetric],
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    ratio_threshold: float = DEFAULT_RATIO_THRESHOLD,
    compare_to: CompareTo = "overall",
) -> FairnessReport:
    """Every metric by group of `grouping` (named `name`: "stage", "industry", ...).

    `compare_to="overall"` flags a group whose value is below `ratio_threshold` times the
    overall value or above it divided by `ratio_threshold` (fairlearn's symmetric
    `ratio(method="to_overall")`); `compare_to="best"` applies the four-fifths rule in its
    original form, against the best eligible group. Either way a metric's
    `difference_threshold`, when set, flags an absolute gap too.
    """
    if not 0.0 < ratio_threshold < 1.0:
        raise GovernanceInputError("ratio_threshold must lie strictly between 0 and 1")
    if min_group_size < 1:
        raise GovernanceInputError("min_group_size must be at least 1")
    if compare_to not in ("overall", "best"):
        raise GovernanceInputError('compare_to must be "overall" or "best"')
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise GovernanceInputError("metric names must be distinct")
    for m in metrics:
        if m.direction not in ("higher_is_better", "lower_is_better"):
            raise GovernanceInputError(f"{m.name}: unknown direction {m.direction!r}")
        if m.difference_threshold is not None and not m.difference_threshold > 0:
            raise GovernanceInputError(f"{m.name}: difference_threshold must be positive")
    return FairnessReport(
        grouping=name,
        compare_to=compare_to,
        ratio_threshold=ratio_threshold,
        min_group_size=min_group_size,
        metrics=tuple(
            _metric(
                grouping,
                m,
                min_group_size=min_group_size,
                ratio_threshold=ratio_threshold,
                compare_to=compare_to,
            )
            for m in metrics
        ),
    )


# Completed years since founding. 3: a start-up (初创期, "founded under three years" in many
# programmes); 5: the eaglet (雏鹰) programme's "founded five years or less"; 10: the usual
# bound of gazelle (瞪羚) schemes; 20: established firms beyond.
AGE_BAND_EDGES: tuple[int, ...] = (3, 5, 10, 20)


def age_band_labels(edges: Sequence[int] = AGE_BAND_EDGES) -> tuple[str, ...]:
    """["0-3", "3-5", "5-10", "10-20", "20+", "unknown"] for the default edges: [lo, hi) years."""
    bounds = [0, *edges]
    labels = [f"{lo}-{hi}" for lo, hi in itertools.pairwise(bounds)]
    return (*labels, f"{bounds[-1]}+", UNKNOWN)


def age_bands(
    founded_on: npt.ArrayLike, as_of: dt.date, *, edges: Sequence[int] = AGE_BAND_EDGES
) -> Grouping:
    """Firm age bands from founding dates, in completed years at `as_of`.

    Use the end of the scored period as `as_of` (31 December of the period, as the scoring
    service computes `age_years`), so a firm's band does not change with the day the report is
    drawn. A firm founded on 29 February completes a year on 1 March in common years. Missing
    dates (NaT/None) and dates after `as_of` (a data error) fall in "unknown".
    """
    if not edges or any(e <= 0 for e in edges) or list(edges) != sorted(set(edges)):
        raise GovernanceInputError("age band edges must be positive and strictly increasing")
    raw = np.asarray(founded_on)
    if raw.ndim != 1:
        raise GovernanceInputError("founded_on must be one-dimensional")
    try:
        days = raw.astype("datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise GovernanceInputError("founded_on must hold dates") from exc
    known = ~np.isnat(days)
    ref = np.datetime64(as_of, "D")
    years = np.zeros(days.shape, dtype=np.int64)
    d = days[known]
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = d.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (d - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    # Completed years: one less until the anniversary (month, day) is reached in as_of's year.
    before_anniversary = (month * 100 + day) > (as_of.month * 100 + as_of.day)
    years[known] = as_of.year - year - before_anniversary
    valid = known.copy()
    valid[known] = d <= ref
    labels = age_band_labels(edges)
    codes = np.searchsorted(np.asarray(edges), years, side="right").astype(np.int64)
    codes[~valid] = len(labels) - 1
    return Grouping(codes=codes, labels=labels)
