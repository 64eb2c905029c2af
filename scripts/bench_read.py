"""`make bench-read`: the score read (一图清) on one scoring worker, against its own /healthz.

Starts one scoring service (one uvicorn worker) on a loopback port against a scratch database
(TEST_DATABASE_URL / DATABASE_URL, else the embedded PostgreSQL), loads and publishes a small
scored cohort, then alternates wrk runs (4 connections by default) on

* `GET /healthz`: what the worker does with no work at all (the ceiling of this machine);
* `GET /v1/enterprises/{uscc}/score`: the authenticated read every portal page and mini-app
  call depends on, cycling through the cohort (a Lua script picks the next USCC).

Each of `--runs` rounds runs both; reported: the median and the worst round of each, the
score's share of the /healthz throughput within each round (target >= 30 %), and the CPU the
service process spends per read (target <= 1 ms; unlike throughput this does not depend on
what else the machine is doing). When PostgreSQL runs on this machine, the CPU its backends
for the benchmark's database spend per request is reported too (`DB µs/req`): on two cores
the reads share the machine with them, which is why the score read's throughput falls
further than its own CPU under load. `--profile out.svg` records the reads with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx

from scripts.bench_gateway import (
    HOST,
    ISSUER,
    WrkResult,
    code,
    cpu_seconds,
    ensure_wrk,
    free_port,
    load_scores,
    py_spy,
    run_wrk,
    start,
    wait_ready,
)
from shared.auth.keys import load_or_create_key_set
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenIssuer
from shared.db import plain_url
from shared.migrations import upgrade
from shared.pg import admin_execute, other_database, resolve_database_url

# wrk walks the cohort: every request reads another enterprise's score.
ROTATE_LUA = """
local n = 0
local paths = {%s}
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
"""


def rotate_script(work: Path, paths: list[str]) -> Path:
    script = work / "rotate.lua"
    script.write_text(ROTATE_LUA % ", ".join(f'"{p}"' for p in paths))
    return script


def backend_pids(db: str, name: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark's database (other than this query's)."""

    async def fetch() -> list[int]:
        import asyncpg

        conn = await asyncpg.connect(plain_url(db))
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await conn.close()
        return [int(r["pid"]) for r in rows]

    return asyncio.run(fetch())


class DatabaseCpu:
    """CPU of the benchmark database's backends, from /proc when PostgreSQL is local."""

    def __init__(self, db: str, name: str) -> None:
        self.db, self.name = db, name

    def snapshot(self) -> dict[int, float]:
        return {p: cpu_seconds(p) for p in backend_pids(self.db, self.name)}

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        """Seconds between two snapshots (a backend started between them counts whole)."""
        return sum(t - before.get(p, 0.0) for p, t in after.items() if t == t)


def measure(
    wrk: str,
    url: str,
    token: str,
    conns: int,
    seconds: int,
    pids: tuple[int, DatabaseCpu],
    script: Path | None,
) -> tuple[WrkResult, float, float]:
    """One wrk run, and the service's and the database's CPU per request (µs) during it."""
    pid, database = pids
    before, db_before = cpu_seconds(pid), database.snapshot()
    result = run_wrk(wrk, url, token, conns, seconds, script=script)
    service, db_after = cpu_seconds(pid) - before, database.snapshot()
    n = max(result.requests, 1)
    return result, service / n * 1e6, DatabaseCpu.spent(db_before, db_after) / n * 1e6


Run = tuple[WrkResult, float, float]


