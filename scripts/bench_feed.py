"""The feed catch-up at scale, for `bench_policy` and `bench_credit`: a published evaluation of
SIZE enterprises in scoring, and a consumer taking it in through its real feed consumer.

    .venv/bin/python -m scripts.bench_feed [--size 1000000] [--runs 3] [--only policy|credit]

A scratch database (on `DATABASE_URL`, else the embedded PostgreSQL) is migrated for scoring,
credit and policy, as the platform shares one database between schemas. Scoring gets the demo
generator's population through its bulk loader, evaluated and published by its own service
functions (that part is set-up, not timed). Scoring's app is then served by uvicorn on a real
socket (port `IP_BENCH_PORT_OFFSET` + 8101) in its own process, as in production, so the
export is streamed and its CPU is scoring's own; the consumer is its real app (lifespan,
pool, seeded rules) in this process, calling scoring with a real service client and an
internal token.

Timed, per consumer and alone: its feed consumer (`FEED.catch_up`, what `sync_evaluations`
runs) from the event to the committed evaluation (export streamed in, stored, lines or
matches and pushes written, the previous evaluation's rows let go, cursor moved).

Scoring has two published runs of the period (the second published over the first), and
each timed run takes in the one the consumer does not hold: as in production, where every
evaluation but the very first replaces one of the same size (a million rows of the previous
run go in the same transaction). Before the first timed run the consumer's schema is emptied
and the other run taken in, untimed; before each, the policy service's pushes are emptied
and its stored matches marked unpushed, so every eligible and near match is pushed again
(the most it ever writes), and the consumer's tables are vacuumed (as between two
publications). The consumer is shown only the event of the run it is to take in.
`--first` instead empties the consumer's schema before each run: the very first evaluation
the service takes in (nothing to replace), what this benchmark measured until stop 19.

Median and worst of `--runs`,
with the load average before and after each consumer's runs, and per run the CPU seconds of
each process (from /proc): this one (the consumer), scoring's, and the PostgreSQL backends
of the scratch database (those still connected at the end of the run; a parallel worker's or
a closed connection's CPU is counted apart, "pg exited": every database's, so noisy).

`--keep NAME` keeps (or reuses) the prepared database, for profiling the catch-up again
without preparing a million enterprises each time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI
from joserfc.jwk import KeySet

from shared.app import Overrides
from shared.auth.keys import generate_key
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.service_tokens import LocalTokenSource
from shared.auth.tokens import JwksCache, TokenIssuer
from shared.db import create_engine, create_sessionmaker, plain_url
from shared.migrations import upgrade
from shared.pg import admin_execute, other_database, resolve_database_url

PERIOD = 2025
ISSUER = "innovation-points-gateway"
PORT = int(os.environ.get("IP_BENCH_PORT_OFFSET", "10000")) + 8101

# What a consumer's reset empties, so the next catch-up is a first evaluation again. As
# statements any schema of the consumer's takes (a table may since have become a view or be
# partitioned by run).
RESET = {
    "policy": (
        "DELETE FROM policy.consumer_cursors",
        "DELETE FROM policy.evaluations",
        "DELETE FROM policy.enterprise_facts",
        "DELETE FROM policy.population_columns",
        "DELETE FROM policy.rule_matches",
        "TRUNCATE policy.push_sets, policy.push_batches, policy.push_reads",
        "VACUUM policy.enterprise_facts",
    ),
    "credit": (
        "DELETE FROM credit.consumer_cursors",
        "DELETE FROM credit.evaluations",
        "DELETE FROM credit.enterprise_scores",
        "DO $$ BEGIN IF to_regclass('credit.credit_lines') IS NOT NULL AND EXISTS (SELECT 1 "
        "FROM pg_tables WHERE schemaname = 'credit' AND tablename = 'credit_lines') THEN "
        "TRUNCATE credit.credit_lines; END IF; END $$",
        "VACUUM credit.enterprise_scores",
    ),
}

# Before each run over a previous evaluation: nothing pushed yet, every stored match marked
# unpushed (so every eligible and near match is pushed again: the most a catch-up writes).
UNPUSH = {
    "policy": (
        "TRUNCATE policy.push_sets, policy.push_batches, policy.push_reads",
        "UPDATE policy.rule_matches SET pushed = false",
    ),
    "credit": (),
}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def publish_another(url: str) -> uuid.UUID:
    """One more run of the period evaluated and published (over the one published)."""
    from services.scoring.evaluations.service import create_run, execute_run, publish_run

    engine = create_engine(url, pool_size=2)
    maker = create_sessionmaker(engine)
    try:
        async with maker() as session, session.begin():
            run_id = (await create_run(session, PERIOD, "1.0", "bench")).id
        await execute_run(engine, run_id)
        async with maker() as session, session.begin():
            await publish_run(session, run_id, "bench")
    finally:
        await engine.dispose()
    await admin_execute(url, "VACUUM ANALYZE")
    return run_id


async def migrate(url: str) -> None:
    from services.credit.app import MIGRATIONS as CREDIT
    from services.policy.app import MIGRATIONS as POLICY
    from services.scoring.app import MIGRATIONS as SCORING

    for migrations, name in ((SCORING, "scoring"), (CREDIT, "credit"), (POLICY, "policy")):
        await asyncio.to_thread(upgrade, migrations, url, name)


async def prepare(url: str, size: int) -> uuid.UUID:
    """Scoring, credit and policy migrated; `size` demo enterprises evaluated and published
    (`publish_another` adds the second publication)."""
    from devtools.demo import from_demo, generate
    from services.scoring.evaluations.service import create_run, execute_run, publish_run
    from services.scoring.imports.bulk import bulk_load
    from services.scoring.specs.service import seed_default_spec

    await migrate(url)
    engine = create_engine(url, pool_size=2)
    maker = create_sessionmaker(engine)
    try:
        async with maker() as session, session.begin():
            await seed_default_spec(session)
        data = generate(size, seed=20200908, periods=(PERIOD,))
        async with maker() as session, session.begin():
            await bulk_load(session, from_demo(data, PERIOD))
        del data
        async with maker() as session, session.begin():
            run_id = (await create_run(session, PERIOD, "1.0", "bench")).id
        await execute_run(engine, run_id)
        async with maker() as session, session.begin():
            await publish_run(session, run_id, "bench")
    finally:
        await engine.dispose()
    await admin_execute(url, "VACUUM ANALYZE")
    return run_id


def _overrides(issuer: TokenIssuer, name: str) -> Overrides:
    return Overrides(
        jwks=JwksCache.static(issuer.jwks()),
        extra={
            "token_source": LocalTokenSource(
                issuer, Principal(sub=f"svc-{name}", kind=PrincipalKind.SERVICE)
            )
        },
    )


def serve_scoring(url: str) -> None:
    """Scoring's real app on the benchmark's port until interrupted (the child process);
    the callers' public keys from the parent, in `BENCH_FEED_JWKS`."""
    from services.scoring.app import create_app
    from services.scoring.settings import ScoringSettings

    jwks = json.loads(os.environ["BENCH_FEED_JWKS"])
    issuer = TokenIssuer(KeySet([generate_key()]), ISSUER)
    overrides = Overrides(jwks=JwksCache.static(jwks), extra=_overrides(issuer, "scoring").extra)
    settings = ScoringSettings(database_url=url, environment="test")
    app = create_app(settings, overrides)
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", lifespan="on")


