"""Bad rate by tier (分档违约率): rank ordering and calibration.

Tiers run from 1 (worst) to `n_tiers` (best, 5 by default); 0 is the engine's "not rated" and
is counted apart, never in a tier. A bank expects the bad rate to fall as the tier rises (rank
ordering) and each tier's observed bad rate to match what it was promised (calibration).

Statistics come from scipy.stats: Fisher's exact test for adjacent tiers, Somers' D for the
trend, the binomial test and the binomial distribution for calibration and the traffic light.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from services.scoring.governance._base import (
    GovernanceInputError,
    Result,
    as_outcome,
    as_tier_vector,
    same_length,
)

DEFAULT_TIERS = 5
DEFAULT_ALPHA = 0.05
# Basel Committee (1996) backtesting zones: the cumulative binomial probability of observing at
# most the observed number of defaults; yellow from 95%, red from 99.99%.
YELLOW_AT = 0.95
RED_AT = 0.9999

Zone = Literal["green", "yellow", "red"]


@dataclass(frozen=True, slots=True)
class TierRow(Result):
    tier: int
    count: int
    bad: int
    # None for an empty tier: 0/0 is not a bad rate.
    bad_rate: float | None
    share: float


@dataclass(frozen=True, slots=True)
class AdjacentTest(Result):
    """One step up the tiers: from `lower_tier` to the next non-empty `higher_tier`.

    Fisher's exact test on the 2x2 table (bad, good) x (lower, higher), one-sided both ways:
    `p_separated` is the evidence that the higher tier has a lower bad rate (small = the step
    is real), `p_reversed` the evidence that it has a higher one (small = a real violation).
    """

    lower_tier: int
    higher_tier: int
    lower_bad_rate: float
    higher_bad_rate: float
    violation: bool
    p_separated: float
    p_reversed: float
    significant_violation: bool


@dataclass(frozen=True, slots=True)
class TrendTest(Result):
    """Somers' D of the tier given the outcome (scipy.stats.somersd on the outcome x tier
    table), tested one-sided for a positive association: the higher the tier, the fewer defaults.
    D(tier | outcome) is the Gini (accuracy ratio) of the tier used as a score, so it reads
    like the score's Gini; p small = the tiers order risk as a whole."""

    somers_d: float
    p_value: float
    significant: bool


@dataclass(frozen=True, slots=True)
class RankOrdering(Result):
    # Non-increasing bad rate over the non-empty tiers, worst to best.
    monotonic: bool
    # Adjacent steps where the bad rate rises, and of those the statistically significant ones.
    violations: tuple[AdjacentTest, ...]
    significant_violations: int
    adjacent: tuple[AdjacentTest, ...]
    trend: TrendTest | None
    alpha: float


@dataclass(frozen=True, slots=True)
class TierTable(Result):
    rows: tuple[TierRow, ...]
    count: int
    bad: int
    bad_rate: float | None
    # Firms with an outcome but tier 0 (not rated): left out of every tier.
    unrated: int
    rank_ordering: RankOrdering


def _adjacent(rows: list[TierRow], alpha: float) -> list[AdjacentTest]:
    out = []
    filled = [r for r in rows if r.count]
    for lo, hi in itertools.pairwise(filled):
        table = [[lo.bad, lo.count - lo.bad], [hi.bad, hi.count - hi.bad]]
        # Odds ratio > 1 means the lower tier has the higher odds of default: the expected order.
        p_sep = float(stats.fisher_exact(table, alternative="greater").pvalue)
        p_rev = float(stats.fisher_exact(table, alternative="less").pvalue)
        lo_rate, hi_rate = lo.bad / lo.count, hi.bad / hi.count
        out.append(
            AdjacentTest(
                lower_tier=lo.tier,
                higher_tier=hi.tier,
                lower_bad_rate=lo_rate,
                higher_bad_rate=hi_rate,
                violation=hi_rate > lo_rate,
                p_separated=p_sep,
                p_reversed=p_rev,
                significant_violation=hi_rate > lo_rate and p_rev < alpha,
            )
        )
    return out


def _trend(rows: list[TierRow], alpha: float) -> TrendTest | None:
    filled = [r for r in rows if r.count]
    bad = sum(r.bad for r in filled)
    total = sum(r.count for r in filled)
    if len(filled) < 2 or bad in (0, total):
        return None
    # Rows: defaulted, not defaulted (the outcome, the conditioning variable); columns: tiers
    # worst to best. somersd gives D(column | row).
    table = np.array([[r.bad for r in filled], [r.count - r.bad for r in filled]], dtype=np.int64)
    res = stats.somersd(table, alternative="greater")
    return TrendTest(
        somers_d=float(res.statistic),
        p_value=float(res.pvalue),
        significant=bool(res.pvalue < alpha),
    )


