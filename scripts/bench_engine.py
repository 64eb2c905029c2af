"""Scoring-engine benchmark: `evaluate` on demo enterprises, median of several runs.

    .venv/bin/python -m scripts.bench_engine [--size 1000000] [--repeat 3]

The input is the deterministic demo population (devtools/demo/), so the cohorts,
ties, zeros and gaps are the realistic ones. Generation and the fingerprint are timed
separately; peak RSS is that of the whole process (input + result + working arrays).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

from devtools.demo import engine_input, generate
from services.scoring.engine import evaluate, fingerprint


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux and bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20200908)
    args = parser.parse_args()

    started = time.perf_counter()
    data = generate(args.size, seed=args.seed, periods=(2024,))
    inp = engine_input(data, 2024)
    generated = time.perf_counter() - started
    print(f"enterprises        {args.size:,} x 24 indicators ({os.cpu_count()} CPUs)")
    print(f"generate           {generated:.2f} s   (peak RSS so far {peak_rss_mib():,.0f} MiB)")

    timings, cpu = [], []
    result = None
    for _ in range(args.repeat):
        result = None  # one result alive at a time, as in the service
        started, cpu_started = time.perf_counter(), time.process_time()
        result = evaluate(inp)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    assert result is not None
    runs = ", ".join(f"{t:.2f}" for t in timings)
    print(f"evaluate           median {statistics.median(timings):.2f} s   (runs: {runs})")
    # CPU seconds over all threads: what the run costs when the machine is shared.
    print(f"evaluate CPU       median {statistics.median(cpu):.2f} s")

    started = time.perf_counter()
    digest = fingerprint(inp)
    print(f"fingerprint        {time.perf_counter() - started:.2f} s   {digest[:16]}...")
    scored = int(result.scored.sum())
    cohorts = {k: v["size"] for k, v in result.cohort_stats.items()}
    print(f"scored             {scored:,} of {args.size:,}; cohorts {cohorts}")
    print(f"peak RSS           {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