@asynccontextmanager
async def scoring_served(url: str, issuer: TokenIssuer) -> AsyncIterator[tuple[str, int]]:
    """Scoring's real app on a real socket, in its own process; its base URL and pid."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.bench_feed",
        "--serve-scoring",
        url,
        env={**os.environ, "BENCH_FEED_JWKS": json.dumps(issuer.jwks())},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.returncode is not None:
                raise SystemExit(f"scoring exited ({child.returncode})")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", PORT)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("scoring did not start within 60 s") from None
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{PORT}", child.pid
    finally:
        child.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            child.kill()
            await child.wait()


@asynccontextmanager
async def consumer(
    name: str, url: str, issuer: TokenIssuer, scoring: str
) -> AsyncIterator[FastAPI]:
    """The consumer's real app (lifespan run: pool, seeded rules), its feed loop off."""
    if name == "policy":
        from services.policy.app import create_app as policy_app
        from services.policy.settings import PolicySettings

        settings: Any = PolicySettings(
            database_url=url, environment="test", sync_interval=0, scoring_url=scoring
        )
        app = policy_app(settings, _overrides(issuer, name))
    else:
        from services.credit.app import create_app as credit_app
        from services.credit.settings import CreditSettings

        settings = CreditSettings(
            database_url=url,
            environment="test",
            sync_interval=0,
            outbox_interval=0,
            scoring_url=scoring,
        )
        app = credit_app(settings, _overrides(issuer, name))
    async with app.router.lifespan_context(app):
        yield app