def tier_table(
    tier: npt.ArrayLike,
    bad: npt.ArrayLike,
    *,
    n_tiers: int = DEFAULT_TIERS,
    alpha: float = DEFAULT_ALPHA,
) -> TierTable:
    """Count, defaults and bad rate per tier with the rank-ordering checks.

    `tier` and `bad` have one entry per firm with an observed outcome.
    """
    if not 0.0 < alpha < 1.0:
        raise GovernanceInputError("alpha must lie strictly between 0 and 1")
    t = as_tier_vector(tier, "tier", n_tiers)
    b = as_outcome(bad)
    same_length("tier", t, "bad", b)
    counts = np.bincount(t, minlength=n_tiers + 1)
    bads = np.bincount(t[b], minlength=n_tiers + 1)
    rated = int(counts[1:].sum())
    rated_bad = int(bads[1:].sum())
    rows = [
        TierRow(
            tier=k,
            count=int(counts[k]),
            bad=int(bads[k]),
            bad_rate=float(bads[k] / counts[k]) if counts[k] else None,
            share=float(counts[k] / rated) if rated else 0.0,
        )
        for k in range(1, n_tiers + 1)
    ]
    adjacent = _adjacent(rows, alpha)
    violations = tuple(a for a in adjacent if a.violation)
    return TierTable(
        rows=tuple(rows),
        count=rated,
        bad=rated_bad,
        bad_rate=rated_bad / rated if rated else None,
        unrated=int(counts[0]),
        rank_ordering=RankOrdering(
            monotonic=not violations,
            violations=violations,
            significant_violations=sum(a.significant_violation for a in violations),
            adjacent=tuple(adjacent),
            trend=_trend(rows, alpha),
            alpha=alpha,
        ),
    )


@dataclass(frozen=True, slots=True)
class CalibrationRow(Result):
    """One tier against its expected bad rate.

    `p_greater`: binomial test that defaults exceed the expectation (the risk a bank fears:
    the tier is riskier than promised); `p_two_sided`: that they differ either way.
    `cumulative_probability` = P(X <= bad) for X ~ Binomial(count, expected); the zone follows it.
    """

    tier: int
    count: int
    bad: int
    observed_rate: float
    expected_rate: float
    p_greater: float
    p_two_sided: float
    cumulative_probability: float
    zone: Zone


@dataclass(frozen=True, slots=True)
class Calibration(Result):
    rows: tuple[CalibrationRow, ...]
    # Tiers with an expectation but no firm, or firms but no expectation: not tested.
    untested_tiers: tuple[int, ...]
    # The worst zone of any tier (red > yellow > green); None when nothing was tested.
    zone: Zone | None
    yellow_at: float
    red_at: float
    alpha: float
    # Tiers whose defaults significantly exceed the expectation (p_greater < alpha).
    exceeding_tiers: tuple[int, ...]


def traffic_light(
    bad: int,
    count: int,
    expected_rate: float,
    *,
    yellow_at: float = YELLOW_AT,
    red_at: float = RED_AT,
) -> tuple[float, Zone]:
    """(P(X <= bad), zone) for X ~ Binomial(count, expected_rate): green below `yellow_at`,
    yellow below `red_at`, red from it. As in the Basel backtesting table: 250 trials at 1%
    give green for 0-4, yellow for 5-9, red from 10 defaults."""
    cum = float(stats.binom.cdf(bad, count, expected_rate))
    zone: Zone = "red" if cum >= red_at else "yellow" if cum >= yellow_at else "green"
    return cum, zone


def calibration(
    table: TierTable,
    expected_bad_rate: Mapping[int, float],
    *,
    yellow_at: float = YELLOW_AT,
    red_at: float = RED_AT,
    alpha: float = DEFAULT_ALPHA,
) -> Calibration:
    """Observed bad rate per tier against `expected_bad_rate` (tier -> rate in (0, 1)).

    The expectation comes from the caller: a reference period's bad rates, or targets the
    programme configured. Tiers are treated as independent (no default correlation), which
    makes the test strict in a bad year: read a red tier as "look here", not as proof.
    """
    if not 0.0 < yellow_at < red_at < 1.0:
        raise GovernanceInputError("need 0 < yellow_at < red_at < 1")
    if not 0.0 < alpha < 1.0:
        raise GovernanceInputError("alpha must lie strictly between 0 and 1")
    known = {r.tier for r in table.rows}
    for tier, expected in expected_bad_rate.items():
        if tier not in known:
            raise GovernanceInputError(f"expected bad rate given for unknown tier {tier}")
        if not 0.0 < expected < 1.0:
            raise GovernanceInputError(f"expected bad rate of tier {tier} must lie in (0, 1)")
    rows = []
    untested = []
    for r in table.rows:
        rate = expected_bad_rate.get(r.tier)
        if rate is None or r.count == 0:
            if rate is not None or r.count:
                untested.append(r.tier)
            continue
        cum, zone = traffic_light(r.bad, r.count, rate, yellow_at=yellow_at, red_at=red_at)
        rows.append(
            CalibrationRow(
                tier=r.tier,
                count=r.count,
                bad=r.bad,
                observed_rate=r.bad / r.count,
                expected_rate=float(rate),
                p_greater=float(
                    stats.binomtest(r.bad, r.count, rate, alternative="greater").pvalue
                ),
                p_two_sided=float(stats.binomtest(r.bad, r.count, rate).pvalue),
                cumulative_probability=cum,
                zone=zone,
            )
        )
    order: dict[Zone, int] = {"green": 0, "yellow": 1, "red": 2}
    worst = max((row.zone for row in rows), key=order.__getitem__, default=None)
    return Calibration(
        rows=tuple(rows),
        untested_tiers=tuple(untested),
        zone=worst,
        yellow_at=yellow_at,
        red_at=red_at,
        alpha=alpha,
        exceeding_tiers=tuple(row.tier for row in rows if row.p_greater < alpha),
    )
