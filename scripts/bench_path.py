"""`make bench-path`: the real user path at scale, with the platform started as processes.

A government client uploads a period's facts of SIZE enterprises as a gzip-compressed CSV to
`POST /v1/scoring/imports` through the gateway, starts the evaluation (202, polled), publishes
it, and credit and policy take it in through their feed consumers. Timed: upload (the request,
compressed bytes already in hand), evaluate, publish, and each consumer's catch-up (from the
publication to the committed evaluation in its schema, lines and matches rewritten). Peak RSS
of every process (VmHWM), and the load average before and after. Each run is a new period, so
every run is a first load of that period, as a new year is.

`SIZE=1000000 make bench-path` (default); `--runs` periods (3 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from scripts.assembled import Assembled, start_assembled
from shared.db import plain_url

VAR = Path("var/bench-path")
FIRST_PERIOD = 2026
PATIENCE = float(os.environ.get("BENCH_PATH_PATIENCE", "600"))
PORT_OFFSET = int(os.environ.get("IP_RELIABILITY_PORT_OFFSET", "10000"))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def facts_file(size: int, period: int, runs: int) -> Path:
    """The period's facts as .csv.gz, made once (level 1: the client's time is not timed)."""
    from devtools.demo import generate, write_csv

    periods = tuple(range(FIRST_PERIOD, FIRST_PERIOD + runs))
    target = VAR / f"facts-{size}-{period}.csv.gz"
    if target.exists():
        return target
    data = generate(size, seed=20200908, periods=periods)
    for p in periods:
        plain = VAR / f"facts-{size}-{p}.csv"
        write_csv(data, p, plain)
        with plain.open("rb") as src, gzip.open(VAR / f"{plain.name}.gz", "wb", 1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        plain.unlink()
    return target


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process and its descendants (the largest of them), MB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    best, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return best


async def wait_row(url: str, sql: str, run_id: str, patience: float) -> float:
    """Seconds until `sql` finds the run (polled), RuntimeError past `patience`."""
    conn = await asyncpg.connect(plain_url(url))
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < patience:
            if await conn.fetchval(sql, run_id):
                return time.perf_counter() - start
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    raise RuntimeError(f"not caught up in {patience} s: {sql}")


def one_run(platform: Assembled, client: httpx.Client, path: Path, period: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    body = path.read_bytes()
    t = time.perf_counter()
    r = client.post("/v1/scoring/imports", files={"file": (path.name, body, "application/gzip")})
    figures["upload"] = time.perf_counter() - t
    r.raise_for_status()
    assert r.json()["status"] == "succeeded", r.text[:500]

    t = time.perf_counter()
    r = client.post("/v1/scoring/evaluations", json={"period": period})
    r.raise_for_status()
    run_id = r.json()["id"]
    while (run := client.get(f"/v1/scoring/evaluations/{run_id}").json())["status"] == "running":
        time.sleep(0.25)
    figures["evaluate"] = time.perf_counter() - t
    assert run["status"] == "completed", run
    figures["upload_evaluate"] = figures["upload"] + figures["evaluate"]

    t = time.perf_counter()
    client.post(f"/v1/scoring/evaluations/{run_id}/publish").raise_for_status()
    figures["publish"] = time.perf_counter() - t
    url = platform.database_url

    async def both() -> tuple[float, float]:
        return await asyncio.gather(
            wait_row(
                url, "SELECT 1 FROM credit.evaluations WHERE run_id = $1::uuid", run_id, PATIENCE
            ),
            wait_row(
                url, "SELECT 1 FROM policy.evaluations WHERE run_id = $1::uuid", run_id, PATIENCE
            ),
        )

    print("  " + _line(figures), flush=True)  # the upload's figures, whatever follows
    try:
        figures["credit_catch_up"], figures["policy_catch_up"] = asyncio.run(both())
    except RuntimeError as exc:  # a consumer that never catches up is a finding, not a crash
        print(f"  {exc}", flush=True)
        figures["credit_catch_up"] = figures["policy_catch_up"] = float("inf")
    for name in ("gateway", "scoring", "credit", "policy"):
        figures[f"rss_{name}_mb"] = peak_rss_mb(platform.launcher.procs[name].pid)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    VAR.mkdir(parents=True, exist_ok=True)
    files = [facts_file(args.size, FIRST_PERIOD + i, args.runs) for i in range(args.runs)]
    print(f"load average before: {load()}")
    platform = start_assembled(
        VAR,
        size=600,
        port_offset=PORT_OFFSET,
        extra_env={"gateway": {"UPSTREAM_TIMEOUT": "60"}},
    )
    runs: list[dict[str, float]] = []
    try:
        headers = {"Authorization": f"Bearer {platform.government_token()}"}
        timeout = httpx.Timeout(600, connect=10)
        with httpx.Client(base_url=platform.gateway, headers=headers, timeout=timeout) as client:
            for i, path in enumerate(files):
                figures = one_run(platform, client, path, FIRST_PERIOD + i)
                runs.append(figures)
                print(f"run {i + 1} (load {load()}): " + _line(figures), flush=True)
    finally:
        platform.close()
    print(f"load average after: {load()}")
    print(f"\nreal user path, {args.size:,} enterprises, {len(runs)} runs: median / worst")
    for key in runs[0]:
        values = [r[key] for r in runs]
        unit = "MB" if key.endswith("_mb") else "s"
        print(f"  {key:20} {statistics.median(values):10.2f} {max(values):10.2f} {unit}")


def _line(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in figures.items())


if __name__ == "__main__":
    main()
