"""Credit benchmark: lines computed when read, and idempotency under concurrent duplicates.

    .venv/bin/python -m scripts.bench_credit [--sizes 5036 1000000] [--repeat 5]

Runs against DATABASE_URL (else the embedded PostgreSQL) in a scratch database migrated by
the credit service's real Alembic history, so the three seeded products are the pilot's.

1. Lines: a synthetic published evaluation (five stages, uniform within-stage percentiles,
   0.5% on the negative list) is copied into `credit.enterprise_scores` (its run's partition).
   Lines are not stored: the view `credit.credit_lines` computes them when read, so what
   replaces the recomputation of issue 11 is reading them. Timed: every line of every
   enterprise x every published product read through the view (count and sum: the whole
   computation in the server, nothing sent), and one enterprise's lines (what an offer
   reads; 200 enterprises, the median per read). The rule in Python one pair at a time
   (`compute_lines`, the reference) is timed too, and its lines must be the view's. Median
   and worst of --repeat runs (3 for a million), with the load average before and after.
3. (`--catch-up N`, a million by default, 0 to skip) the real path from a published
   evaluation: credit's feed consumer taking in scoring's export of N enterprises, its
   scores stored (`scripts.bench_feed`: each over the previous evaluation).
2. Idempotency: the credit app in-process (its real lifespan, pool and database); 200
   concurrent POST /v1/applications with one Idempotency-Key, by one enterprise; exactly one
   application must exist afterwards and all 200 answers must carry its id.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from joserfc.jwk import KeySet

from scripts.bench_feed import bench_catch_up
from services.credit.app import MIGRATIONS, create_app
from services.credit.common import raw_connection
from services.credit.evaluations.sync import SCORE_COLUMNS
from services.credit.lines.rules import ScoreFacts, compute_lines
from services.credit.lines.service import published_rules
from services.credit.settings import CreditSettings
from shared import partitions
from shared.app import Overrides
from shared.auth.keys import generate_key
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import JwksCache, TokenIssuer
from shared.db import create_engine, create_sessionmaker, plain_url
from shared.migrations import upgrade
from shared.pg import other_database, resolve_database_url

STAGES = ("seed", "seedling", "growth", "expansion", "mature")
STAGE_SHARE = (0.20, 0.35, 0.22, 0.15, 0.08)
ISSUER = "innovation-points-gateway"
SEEDED_PRODUCT = "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01"


def synthetic_scores(n: int, run_id: uuid.UUID, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    stages = rng.choices(STAGES, weights=STAGE_SHARE, k=n)
    rows = []
    for i, stage in enumerate(stages):
        excluded = rng.random() < 0.005
        pct = rng.random()
        tier = min(5, 1 + int(pct * 5))
        rows.append(
            (
                run_id,
                f"91330108{i:010d}",
                f"企业{i}",
                stage,
                not excluded,
                "negative_list:serious_dishonesty" if excluded else None,
                None if excluded else round(40 + 60 * pct, 2),
                None,
                None,
                None if excluded else pct,
                None if excluded else tier,
            )
        )
    return rows


async def load_evaluation(url: str, n: int) -> uuid.UUID:
    """A synthetic published evaluation of `n` enterprises, replacing the previous one."""
    run_id = uuid.uuid4()
    conn = await asyncpg.connect(plain_url(url))
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM credit.evaluations")
            await conn.execute(
                "INSERT INTO credit.evaluations (run_id, period, model_version, event_id, "
                "enterprise_count, scored_count) VALUES ($1, 2025, 'bench', 1, $2, $2)",
                run_id,
                n,
            )
            table = await partitions.fresh_run_partition(
                conn, "credit", "enterprise_scores", run_id
            )
            await conn.copy_records_to_table(
                table,
                schema_name="credit",
                columns=SCORE_COLUMNS,
                records=synthetic_scores(n, run_id),
            )
            await partitions.attach_run_partition(
                conn, "credit", "enterprise_scores", table, run_id
            )
            await partitions.drop_other_runs(conn, "credit", "enterprise_scores", run_id)
        await conn.execute("ANALYZE credit.enterprise_scores")
    finally:
        await conn.close()
    return run_id


def _load() -> float:
    return os.getloadavg()[0]


def _stats(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s, worst {max(times):.3f} s"


async def bench_lines(url: str, n: int, repeat: int) -> dict[str, Any]:
    await load_evaluation(url, n)
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    every: list[float] = []
    one: list[float] = []
    pure: list[float] = []
    lines = covered_share = 0.0
    load_before = _load()
    try:
        async with maker() as session:
            conn = await raw_connection(session)
            sample = [
                r[0]
                for r in await conn.fetch(
                    "SELECT uscc FROM credit.enterprise_scores ORDER BY md5(uscc) LIMIT 200"
                )
            ]
            for _ in range(repeat):
                started = time.perf_counter()
                lines, _total = await conn.fetchrow(
                    "SELECT count(*), sum(amount) FROM credit.credit_lines"
                )
                every.append(time.perf_counter() - started)
                reads = []
                for uscc in sample:
                    started = time.perf_counter()
                    await conn.fetch(
                        "SELECT product_id, amount, band FROM credit.credit_lines WHERE uscc = $1",
                        uscc,
                    )
                    reads.append(time.perf_counter() - started)
                one.append(statistics.median(reads))
        load_after = _load()
        async with maker() as session:
            rules = await published_rules(session)
            conn = await raw_connection(session)
            rows = await conn.fetch(
                "SELECT uscc, stage, scored, exclusion, percentile, tier "
                "FROM credit.enterprise_scores"
            )
            scores = [ScoreFacts(*r) for r in rows]
        scored = sum(1 for s in scores if s.scored)
        for _ in range(repeat):
            started = time.perf_counter()
            computed = list(compute_lines(scores, rules))
            pure.append(time.perf_counter() - started)
        assert len(computed) == lines, (len(computed), lines)
        best: dict[str, int] = {}
        for ln in computed:
            best[ln.uscc] = max(best.get(ln.uscc, 0), ln.amount)
        covered_share = sum(1 for a in best.values() if a >= 500_000) / scored
    finally:
        await engine.dispose()
    return {
        "enterprises": n,
        "products": len(rules),
        "lines": lines,
        "every": every,
        "one": one,
        "compute_only": pure,
        "coverage": covered_share,
        "load": (load_before, load_after),
    }


async def bench_idempotency(url: str, concurrency: int, rounds: int) -> dict[str, float]:
    await load_evaluation(url, 5036)
    issuer = TokenIssuer(KeySet([generate_key()]), ISSUER)
    settings = CreditSettings(
        database_url=url, environment="test", sync_interval=0, outbox_interval=0
    )
    app = create_app(settings, Overrides(jwks=JwksCache.static(issuer.jwks())))
    walls: list[float] = []
    created = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        for r in range(rounds):
            uscc = f"91330108{r:010d}"
            token = issuer.mint(
                Principal(sub=uscc, kind=PrincipalKind.ENTERPRISE, uscc=uscc), "credit"
            )
            key = uuid.uuid4().hex
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://credit",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                timeout=120,
            ) as client:
                started = time.perf_counter()
                answers = await asyncio.gather(
                    *[
                        client.post(
                            "/v1/applications",
                            json={"product_id": SEEDED_PRODUCT, "amount": 100_000},
                        )
                        for _ in range(concurrency)
                    ]
                )
                walls.append(time.perf_counter() - started)
            statuses = {a.status_code for a in answers}
            ids = {a.json().get("id") for a in answers}
            conn = await asyncpg.connect(plain_url(url))
            try:
                count = await conn.fetchval(
                    "SELECT count(*) FROM credit.applications WHERE uscc = $1", uscc
                )
            finally:
                await conn.close()
            if statuses != {201} or len(ids) != 1 or count != 1:
                raise SystemExit(
                    f"idempotency broken: statuses {statuses}, ids {len(ids)}, rows {count}"
                )
            created += count
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "applications_per_round": created / rounds,
        "wall_s": statistics.median(walls),
    }


async def main_async(sizes: list[int], repeat: int) -> None:
    admin = resolve_database_url(os.environ.get("DATABASE_URL"), Path("var"))
    name = f"credit_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(plain_url(admin))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = other_database(admin, name)
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, url, "credit")
        print("Credit lines, computed when read:")
        for n in sizes:
            r = await bench_lines(url, n, repeat if n < 100_000 else 3)
            print(
                f"  {r['enterprises']:>9,} enterprises x {r['products']} products = "
                f"{r['lines']:>9,} lines (load {r['load'][0]:.2f} -> {r['load'][1]:.2f})\n"
                f"    every line read (count, sum): {_stats(r['every'])}\n"
                f"    one enterprise's lines, median of 200 reads: median "
                f"{statistics.median(r['one']) * 1e3:.2f} ms, "
                f"worst {max(r['one']) * 1e3:.2f} ms\n"
                f"    the rule in Python (the reference): {_stats(r['compute_only'])}\n"
                f"    base-line coverage {r['coverage']:.2%}"
            )
        i = await bench_idempotency(url, 200, repeat)
        print(
            f"Idempotency: {i['concurrency']} concurrent duplicates x {i['rounds']} rounds -> "
            f"{i['applications_per_round']:.0f} application per round; "
            f"median wall {i['wall_s']:.3f} s"
        )
    finally:
        conn = await asyncpg.connect(plain_url(admin))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5036, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--catch-up",
        type=int,
        default=1_000_000,
        help="enterprises of the feed catch-up from a published run (scripts.bench_feed); 0: none",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.sizes, args.repeat))
    if args.catch_up:
        print(f"Feed catch-up from a published evaluation (load {_load():.2f}):")
        asyncio.run(bench_catch_up(args.catch_up, 3, ("credit",)))
        print(f"  load after {_load():.2f}")


if __name__ == "__main__":
    main()
