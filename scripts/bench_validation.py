"""Model-validation benchmark: `validate` over synthetic enterprises in two periods.

    .venv/bin/python -m scripts.bench_validation [--size 1000000] [--runs 3] [--resamples 1000]

Target: under 10 s for 1,000,000 scored enterprises with outcomes, the full validation:
discrimination with bootstrap intervals and curves, bad rate by tier with rank ordering and
calibration, PSI of the total and CSI of 24 indicators and 4 dimensions, migration and
concentration, fairness of 5 metrics over 4 groupings, and the sha256 of every input.

The synthetic relation (documented so the figures can be read):
* each firm has a latent quality q ~ N(0, 1), persistent: q' = 0.9 q + sqrt(0.19) e next period;
* indicator k = exp(0.6 q + N(0, 1)), 8% missing (NaN); in the current period rd_expense and
  equity_raised drift upwards (log shifts 0.45 and 0.8: CSI "watch" and "act");
* dimension d = its points share x Phi(q + N(0, 0.8)); total = sum of the 4, rounded to 2
  decimals (the published precision), so the score measures q with noise;
* tier: 5 tiers by rank of the total within the stage (10/22.5/35/22.5/10%, best 10% tier 5);
* default: P(bad) = 1 / (1 + exp(3.6 + 0.9 q)), about 3.5% overall, falling with quality;
  every firm has an observed outcome (the hardest case for the bootstrap);
* groupings: stage (5, from revenue), industry (40), district (180 区县), firm age band from a
  founding date; a "line at or above the base" flag, an application (30%) and its approval
  (more likely with a higher score).

Timings are wall-clock medians and worst of the runs; the load average is printed before and
after because the machine may be shared; peak RSS is the whole process (inputs included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES, STAGES
from services.scoring.governance import (
    FairnessMetric,
    Grouping,
    PeriodScores,
    ValidationConfig,
    ValidationReport,
    age_bands,
    validate,
)

# Shares of the total per dimension (input, output, growth, auxiliary), as the growth stage.
DIMENSION_POINTS = (30.0, 30.0, 25.0, 15.0)
TIER_BANDS = (0.10, 0.225, 0.35, 0.225, 0.10)  # best tier first, as ModelSpec.tier_bands
MISSING_SHARE = 0.08
# Log-scale shifts of some indicators in the current period, so CSI flags all three levels.
DRIFT = {"rd_expense": 0.45, "equity_raised": 0.8}


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux and bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class Synthetic:
    reference: PeriodScores
    current: PeriodScores
    bad: np.ndarray
    groupings: dict[str, Grouping]
    metrics: list[FairnessMetric]
    expected: dict[int, float]


def _tiers(total: np.ndarray, stage: np.ndarray) -> np.ndarray:
    """Tier by rank within stage: the share of the stage cohort at or above a firm's total."""
    tier = np.zeros(total.size, dtype=np.int64)
    bounds = np.cumsum(TIER_BANDS)  # share from the top at which each tier ends
    for s in np.unique(stage):
        idx = np.flatnonzero(stage == s)
        order = np.argsort(-total[idx], kind="stable")
        top_share = np.empty(idx.size)
        top_share[order] = (np.arange(idx.size) + 1) / idx.size
        # tier 5 while top_share <= 0.10, tier 4 up to 0.325, ...
        tier[idx] = 5 - np.searchsorted(bounds, top_share - 1e-12, side="left")
    return tier


def _period(
    rng: np.random.Generator,
    q: np.ndarray,
    stage: np.ndarray,
    period: int,
    ids: np.ndarray,
    drift: dict[str, float],
) -> PeriodScores:
    n = q.size
    chars: dict[str, np.ndarray] = {}
    for code in INDICATOR_CODES:
        v = np.exp(0.6 * q + rng.normal(drift.get(code, 0.0), 1.0, n))
        v[rng.random(n) < MISSING_SHARE] = np.nan
        chars[code] = v
    dims = []
    for dim, points in zip(DIMENSIONS, DIMENSION_POINTS, strict=True):
        d = points * ndtr(q + rng.normal(0.0, 0.8, n))
        chars[f"dimension:{dim.value}"] = d
        dims.append(d)
    total = np.round(np.sum(dims, axis=0), 2)
    return PeriodScores(
        period=period,
        run_id=f"00000000-0000-4000-8000-{period:012d}",
        enterprise_ids=ids,
        score=total,
        tier=_tiers(total, stage),
        characteristics=chars,
        run_fingerprint=None,
    )