def sync_of(name: str, event_id: int) -> Callable[[FastAPI], Awaitable[Any]]:
    """`sync_evaluations` of the consumer, shown only scoring's event `event_id`: what it
    runs (`FEED.catch_up` with its scoring client), the feed's page answered here."""
    from shared.service_client import ServiceClient

    if name == "policy":
        from services.policy.matching.sync import FEED as policy_feed
        from services.policy.matching.sync import SyncReport

        feed: Any = policy_feed
        report: Callable[[], Any] = SyncReport
    else:
        from services.credit.evaluations.sync import FEED as credit_feed
        from shared.feed import FeedReport

        feed, report = credit_feed, FeedReport

    class OneEvent(ServiceClient):
        shown = False

        async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
            if path != feed.path:
                return await super().get(path, params)
            if self.shown:
                return {"items": [], "latest": event_id}
            self.shown = True
            page = await super().get(path, {**(params or {}), "after": event_id - 1, "limit": 1})
            return {**page, "items": [e for e in page["items"] if int(e["id"]) == event_id]}

    async def sync(app: FastAPI) -> Any:
        client = OneEvent(app, "scoring", app.state.settings.scoring_url)
        return await feed.catch_up(
            app.state.sessionmaker, client, app.state.settings.events_batch, report()
        )

    return sync


_HZ = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _HZ if fields else 0.0


def exited_cpu(backend: int) -> float:
    """CPU seconds of the server's exited processes (parallel workers among them, but those
    of every database: other work on the machine shows here too), from the postmaster."""
    fields = _stat(backend)
    parent = _stat(int(fields[1])) if fields else []
    return (int(parent[13]) + int(parent[14])) / _HZ if parent else 0.0


async def backends(url: str) -> list[int]:
    """The PostgreSQL backends connected to the scratch database."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


async def vacuum(url: str, schema: str) -> None:
    """VACUUM ANALYZE every table of the consumer's schema (as autovacuum would between two
    publications)."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1",
            schema,
        )
    finally:
        await conn.close()
    if tables:
        await admin_execute(url, "VACUUM ANALYZE " + ", ".join(t[0] for t in tables))


async def catch_up_runs(
    url: str,
    issuer: TokenIssuer,
    scoring: tuple[str, int],
    name: str,
    published: list[tuple[uuid.UUID, int]],
    runs: int,
    first: bool = False,
) -> dict[str, Any]:
    """`runs` catch-ups of one consumer, each over the previous evaluation (the other of the
    two `published` (run, event) pairs) or, with `first`, into an empty schema: seconds
    each, CPU per process, and the load."""
    times: list[float] = []
    cpu: list[dict[str, float]] = []
    base, scoring_pid = scoring
    async with consumer(name, url, issuer, base) as app:
        if not first:
            await admin_execute(url, *RESET[name])
            t = time.perf_counter()
            warm = await sync_of(name, published[0][1])(app)
            if warm.imported != [str(published[0][0])]:
                raise SystemExit(f"{name} did not take in {published[0][0]}: {warm}")
            print(
                f"    {name}: previous evaluation taken in, untimed, in "
                f"{time.perf_counter() - t:.2f} s (load {load()})",
                flush=True,
            )
        before = load()
        for i in range(runs):
            run_id, event_id = published[-1] if first else published[(i + 1) % 2]
            sync = sync_of(name, event_id)
            if first:
                await admin_execute(url, *RESET[name])
            else:
                await admin_execute(url, *UNPUSH[name])
                await vacuum(url, name)
            pids = await backends(url)
            start_cpu = {p: cpu_of(p) for p in pids}
            own, scoring_cpu = time.process_time(), cpu_of(scoring_pid)
            exited = exited_cpu(pids[0]) if pids else 0.0
            started = time.perf_counter()
            report = await sync(app)
            times.append(time.perf_counter() - started)
            own, scoring_cpu = time.process_time() - own, cpu_of(scoring_pid) - scoring_cpu
            ended = set(pids) | set(await backends(url))
            pg = sum(cpu_of(p) - start_cpu.get(p, 0.0) for p in ended)
            exited = exited_cpu(pids[0]) - exited if pids else 0.0
            cpu.append({name: own, "scoring": scoring_cpu, "postgres": pg, "pg exited": exited})
            if report.imported != [str(run_id)]:
                raise SystemExit(f"{name} did not take in {run_id}: {report}")
            extra = f", pushes {report.pushes:,}" if hasattr(report, "pushes") else ""
            print(
                f"    {name} run {i + 1}: {times[-1]:.2f} s (load {load()}){extra}; CPU s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in cpu[-1].items()),
                flush=True,
            )
        after = load()
    mode = "(first evaluation)" if first else "(over the previous evaluation)"
    return {"times": times, "cpu": cpu, "load": (before, after), "mode": mode}


