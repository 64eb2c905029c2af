"""Policy-engine benchmark: every seeded pool and policy against synthetic enterprises.

    .venv/bin/python -m scripts.bench_policy_engine [--sizes 5036 1000000] [--workers 2]

Facts are random but shaped like the demo population (revenue log-normal across the five
stages, ~5% of every value missing, qualifications and negative flags at plausible rates), so
every status occurs. Timings are medians; building the columns is not counted in matching,
turning 5,036 fact dicts into columns is reported separately, as is the detailed
one-enterprise path for the same 5,036.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt

from contracts.catalogue import NEGATIVE_FLAGS, QUALIFICATIONS, STAGES
from services.policy.criteria import (
    FACTS,
    STATUSES,
    CompiledRule,
    FactTable,
    match_table,
)
from services.policy.definitions import compiled_rules

MISSING_SHARE = 0.05


def synthetic_columns(n: int, seed: int = 7) -> dict[str, npt.NDArray[np.generic]]:
    rng = np.random.default_rng(seed)
    revenue = np.exp(rng.normal(np.log(800.0), 1.8, n))  # 万元; median 8M CNY
    employees = np.maximum(1.0, np.round(np.exp(rng.normal(np.log(40.0), 1.0, n))))
    rd_intensity = np.clip(rng.gamma(2.0, 2.5, n), 0.0, 100.0)
    cols: dict[str, npt.NDArray[np.generic]] = {
        "operating_revenue": revenue,
        "main_business_revenue": revenue * rng.uniform(0.6, 1.0, n),
        "total_assets": revenue * rng.uniform(0.5, 3.0, n),
        "employees": employees,
        "st_staff": np.round(employees * rng.beta(2.0, 5.0, n)),
        "rd_expense": revenue * rd_intensity / 100.0,
        "rd_intensity": rd_intensity,
        "rd_ratio_3y": np.clip(rd_intensity * rng.uniform(0.7, 1.3, n), 0.0, 100.0),
        "rd_cost_ratio": np.clip(rd_intensity * rng.uniform(1.0, 4.0, n), 0.0, 100.0),
        "rd_domestic_share": rng.uniform(40.0, 100.0, n),
        "rd_growth": rng.normal(10.0, 30.0, n),
        "rd_staff_share": rng.uniform(0.0, 80.0, n),
        "hightech_revenue": revenue * rng.beta(3.0, 2.0, n),
        "invention_patents": rng.poisson(1.5, n).astype(np.float64),
        "invention_patents_granted": rng.poisson(0.4, n).astype(np.float64),
        "class2_ip": rng.poisson(4.0, n).astype(np.float64),
        "pct_filings": rng.poisson(0.1, n).astype(np.float64),
        "standards": rng.poisson(0.2, n).astype(np.float64),
        "st_awards": rng.poisson(0.1, n).astype(np.float64),
        "graduates_hired": rng.poisson(3.0, n).astype(np.float64),
        "revenue_growth": rng.normal(15.0, 25.0, n),
        "revenue_growth_prev": rng.normal(15.0, 25.0, n),
        "headcount_growth": rng.normal(5.0, 15.0, n),
        "new_equity_2y": np.where(rng.random(n) < 0.1, rng.exponential(5000.0, n), 0.0),
        "valuation_usd_m": np.where(rng.random(n) < 0.02, rng.exponential(400.0, n), np.nan),
        "debt_ratio": rng.uniform(10.0, 90.0, n),
        "main_business_share": rng.uniform(50.0, 100.0, n),
        "niche_years": rng.integers(0, 15, n).astype(np.float64),
        "niche_market_share": rng.exponential(5.0, n),
        "rd_platform": (rng.random(n) < 0.08).astype(np.float64),
        "listed": (rng.random(n) < 0.02).astype(np.float64),
        "private_funded": (rng.random(n) < 0.9).astype(np.float64),
        "major_incident": (rng.random(n) < 0.01).astype(np.float64),
        "age_years": rng.uniform(0.0, 20.0, n),
        "score": np.clip(rng.normal(55.0, 15.0, n), 0.0, 100.0),
        "percentile": rng.random(n),
        "tier": rng.integers(1, 6, n).astype(np.float64),
    }
    cols["stage"] = np.searchsorted([50.0, 500.0, 2000.0, 10000.0], revenue, side="right").astype(
        np.float64
    )
    for code, values in list(cols.items()):
        holes = rng.random(n) < MISSING_SHARE
        cols[code] = np.where(holes, np.nan, values.astype(np.float64))
    rates = {"hnte": 0.2, "st_sme": 0.4, "srdi": 0.1, "little_giant": 0.01, "gazelle": 0.03}
    quals = np.zeros(n, dtype=np.int64)
    for i, tag in enumerate(QUALIFICATIONS):
        quals |= np.where(rng.random(n) < rates.get(tag, 0.01), 1 << i, 0)
    flags = np.zeros(n, dtype=np.int64)
    for i, _ in enumerate(NEGATIVE_FLAGS):
        flags |= np.where(rng.random(n) < 0.01, 1 << i, 0)
    cols["qualifications"] = np.where(rng.random(n) < MISSING_SHARE, -1, quals)
    cols["negative_flags"] = np.where(rng.random(n) < MISSING_SHARE, -1, flags)
    return cols


def records_from(cols: dict[str, npt.NDArray[np.generic]], n: int) -> list[dict[str, object]]:
    """The same facts as fact dicts, the shape the detailed path and `from_records` take."""
    out: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {}
        for code, col in cols.items():
            spec = FACTS[code]
            v = col[i]
            if spec.type == "tags":
                if v >= 0:
                    row[code] = [t for b, t in enumerate(spec.values) if int(v) >> b & 1]
            elif not np.isnan(v):
                if spec.type == "enum":
                    row[code] = STAGES[int(v)].value
                elif spec.type == "bool":
                    row[code] = bool(v)
                else:
                    row[code] = float(v)
        out.append(row)
    return out


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _with_detail(rules: tuple[CompiledRule, ...], table: FactTable) -> None:
    for r in rules:
        r.evaluate_table(table, detail=True)


def report_counts(rules: tuple[CompiledRule, ...], status: dict[str, npt.NDArray[np.int8]]) -> None:
    print(f"  {'rule':32} " + " ".join(f"{s:>10}" for s in STATUSES))
    for r in rules:
        bins = np.bincount(status[r.id], minlength=len(STATUSES))
        print(f"  {r.id:32} " + " ".join(f"{int(b):>10}" for b in bins))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5036, 1_000_000])
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    t0 = time.perf_counter()
    compiled_rules.cache_clear()
    rules = compiled_rules()
    print(f"compile {len(rules)} rules (pools + policies): {time.perf_counter() - t0:.3f} s")
    print(f"cores: {os.cpu_count()}, threads for matching: {args.workers}")

    for n in args.sizes:
        cols = synthetic_columns(n)
        table = FactTable.from_columns(cols)
        repeat = 15 if n <= 20_000 else 3
        one = median_seconds(partial(match_table, rules, table, workers=1), repeat)
        many = median_seconds(partial(match_table, rules, table, workers=args.workers), repeat)
        pairs = n * len(rules)
        print(
            f"\n{n:,} enterprises x {len(rules)} rules = {pairs:,} matches "
            f"(median of {repeat}):\n"
            f"  1 thread:  {one:.3f} s ({pairs / one / 1e6:.1f} M matches/s)\n"
            f"  {args.workers} threads: {many:.3f} s ({pairs / many / 1e6:.1f} M matches/s)"
        )
        if n <= 20_000:
            records = records_from(cols, n)
            build = median_seconds(partial(FactTable.from_records, records), 5)
            print(f"  FactTable.from_records for {n:,} fact dicts: {build:.3f} s")
            detail = median_seconds(partial(_with_detail, rules, table), repeat)
            print(f"  bulk with per-criterion results and gaps: {detail:.3f} s")
            t0 = time.perf_counter()
            for row in records:
                for r in rules:
                    r.evaluate(row)
            print(
                f"  detailed one-enterprise path, all {pairs:,} outcomes: "
                f"{time.perf_counter() - t0:.2f} s"
            )
            report_counts(rules, match_table(rules, table))


if __name__ == "__main__":
    main()
