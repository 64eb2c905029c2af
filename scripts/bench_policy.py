"""Policy-service benchmark: the real recompute path against PostgreSQL, and the engine at 1M.

    .venv/bin/python -m scripts.bench_policy [--size 5036] [--big 1000000] [--repeat 7]

1. A scratch database is created on the server of `POLICY_DATABASE_URL` / `DATABASE_URL` (the
   embedded PostgreSQL when neither is set), migrated with the service's Alembic history and
   seeded (7 pools + 14 policies = 21 rules). `--size` synthetic enterprises (shaped like the
   demo population, see bench_policy_engine) are stored the way a feed sync stores them.
   Then `recompute()` -- read facts from PostgreSQL, match every rule with per-criterion
   detail, COPY the rows into `policy.matches`, derive pushes -- is timed, each run its own
   committed transaction. The first run pushes everything; later runs find nothing new.
2. `--big` enterprises x 20 rules through `match_table`, the bulk evaluation the service runs
   (building the columns is not counted).
Medians are printed. The scratch database is dropped at the end.
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

from scripts.bench_policy_engine import records_from, synthetic_columns
from services.policy.app import MIGRATIONS
from services.policy.criteria import FactTable, match_table
from services.policy.definitions import compiled_rules
from services.policy.matching.service import recompute
from services.policy.matching.sync import store_evaluation
from services.policy.seed import seed
from shared.db import create_engine, create_sessionmaker
from shared.migrations import upgrade
from shared.pg import admin_execute, other_database, resolve_database_url


def _items(n: int) -> list[dict[str, Any]]:
    cols = synthetic_columns(n)
    out = []
    for i, facts in enumerate(records_from(cols, n)):
        score = facts.pop("score", None)
        out.append(
            {
                "uscc": f"91330108{i:09d}X",
                "name": f"企业{i}",
                "stage": facts.pop("stage", None),
                "total": score,
                "tier": facts.pop("tier", None),
                "percentile": facts.pop("percentile", None),
                "facts": facts,
            }
        )
    return out


async def bench_service(admin: str, size: int, repeat: int) -> None:
    name = f"policy_bench_{uuid.uuid4().hex[:8]}"
    await admin_execute(admin, f'CREATE DATABASE "{name}"')
    url = other_database(admin, name)
    engine = create_engine(url)
    try:
        upgrade(MIGRATIONS, url, "policy")
        maker = create_sessionmaker(engine)
        async with maker() as session, session.begin():
            await seed(session)
        items = _items(size)
        t0 = time.perf_counter()
        async with maker() as session, session.begin():
            await store_evaluation(session, uuid.uuid4(), 2025, "bench", 1, items=items)
        print(f"store {size:,} enterprises' facts (COPY): {time.perf_counter() - t0:.3f} s")
        runs: list[float] = []
        first: Any = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            async with maker() as session, session.begin():
                report = await recompute(session)
            runs.append(time.perf_counter() - t0)
            first = first or report
        pairs = first.rows
        print(
            f"\nrecompute: {size:,} enterprises x {len(first.rules)} rules = {pairs:,} match rows"
            f" (read facts, match with detail, COPY, pushes, commit)\n"
            f"  first run (pushes {first.pushes:,} new matches): {runs[0]:.3f} s\n"
            f"  median of {repeat - 1} later runs (nothing new to push): "
            f"{statistics.median(runs[1:]):.3f} s"
        )
        async with maker() as session, session.begin():
            t0 = time.perf_counter()
            await recompute(session, ["policy:rd_subsidy"])
        print(f"  one policy published (its {size:,} rows): {time.perf_counter() - t0:.3f} s")
    finally:
        await engine.dispose()
        await admin_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_big(n: int, repeat: int) -> None:
    rules = compiled_rules()[:20]
    table = FactTable.from_columns(synthetic_columns(n))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        match_table(rules, table)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(
        f"\nengine: {n:,} enterprises x {len(rules)} rules = {n * len(rules):,} matches: "
        f"median {med:.2f} s of {repeat} ({n * len(rules) / med / 1e6:.1f} M matches/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5036)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    configured = os.environ.get("POLICY_DATABASE_URL") or os.environ.get("DATABASE_URL")
    admin = resolve_database_url(configured, Path("var"))
    print(f"cores: {os.cpu_count()}")
    compiled_rules()
    asyncio.run(bench_service(admin, args.size, max(args.repeat, 2)))
    if args.big:
        bench_big(args.big, 3)


if __name__ == "__main__":
    main()