def line(name: str, size: int, r: dict[str, Any]) -> str:
    t = r["times"]
    cpu = ", ".join(
        f"{k} {statistics.median(c[k] for c in r['cpu']):.2f} / {max(c[k] for c in r['cpu']):.2f}"
        for k in r["cpu"][0]
    )
    return (
        f"  {name} catch-up {r['mode']}, {size:,} enterprises, {len(t)} runs: median "
        f"{statistics.median(t):.2f} s, worst {max(t):.2f} s "
        f"(load {r['load'][0]} -> {r['load'][1]}); CPU s median / worst: {cpu}"
    )


async def bench_catch_up(
    size: int, runs: int, names: tuple[str, ...], keep: str | None = None, first: bool = False
) -> dict[str, dict[str, Any]]:
    """Prepare (or reuse) a published run of `size` and time each consumer's catch-up."""
    configured = os.environ.get("DATABASE_URL")
    admin = resolve_database_url(configured, Path("var"))
    db = keep or f"feed_bench_{uuid.uuid4().hex[:8]}"
    url = other_database(admin, db)
    conn = await asyncpg.connect(plain_url(admin))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    out: dict[str, dict[str, Any]] = {}
    try:
        if not exists:
            t = time.perf_counter()
            print(f"  preparing {size:,} published enterprises (load {load()})", flush=True)
            await prepare(url, size)
            print(f"  prepared in {time.perf_counter() - t:.1f} s (load {load()})", flush=True)
        else:
            await migrate(url)  # a kept database, prepared by an older release of the code
        published = await published_runs(url)
        if len(published) < 2:
            t = time.perf_counter()
            print(f"  publishing a second run (load {load()})", flush=True)
            await publish_another(url)
            print(f"  published in {time.perf_counter() - t:.1f} s (load {load()})", flush=True)
            published = await published_runs(url)
        c = await asyncpg.connect(plain_url(url))
        try:
            count = await c.fetchval(
                "SELECT enterprise_count FROM scoring.evaluation_runs WHERE id = $1",
                published[-1][0],
            )
        finally:
            await c.close()
        issuer = TokenIssuer(KeySet([generate_key()]), ISSUER)
        async with scoring_served(url, issuer) as scoring:
            for name in names:
                out[name] = await catch_up_runs(url, issuer, scoring, name, published, runs, first)
                print(line(name, count, out[name]), flush=True)
    finally:
        if keep is None:
            await admin_execute(admin, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return out


async def published_runs(url: str) -> list[tuple[uuid.UUID, int]]:
    """The period's last two publications, oldest first: (run, event id) each."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch(
            "SELECT (payload->>'run_id')::uuid, id FROM scoring.events "
            "WHERE type = 'evaluation.published' AND (payload->>'period')::int = $1 "
            "ORDER BY id DESC LIMIT 2",
            PERIOD,
        )
    finally:
        await conn.close()
    return [(uuid.UUID(str(r[0])), int(r[1])) for r in reversed(rows)]


def main() -> None:
    if sys.argv[1:2] == ["--serve-scoring"]:  # the scoring process `scoring_served` starts
        serve_scoring(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("policy", "credit"))
    parser.add_argument("--keep", help="database name to keep (or reuse) the prepared run in")
    parser.add_argument(
        "--first",
        action="store_true",
        help="each run the first evaluation the consumer takes in (its schema emptied)",
    )
    args = parser.parse_args()
    names = (args.only,) if args.only else ("credit", "policy")
    print(f"feed catch-up (load before {load()})")
    asyncio.run(bench_catch_up(args.size, max(args.runs, 1), names, args.keep, args.first))
    print(f"load after {load()}")


if __name__ == "__main__":
    main()
