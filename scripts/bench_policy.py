"""Policy-service benchmark: the real recompute path against PostgreSQL, at 5,036 and at a
million enterprises.

    .venv/bin/python -m scripts.bench_policy [--sizes 5036 1000000] [--runs 3]

For each size, a scratch database is created on the server of `POLICY_DATABASE_URL` /
`DATABASE_URL` (the embedded PostgreSQL when neither is set), migrated with the service's
Alembic history and seeded (7 pools + 14 policies; 20 of them at a million). Synthetic
enterprises (shaped like the demo population, see bench_policy_engine) are stored the way a
feed sync stores them (`store_evaluation`: facts rows and fact columns), which is timed on its
own. Then `recompute()` -- read the fact columns, match every rule, store each rule's status
and failing-criteria vectors, push what is new, commit -- is timed:

* first run: nothing matched or pushed yet, so every eligible and near match is pushed
  (the pushes and stored vectors are cleared before each of these runs);
* later runs: the same population again, nothing new to push;
* one policy published: that rule's vectors, and its pushes.

Every case prints the median and the worst of `--runs` runs, and the machine's load average
before and after. The scratch database is dropped at the end.

Then (`--catch-up N`, a million by default, 0 to skip) the real path from a published
evaluation: policy's feed consumer taking in scoring's export of N enterprises, stored,
matched and pushed (`scripts.bench_feed`: the first evaluation each run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from scripts.bench_feed import bench_catch_up
from scripts.bench_policy_engine import records_from, synthetic_columns
from services.policy.app import MIGRATIONS
from services.policy.matching.service import RecomputeReport, recompute
from services.policy.matching.sync import store_evaluation
from services.policy.seed import seed
from shared.db import create_engine, create_sessionmaker
from shared.migrations import upgrade
from shared.pg import admin_execute, other_database, resolve_database_url

BIG = 100_000  # above this, 20 rules, as the million-enterprise figure


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


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


async def _timed(
    runs: int, once: Callable[[], Awaitable[RecomputeReport]], before: Callable[[], Awaitable[None]]
) -> tuple[list[float], RecomputeReport]:
    times: list[float] = []
    report: RecomputeReport | None = None
    for _ in range(runs):
        await before()
        t0 = time.perf_counter()
        report = await once()
        times.append(time.perf_counter() - t0)
    assert report is not None
    return times, report


def _line(label: str, times: list[float], load: tuple[str, str], extra: str = "") -> None:
    print(
        f"  {label:<44} median {statistics.median(times):7.3f} s, worst {max(times):7.3f} s"
        f"  (load {load[0]} -> {load[1]}){extra}"
    )


async def bench_size(admin: str, size: int, runs: int) -> None:
    name = f"policy_bench_{uuid.uuid4().hex[:8]}"
    await admin_execute(admin, f'CREATE DATABASE "{name}"')
    url = other_database(admin, name)
    engine = create_engine(url)
    try:
        upgrade(MIGRATIONS, url, "policy")
        maker = create_sessionmaker(engine)
        async with maker() as session, session.begin():
            await seed(session)
            if size > BIG:
                # The figure is for 20 rules: the last seeded policy is left out.
                await session.execute(
                    text(
                        "UPDATE policy.policy_versions SET status = 'archived' WHERE policy_id = "
                        "(SELECT id FROM policy.policies ORDER BY code DESC LIMIT 1)"
                    )
                )
        t0 = time.perf_counter()
        items = _items(size)
        generated = time.perf_counter() - t0
        load = _load()
        t0 = time.perf_counter()
        async with maker() as session, session.begin():
            await store_evaluation(session, uuid.uuid4(), 2025, "bench", 1, items=items)
        stored = time.perf_counter() - t0
        del items
        print(
            f"\n{size:,} enterprises: generated in {generated:.1f} s; stored as a sync stores "
            f"them (facts rows + fact columns) in {stored:.2f} s (load {load} -> {_load()})"
        )

        async def full() -> RecomputeReport:
            async with maker() as session, session.begin():
                return await recompute(session)

        async def one_policy() -> RecomputeReport:
            async with maker() as session, session.begin():
                return await recompute(session, ["policy:rd_subsidy"])

        async def forget() -> None:
            async with maker() as session, session.begin():
                await session.execute(
                    text("TRUNCATE policy.push_sets, policy.push_batches, policy.push_reads")
                )
                await session.execute(text("DELETE FROM policy.rule_matches"))

        async def nothing() -> None:
            return None

        async def unpush_policy() -> None:
            async with maker() as session, session.begin():
                # Pushes are stored per enterprise across rules: all of them go, so that the
                # policy's pushes are made again (the lookup of earlier pushes finds none).
                await session.execute(
                    text("TRUNCATE policy.push_sets, policy.push_batches, policy.push_reads")
                )
                await session.execute(
                    text("DELETE FROM policy.rule_matches WHERE rule_key = 'policy:rd_subsidy'")
                )

        load0 = _load()
        first, report = await _timed(runs, full, forget)
        load1 = _load()
        pairs = report.enterprises * len(report.rules)
        print(
            f"recompute: {report.enterprises:,} enterprises x {len(report.rules)} rules = "
            f"{pairs:,} matches (read fact columns, match, store vectors, pushes, commit)"
        )
        _line(f"first run (pushes {report.pushes:,})", first, (load0, load1))
        later, report = await _timed(runs, full, nothing)
        _line(f"later runs (pushes {report.pushes:,})", later, (load1, _load()))
        load2 = _load()
        published, report = await _timed(runs, one_policy, unpush_policy)
        _line(f"one policy published (pushes {report.pushes:,})", published, (load2, _load()))
    finally:
        await engine.dispose()
        await admin_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5036, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--catch-up",
        type=int,
        default=1_000_000,
        help="enterprises of the feed catch-up from a published run (scripts.bench_feed); 0: none",
    )
    args = parser.parse_args()
    configured = os.environ.get("POLICY_DATABASE_URL") or os.environ.get("DATABASE_URL")
    admin = resolve_database_url(configured, Path("var"))
    print(f"cores: {os.cpu_count()}")
    for size in args.sizes:
        asyncio.run(bench_size(admin, size, max(args.runs, 3)))
    if args.catch_up:
        print(f"\nfeed catch-up from a published evaluation (load {_load()})")
        asyncio.run(bench_catch_up(args.catch_up, max(args.runs, 3), ("policy",)))
        print(f"load after {_load()}")


if __name__ == "__main__":
    main()
