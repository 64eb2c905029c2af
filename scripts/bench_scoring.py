"""`make bench-scoring`: generate, import, evaluate end to end, with seconds per phase and
peak memory. `SIZE=1000000 make bench-scoring` for the large run.

Phases: generate (the demo generator), import (the bulk loader: binary COPY of the typed
columns + the same upsert as the import API), evaluate = read (binary COPY into numpy) +
compute (the engine) + write (binary COPY of every score) + commit. A separate line times
the CSV path of the import API (parse and validate every field in Python) on the same data.
Uses DATABASE_URL / TEST_DATABASE_URL, or the embedded PostgreSQL; works in a scratch
database that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import numpy as np

from devtools.demo import from_demo, generate, write_csv
from services.scoring.app import MIGRATIONS
from services.scoring.evaluations.service import create_run, execute_run
from services.scoring.imports.bulk import bulk_load
from services.scoring.imports.parser import iter_rows, parse
from services.scoring.imports.repository import upsert_rows
from services.scoring.models import ScoringModel
from services.scoring.specs.spec import DEFAULT_MODEL
from shared.db import asyncpg_url, create_engine, create_sessionmaker, plain_url
from shared.migrations import upgrade
from shared.pg import embedded_url, other_database

PERIOD = 2025


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench(size: int, server_url: str, csv_path: bool) -> dict[str, float]:
    name = f"ip_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(plain_url(server_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = other_database(server_url, name)
    figures: dict[str, float] = {}
    try:
        upgrade(MIGRATIONS, url, "scoring")
        engine = create_engine(url, pool_size=2)
        maker = create_sessionmaker(engine)
        async with maker() as session, session.begin():
            session.add(
                ScoringModel(
                    version="1.0",
                    status="published",
                    spec=DEFAULT_MODEL.to_dict(),
                    created_by="bench",
                )
            )

        t = time.perf_counter()
        data = generate(size, seed=20200908, periods=(PERIOD,))
        figures["generate"] = time.perf_counter() - t

        t0 = time.perf_counter()
        async with maker() as session, session.begin():
            await bulk_load(session, from_demo(data, PERIOD))
        figures["import"] = time.perf_counter() - t0

        t = time.perf_counter()
        async with maker() as session, session.begin():
            run = await create_run(session, PERIOD, "1.0", "bench")
            run_id = run.id
        timings: dict[str, float] = {}
        await execute_run(engine, run_id, timings)
        figures["evaluate"] = time.perf_counter() - t
        figures.update({f"evaluate.{k}": v for k, v in timings.items()})
        figures["end_to_end"] = figures["import"] + figures["evaluate"]
        figures["peak_rss_mb"] = peak_rss_mb()

        if csv_path:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "facts.csv"
                write_csv(data, PERIOD, path)
                content = path.read_bytes()
                t = time.perf_counter()
                parsed = parse(iter_rows("csv", content), period=None)
                assert parsed.error_count == 0, parsed.errors[:3]
                cols = parsed.columns
                recs = [tuple(r.get(c) for c in cols) for r in parsed.rows]
                async with maker() as session, session.begin():
                    await upsert_rows(session, cols, recs, None)
                figures["csv_import_api_path"] = time.perf_counter() - t
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=5036)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-csv", action="store_true", help="skip the CSV API-path timing")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    server_url = asyncpg_url(server) if server else embedded_url(Path("var/pgdata"))
    runs = []
    for i in range(args.repeat):
        # The CSV path only once: it is a separate figure and slow at large sizes.
        figures = asyncio.run(bench(args.size, server_url, csv_path=(i == 0 and not args.no_csv)))
        runs.append(figures)
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    keys = runs[0].keys()
    print(f"\nscoring benchmark, {args.size:,} enterprises, median of {len(runs)}:")
    for key in keys:
        values = [r[key] for r in runs if key in r]
        unit = "MB" if key.endswith("_mb") else "s"
        print(f"  {key:24} {float(np.median(values)):10.3f} {unit}")


if __name__ == "__main__":
    main()
