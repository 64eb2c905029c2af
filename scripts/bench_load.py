"""`make bench-load`: a realistic mix through the gateway of the assembled platform.

The platform runs as real processes on 127.0.0.1 (port offset 20000) with its own embedded
PostgreSQL under var/bench-load and the full demo population (5,036 enterprises, 2024 and
2025) loaded through the gateway. Enterprises log in through the identity provider, some
apply to each bank (so the banks have applications and consented approved amounts to
query), then locust (headless) drives mini-app dashboards and score lookups, bank queries and
government rankings for a bounded time. Prints throughput, p50/p99 per route and errors as a
table for BENCHMARKS.md; exits non-zero on any error.

Rate limits are raised for the load principals through the gateway's configuration.

`--production` runs each component with the worker count production runs replicas of
(docs/deploy.md: three gateways, two of each service), each worker a uvicorn process on the
component's shared socket standing in for a replica; by default one process per component,
as `make run`. `--port-offset` (default $BENCH_LOAD_PORT_OFFSET, else 20000) keeps the
platform's ports apart from another one running on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from scripts.assembled import Assembled, start_assembled
from scripts.bench_gateway import postgres_cpu, tree_cpu
from scripts.demo_data import DEMO_SIZE

VAR = Path("var/bench-load")
# The minimum replicas of deploy/k8s/overlays/production/autoscaling.yaml, as processes.
PRODUCTION_WORKERS = {"gateway": 3, "scoring": 2, "credit": 2, "policy": 2}
PRODUCTS = {
    "icbc-binjiang": "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01",
    "hzub-binjiang": "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f02",
    "hzbank-binjiang": "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f03",
}


def principals(p: Assembled, enterprises: int) -> dict[str, object]:
    usccs = p.scored_enterprises(enterprises)
    logged_in = [{"uscc": u, "token": p.enterprise_token(u)} for u in usccs]
    banks = []
    for i, (bank_id, product) in enumerate(PRODUCTS.items()):
        applicants = []
        for e in logged_in[i::3][:10]:
            r = httpx.post(
                f"{p.gateway}/v1/credit/applications",
                json={"product_id": product, "amount": 100_000},
                headers={
                    "Authorization": f"Bearer {e['token']}",
                    "Idempotency-Key": f"bench-{uuid.uuid4()}",
                },
                timeout=30,
            )
            r.raise_for_status()
            applicants.append(str(e["uscc"]))
        banks.append({"bank_id": bank_id, "token": p.bank_token(bank_id), "applicants": applicants})
    return {"government": p.government_token(), "banks": banks, "enterprises": logged_in}


def run_locust(host: str, users: int, seconds: int, prefix: Path, principals_file: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(max(1, users // 2)),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "BENCH_LOAD_PRINCIPALS": str(principals_file)}
    # locust's exit code is 1 on any failure; the table below reports them either way.
    subprocess.run(cmd, env=env, check=False, timeout=seconds + 60)


def platform_cpu(p: Assembled) -> dict[str, float]:
    """CPU seconds so far of each component (its workers included) and of PostgreSQL."""
    out = {name: tree_cpu(proc.pid) for name, proc in p.launcher.procs.items()}
    out["postgres"] = postgres_cpu(p.pgdata.resolve())
    return out


def locust_cpu() -> float:
    """CPU seconds of the ended child processes: the locust runs (the platform's are alive)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_line(
    before: tuple[dict[str, float], float],
    after: tuple[dict[str, float], float],
    requests: float,
    seconds: int,
) -> str:
    """What the run cost the machine per request, by whom: two cores give 2,000 ms of CPU a
    second, so this bounds the throughput whatever the latency."""
    spent = {k: after[0][k] - before[0].get(k, 0.0) for k in after[0]}
    spent = {k: v for k, v in spent.items() if v >= 0.05}
    platform_total = sum(spent.values())
    load = after[1] - before[1]
    per = ", ".join(f"{k} {v / requests * 1000:.2f}" for k, v in sorted(spent.items()))
    return (
        f"CPU per request (ms): platform {platform_total / requests * 1000:.2f} ({per}); "
        f"locust {load / requests * 1000:.2f}; the machine's two cores "
        f"{(platform_total + load) / (2 * seconds) * 100:.0f} % busy with both"
    )


