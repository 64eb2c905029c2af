"""`make bench-scoring`: generate, import, evaluate end to end, with seconds per phase and
peak memory. `SIZE=1000000 make bench-scoring` for the large run.

Phases: generate (the demo generator), import (the bulk loader: binary COPY of the typed
columns + the same upsert as the import API), evaluate = read (binary COPY into numpy) +
compute (the engine) + write (binary COPY of every score) + commit; the CPU seconds of each
phase in this process (`cpu_client`) and in the server processes serving it (`cpu_server`,
when the server runs on this machine), which hold on a busy machine. Separate lines time
the import API's CSV path (inflate a .csv.gz, validate column by column, stage by COPY, upsert)
on the next period of the same data, a first load of that period.
Uses DATABASE_URL / TEST_DATABASE_URL, or the embedded PostgreSQL; works in a scratch
database that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy import text

from devtools.demo import from_demo, generate, write_csv
from services.scoring.app import MIGRATIONS
from services.scoring.evaluations.service import create_run, execute_run
from services.scoring.imports.bulk import bulk_load
from services.scoring.imports.columnar import columnar_parse
from services.scoring.imports.repository import upsert_table
from services.scoring.imports.upload import _Inflater
from services.scoring.specs.service import seed_default_spec
from shared.db import asyncpg_url, create_engine, create_sessionmaker, plain_url
from shared.migrations import upgrade
from shared.pg import embedded_url, other_database

PERIOD = 2025


_TICK = os.sysconf("SC_CLK_TCK")


async def server_cpu(admin: asyncpg.Connection, database: str) -> float:
    """CPU seconds used so far by the server processes serving `database`, when the server
    runs on this machine (NaN otherwise): with the client's CPU, a figure that holds on a
    busy machine where wall time does not. The pool keeps its connections for the run."""
    pids = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    total = 0.0
    for row in pids:
        try:
            with open(f"/proc/{row['pid']}/stat") as fh:  # noqa: ASYNC230 (procfs: no I/O)
                stat = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(stat[11]) + int(stat[12])) / _TICK
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench(size: int, server_url: str, csv_path: bool) -> dict[str, float]:
    name = f"ip_bench_{os.environ.get('BENCH_DB_TAG', '')}{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(plain_url(server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = other_database(server_url, name)
    figures: dict[str, float] = {}
    try:
        upgrade(MIGRATIONS, url, "scoring")
        # Three: the evaluation's transaction and the two connections of its parallel read.
        engine = create_engine(url, pool_size=3)
        maker = create_sessionmaker(engine)
        async with maker() as session, session.begin():
            await seed_default_spec(session)

        t = time.perf_counter()
        periods = (PERIOD, PERIOD + 1) if csv_path else (PERIOD,)
        data = generate(size, seed=20200908, periods=periods)
        figures["generate"] = time.perf_counter() - t

        bulk = from_demo(data, PERIOD)
        # The pool's connections exist before the clocks start (their server CPU is read from
        # /proc while they live: a connection opened and closed within a phase would be lost).
        async with maker() as w1, maker() as w2, maker() as w3:
            for warm in (w1, w2, w3):
                await warm.execute(text("SELECT 1"))
        t0, c0, s0 = time.perf_counter(), time.process_time(), await server_cpu(admin, name)
        async with maker() as session, session.begin():
            await bulk_load(session, bulk)
        figures["import"] = time.perf_counter() - t0
        c1, s1 = time.process_time(), await server_cpu(admin, name)
        figures["import.cpu_client"], figures["import.cpu_server"] = c1 - c0, s1 - s0

        t = time.perf_counter()
        async with maker() as session, session.begin():
            run = await create_run(session, PERIOD, "1.0", "bench")
            run_id = run.id
        timings: dict[str, float] = {}
        await execute_run(engine, run_id, timings)
        figures["evaluate"] = time.perf_counter() - t
        figures.update({f"evaluate.{k}": v for k, v in timings.items()})
        c2, s2 = time.process_time(), await server_cpu(admin, name)
        figures["evaluate.cpu_client"], figures["evaluate.cpu_server"] = c2 - c1, s2 - s1
        figures["end_to_end"] = figures["import"] + figures["evaluate"]
        figures["end_to_end.cpu"] = c2 - c0 + s2 - s0
        figures["peak_rss_mb"] = peak_rss_mb()

        if csv_path:
            figures.update(await _csv_api_path(maker, data))
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return figures


async def _csv_api_path(maker: Any, data: Any) -> dict[str, float]:
    """The import API's own steps on the next period's facts as a .csv.gz (a first load of
    that period): inflate to disk, validate column by column, stage by COPY, upsert."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "facts.csv"
        write_csv(data, PERIOD + 1, plain)
        packed = Path(tmp) / "facts.csv.gz"
        with plain.open("rb") as src, gzip.open(packed, "wb", 1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        plain.unlink()
        t = time.perf_counter()
        inflater = _Inflater(1 << 40)
        with packed.open("rb") as src, plain.open("wb") as out:
            while chunk := src.read(1 << 20):
                for part in inflater.feed(chunk):
                    out.write(part)
        figures["csv.inflate"] = time.perf_counter() - t
        t = time.perf_counter()
        columnar = columnar_parse(plain, period=None, max_errors=1000)
        assert columnar is not None and columnar.table is not None
        assert columnar.parsed.error_count == 0, columnar.parsed.errors[:3]
        figures["csv.validate"] = time.perf_counter() - t
        timings: dict[str, float] = {}
        async with maker() as session, session.begin():
            await upsert_table(session, columnar.table, None, timings=timings)
        figures.update({f"csv.{k}": v for k, v in timings.items()})
        figures["csv_import_api_path"] = time.perf_counter() - t + figures["csv.inflate"]
        figures["peak_rss_mb_after_csv"] = peak_rss_mb()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=5036)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-csv", action="store_true", help="skip the CSV API-path timing")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    server_url = asyncpg_url(server) if server else embedded_url(Path("var/pgdata"))
    print(f"load average before: {load()}")
    runs = []
    for i in range(args.repeat):
        # The CSV path only once: it is a separate figure.
        figures = asyncio.run(bench(args.size, server_url, csv_path=(i == 0 and not args.no_csv)))
        runs.append(figures)
        print(
            f"run {i + 1} (load {load()}): " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
        )
    print(f"load average after: {load()}")
    print(f"\nscoring benchmark, {args.size:,} enterprises, {len(runs)} runs: median / worst")
    for key in runs[0]:
        values = [r[key] for r in runs if key in r]
        unit = "MB" if "_mb" in key else "s"
        print(f"  {key:24} {float(np.median(values)):10.3f} {max(values):10.3f} {unit}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