def synthetic(n: int, seed: int) -> Synthetic:
    rng = np.random.default_rng(seed)
    q_before = rng.normal(0.0, 1.0, n)
    q_now = 0.9 * q_before + np.sqrt(0.19) * rng.normal(0.0, 1.0, n)
    revenue = np.exp(rng.normal(np.log(800.0), 1.8, n) + 0.3 * q_now)  # 万元
    stage = np.searchsorted([50.0, 500.0, 2000.0, 10000.0], revenue, side="right")
    ids = np.arange(n, dtype=np.int64) * 7 + 11  # stand-ins for enterprise keys
    # 3% of last year's firms are gone and as many are new: migration pairs the rest.
    before_ids = np.where(rng.random(n) < 0.03, -ids, ids)
    reference = _period(rng, q_before, stage, 2024, before_ids, {})
    current = _period(rng, q_now, stage, 2025, ids, DRIFT)
    bad = (rng.random(n) < 1.0 / (1.0 + np.exp(3.6 + 0.9 * q_now))).astype(np.float64)

    founded = np.datetime64("2025-12-31") - rng.gamma(2.0, 2500.0, n).astype("timedelta64[D]")
    founded[rng.random(n) < 0.01] = np.datetime64("NaT")
    groupings = {
        "stage": Grouping.of(stage, [s.value for s in STAGES]),
        "industry": Grouping.of(rng.integers(0, 40, n), [f"industry-{i:02d}" for i in range(40)]),
        "district": Grouping.of(
            np.minimum(rng.geometric(0.02, n) - 1, 179), [f"district-{i:03d}" for i in range(180)]
        ),
        "age_band": age_bands(founded, dt.date(2025, 12, 31)),
    }
    score = np.asarray(current.score, dtype=np.float64)
    tier = np.asarray(current.tier)
    applied = rng.random(n) < 0.3
    approved = rng.random(n) < ndtr((score - 50.0) / 10.0)
    metrics = [
        FairnessMetric("mean_score", score),
        FairnessMetric("top_tier_share", (tier >= 4).astype(np.float64)),
        FairnessMetric("line_at_or_above_base", (rng.random(n) < 0.96).astype(np.float64)),
        FairnessMetric("approval_rate", np.where(applied, approved, np.nan)),
        FairnessMetric("default_rate", bad, direction="lower_is_better"),
    ]
    expected = {1: 0.10, 2: 0.05, 3: 0.025, 4: 0.012, 5: 0.006}
    return Synthetic(reference, current, bad, groupings, metrics, expected)


def run(data: Synthetic, config: ValidationConfig) -> ValidationReport:
    return validate(
        "bench-1",
        data.current,
        data.bad,
        reference=data.reference,
        expected_bad_rate=data.expected,
        groupings=data.groupings,
        fairness_metrics=data.metrics,
        config=config,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20251231)
    args = parser.parse_args()

    started = time.perf_counter()
    data = synthetic(args.size, args.seed)
    print(f"enterprises        {args.size:,} x 2 periods, 24 indicators + 4 dimensions")
    print(f"generate           {time.perf_counter() - started:.2f} s")
    config = ValidationConfig(resamples=args.resamples)

    load_before = os.getloadavg()
    walls, cpus = [], []
    report = None
    for _ in range(max(1, args.runs)):
        report = None  # one report alive at a time
        t0, c0 = time.perf_counter(), time.process_time()
        report = run(data, config)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    load_after = os.getloadavg()
    assert report is not None

    runs = ", ".join(f"{w:.2f}" for w in walls)
    print(f"validate           median {statistics.median(walls):.2f} s, worst {max(walls):.2f} s")
    print(f"                   (runs: {runs}; CPU median {statistics.median(cpus):.2f} s)")
    print(f"load average       before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"peak RSS           {peak_rss_mib():,.0f} MiB ({os.cpu_count()} CPUs)")
    d = report.discrimination
    if d is not None and d.auc_ci is not None and d.ks_ci is not None:
        print(
            f"auc {d.auc:.4f} [{d.auc_ci.low:.4f}, {d.auc_ci.high:.4f}]  "
            f"ks {d.ks:.4f} [{d.ks_ci.low:.4f}, {d.ks_ci.high:.4f}]  gini {d.gini:.4f}  "
            f"({d.distinct_scores:,} distinct scores, {d.resamples} resamples)"
        )
    print(
        "bad rate by tier   "
        + "  ".join(f"{r.tier}: {r.bad_rate:.4f}" for r in report.tiers if r.bad_rate is not None)
    )
    if report.stability is not None:
        flags = [c.flag for c in report.characteristics]
        print(
            f"psi                {report.stability.psi:.4f} ({report.stability.flag}); "
            f"csi flags {dict((f, flags.count(f)) for f in sorted(set(flags)))}"
        )
    flagged = sum(len(m.flagged_groups) for f in report.fairness for m in f.metrics)
    print(f"fairness           {len(report.fairness)} groupings, {flagged} flagged group-metrics")


if __name__ == "__main__":
    main()
