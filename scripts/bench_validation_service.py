"""The validation API's own path at scale: what the service does besides the statistics.

    .venv/bin/python -m scripts.bench_validation_service [--size 1000000] [--runs 3]

`make bench-validation` times `validate()` on arrays; a request for a validation that is not
stored yet also reads both periods' scores from PostgreSQL (`run_columns`: one COPY each, parsed
by pyarrow), parses credit's outcomes answer (`Outcomes.of`) and aligns it with the firms, then
computes the report (`compute`: groupings, fairness metrics, `validate`, the JSON form). This
script loads `--size` demo firms for two periods into a scratch database with the bulk loader,
evaluates both with the engine (setup, not timed), and times that whole path; credit's answer is
synthesised in memory with an outcome for every firm (the hardest case), so credit's own query
and the HTTP transfer are not in the figure. Load average before and after, median and worst of
`--runs`, peak RSS of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy import select

from devtools.demo import from_demo, generate
from scripts.bench_validation import peak_rss_mib
from services.scoring.app import MIGRATIONS
from services.scoring.evaluations.service import create_run, execute_run
from services.scoring.imports.bulk import bulk_load
from services.scoring.models import EvaluationRun
from services.scoring.specs.service import seed_default_spec
from services.scoring.specs.spec import DEFAULT_MODEL
from services.scoring.validations.outcomes import Outcomes
from services.scoring.validations.repository import run_columns
from services.scoring.validations.service import Knobs, compute
from shared.db import asyncpg_url, create_engine, create_sessionmaker, plain_url
from shared.migrations import upgrade
from shared.pg import embedded_url, other_database

PERIODS = (2024, 2025)


def _answer(uscc: list[str], period: int, seed: int) -> dict[str, Any]:
    """Credit's performance answer as its JSON decodes: an outcome for every firm."""
    rng = np.random.default_rng(seed)
    bad = rng.random(len(uscc)) < 0.035
    decided = rng.random(len(uscc)) < 0.3
    approved = decided & (rng.random(len(uscc)) < 0.8)
    return {
        "period": period,
        "snapshot": f"bench-{period}",
        "window_start": f"{period + 1}-01-01",
        "window_end": f"{period + 1}-12-31",
        "definition": "90+ days past due or default within the window",
        "synthetic": True,
        "last_outcome_id": len(uscc),
        "items": [{"uscc": u, "bad": bool(b)} for u, b in zip(uscc, bad.tolist(), strict=True)],
        "approved": [u for u, a in zip(uscc, approved.tolist(), strict=True) if a],
        "rejected": [
            u
            for u, d, a in zip(uscc, decided.tolist(), approved.tolist(), strict=True)
            if d and not a
        ],
        "lines_run_id": None,
        "with_line": [],
    }


async def _setup(maker: Any, engine: Any, size: int) -> list[uuid.UUID]:
    async with maker() as session, session.begin():
        await seed_default_spec(session)
    data = generate(size, seed=20200908, periods=PERIODS)
    run_ids = []
    for period in PERIODS:
        async with maker() as session, session.begin():
            await bulk_load(session, from_demo(data, period))
        async with maker() as session, session.begin():
            run = await create_run(session, period, "1.0", "bench")
            run_ids.append(run.id)
        await execute_run(engine, run.id)
    return run_ids


async def _one(maker: Any, run_ids: list[uuid.UUID], answers: list[dict[str, Any]]) -> float:
    t = time.perf_counter()
    async with maker() as session:
        ref_run = await session.get(EvaluationRun, run_ids[0])
        cur_run = await session.get(EvaluationRun, run_ids[1])
        assert ref_run is not None and cur_run is not None
        cur = await run_columns(session, cur_run)
        ref = await run_columns(session, ref_run)
    outcomes, ref_outcomes = Outcomes.of(answers[1]), Outcomes.of(answers[0])
    body = await asyncio.to_thread(
        compute, cur, outcomes, ref, ref_outcomes, Knobs().config(len(DEFAULT_MODEL.tier_bands))
    )
    elapsed = time.perf_counter() - t
    assert body["auc"] is not None and body["psi"] is not None
    return elapsed


async def _prepared(maker: Any) -> list[uuid.UUID]:
    async with maker() as session:
        runs = (
            await session.execute(
                select(EvaluationRun.id)
                .where(EvaluationRun.period.in_(PERIODS), EvaluationRun.status == "completed")
                .order_by(EvaluationRun.period)
            )
        ).scalars()
        return list(runs)


async def bench(size: int, runs: int, server_url: str, database: str | None, keep: bool) -> None:
    name = database or f"ip_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(plain_url(server_url))
    if database is None:
        await admin.execute(f'CREATE DATABASE "{name}"')
    url = other_database(server_url, name)
    try:
        engine = create_engine(url, pool_size=2)
        maker = create_sessionmaker(engine)
        if database is None:
            upgrade(MIGRATIONS, url, "scoring")
            t = time.perf_counter()
            run_ids = await _setup(maker, engine, size)
            print(f"setup              {time.perf_counter() - t:.1f} s (load, evaluate 2 periods)")
        else:
            run_ids = await _prepared(maker)
        async with maker() as session:
            answers = []
            for period, run_id in zip(PERIODS, run_ids, strict=True):
                run = await session.get(EvaluationRun, run_id)
                assert run is not None
                cols = await run_columns(session, run)
                answers.append(_answer(cols.uscc.tolist(), period, period))
        size = len(answers[-1]["items"])
        load_before = os.getloadavg()
        times = [await _one(maker, run_ids, answers) for _ in range(max(1, runs))]
        load_after = os.getloadavg()
        await engine.dispose()
    finally:
        if keep or database:
            print(f"database kept      {name}")
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    each = ", ".join(f"{x:.2f}" for x in times)
    print(f"enterprises        {size:,} x 2 periods, an outcome for every firm")
    print(f"validation path    median {statistics.median(times):.2f} s, worst {max(times):.2f} s")
    print(f"                   (runs: {each})")
    print(f"load average       before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"peak RSS           {peak_rss_mib():,.0f} MiB ({os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", help="reuse a database kept by --keep (no setup)")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    server_url = asyncpg_url(server) if server else embedded_url(Path("var/pgdata"))
    asyncio.run(bench(args.size, args.runs, server_url, args.database, args.keep))


if __name__ == "__main__":
    main()