def table(stats_csv: Path, seconds: int, users: int) -> tuple[str, dict[str, float]]:
    """The per-route table of one run, and its aggregate (req/s, p50, p99, errors)."""
    rows = list(csv.DictReader(stats_csv.open()))
    lines = [
        f"Mix through the gateway, {users} locust users for {seconds} s "
        f"({os.cpu_count()} cores, {platform.machine()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end):",
        "",
        "| route | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total: dict[str, float] = {}
    for row in rows:
        name = row["Name"] if row["Name"] != "Aggregated" else "**all**"
        failures = int(row["Failure Count"])
        if row["Name"] == "Aggregated":
            total = {
                "rps": float(row["Requests/s"]),
                "p50": float(row["50%"]),
                "p99": float(row["99%"]),
                "errors": failures,
            }
        lines.append(
            f"| {name} | {row['Request Count']} | {float(row['Requests/s']):.1f} | "
            f"{row['50%']} | {row['99%']} | {failures} |"
        )
    return "\n".join(lines), total


def summary(runs: list[dict[str, float]]) -> str:
    rps = [r["rps"] for r in runs]
    p50 = [r["p50"] for r in runs]
    p99 = [r["p99"] for r in runs]
    return (
        f"{len(runs)} runs: req/s median {statistics.median(rps):.0f}, worst {min(rps):.0f}; "
        f"p50 median {statistics.median(p50):.0f} ms, worst {max(p50):.0f} ms; "
        f"p99 median {statistics.median(p99):.0f} ms, worst {max(p99):.0f} ms "
        "(target >= 300 req/s, p99 < 250 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--users", type=int, default=48)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=DEMO_SIZE)
    parser.add_argument("--enterprises", type=int, default=60)
    parser.add_argument(
        "--production", action="store_true", help="the production worker counts (see above)"
    )
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("BENCH_LOAD_PORT_OFFSET", 20000))
    )
    args = parser.parse_args()

    workers = PRODUCTION_WORKERS if args.production else {}
    started = time.monotonic()
    p = start_assembled(VAR, size=args.size, port_offset=args.port_offset, workers=workers)
    errors = 0
    try:
        print(f"platform up with {args.size} enterprises in {time.monotonic() - started:.0f} s")
        print(f"workers: {workers or 'one process per component'}")
        principals_file = VAR / "load-principals.json"
        principals_file.write_text(json.dumps(principals(p, args.enterprises)))
        principals_file.chmod(0o600)
        load_before = os.getloadavg()
        runs: list[dict[str, float]] = []
        for i in range(args.runs):
            prefix = VAR / f"locust-{i}"
            before = platform_cpu(p), locust_cpu()
            run_locust(p.gateway, args.users, args.seconds, prefix, principals_file)
            after = platform_cpu(p), locust_cpu()
            report, total = table(Path(f"{prefix}_stats.csv"), args.seconds, args.users)
            print(f"\nrun {i + 1}: " + report)
            print(cpu_line(before, after, total["rps"] * args.seconds, args.seconds))
            runs.append(total)
            errors += int(total.get("errors", 0))
            failures = Path(f"{prefix}_failures.csv")
            if total.get("errors") and failures.exists():
                print(failures.read_text())
        load_after = os.getloadavg()
        print()
        print(summary(runs))
        print(
            "load average before: {:.2f} {:.2f} {:.2f}  after: {:.2f} {:.2f} {:.2f}".format(
                *load_before, *load_after
            )
        )
        dead = p.launcher.exited()
        if dead:
            print(f"stopped during the run: {dead}; see {VAR}/logs")
    finally:
        p.close()
    if errors or dead:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