def report(rows: dict[str, list[Run]], conns: int) -> dict[str, object]:
    print(
        f"\n{'c=' + str(conns):14}{'':8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'CPU µs/req':>12}{'DB µs/req':>11}"
    )
    summary: dict[str, object] = {}
    for side, runs in rows.items():
        rps = [r.rps for r, _, _ in runs]
        cpu = [c for _, c, _ in runs]
        db = [d for _, _, d in runs]
        med = statistics.median(rps)
        worst = min(rps)
        p50 = statistics.median(r.p50_ms for r, _, _ in runs)
        p99 = statistics.median(r.p99_ms for r, _, _ in runs)
        print(
            f"{side:14}{'median':>8}{med:10.0f}{p50:10.2f}{p99:10.2f}"
            f"{statistics.median(cpu):12.0f}{statistics.median(db):11.0f}"
        )
        print(
            f"{'':14}{'worst':>8}{worst:10.0f}{max(r.p50_ms for r, _, _ in runs):10.2f}"
            f"{max(r.p99_ms for r, _, _ in runs):10.2f}{max(cpu):12.0f}{max(db):11.0f}"
        )
        failures = sum(r.failures for r, _, _ in runs)
        summary[side] = {
            "rps_median": round(med),
            "rps_worst": round(worst),
            "p50_ms_median": p50,
            "p99_ms_median": p99,
            "cpu_us_median": round(statistics.median(cpu)),
            "cpu_us_worst": round(max(cpu)),
            "db_cpu_us_median": round(statistics.median(db)),
            "failures": failures,
        }
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=300, help="enterprises in the cohort")
    parser.add_argument("--profile", type=Path, help="py-spy output (.svg, else raw) of a run")
    return parser.parse_args()


def rounds(
    args: argparse.Namespace,
    wrk: str,
    urls: tuple[str, str],
    token: str,
    pids: tuple[int, DatabaseCpu],
    script: Path,
) -> None:
    """`/healthz` and the score read alternate: each round gives a ratio on the same load."""
    health, score = urls
    load_before = os.getloadavg()
    run_wrk(wrk, score, token, args.connections, 2, script=script)  # warm-up
    rows: dict[str, list[Run]] = {"healthz": [], "score": []}
    ratios: list[float] = []
    for i in range(args.runs):
        h = measure(wrk, health, token, args.connections, args.seconds, pids, None)
        spy = py_spy(pids[0], args.profile, args.seconds) if args.profile and i == 0 else None
        s = measure(wrk, score, token, args.connections, args.seconds, pids, script)
        if spy is not None:
            spy.wait()
        rows["healthz"].append(h)
        rows["score"].append(s)
        ratios.append(s[0].rps / h[0].rps)
    summary = report(rows, args.connections)
    load_after = os.getloadavg()
    print(
        f"\nscore / healthz within a round: median {statistics.median(ratios):.0%}, worst "
        f"{min(ratios):.0%} (target >= 30 %)"
    )
    print(
        "load average before: {:.2f} {:.2f} {:.2f}  after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )
    print(
        json.dumps(
            {
                **summary,
                "ratio_median": round(statistics.median(ratios), 3),
                "ratio_worst": round(min(ratios), 3),
                "loadavg": [round(load_before[0], 2), round(load_after[0], 2)],
            }
        )
    )


def main() -> None:
    args = parse_args()
    wrk = ensure_wrk()

    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    work = Path(tempfile.mkdtemp(prefix="bench-read-"))
    server = resolve_database_url(configured, Path("var"))
    name = f"bench_read_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_execute(server, f'CREATE DATABASE "{name}"'))
    db = other_database(server, name)
    proc: subprocess.Popen[bytes] | None = None
    try:
        from services.scoring.app import MIGRATIONS as SCORING_MIGRATIONS

        upgrade(SCORING_MIGRATIONS, db, "scoring")
        key_file = work / "keys" / "issuer.json"
        issuer = TokenIssuer(load_or_create_key_set(key_file), ISSUER)
        port = free_port()
        base = f"http://{HOST}:{port}"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SCORING_DATABASE_URL": db,
            "SCORING_JWKS_FILE": str(key_file),
            "SCORING_LOG_LEVEL": "WARNING",
        }
        proc = start("services.scoring.app:create_app", port, env, work / "scoring.log")
        wait_ready(base, proc)
        gov = Principal(sub="bench-government", kind=PrincipalKind.GOVERNMENT)
        token = issuer.mint(gov, "scoring", ttl=3600)
        load_scores(base, token, args.size)
        paths = [f"/v1/enterprises/{code(i)}/score" for i in range(1, args.size + 1)]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            scored = [p for p in paths if c.get(p).status_code == 200]
        script = rotate_script(work, scored)
        print(
            f"GET /v1/enterprises/{{uscc}}/score over {len(scored)} scored enterprises, one "
            f"worker, {args.connections} connections, {args.runs} runs of {args.seconds} s, "
            f"{os.cpu_count()} cores"
        )
        pids = (proc.pid, DatabaseCpu(db, name))
        rounds(args, wrk, (base + "/healthz", base + paths[0]), token, pids, script)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
