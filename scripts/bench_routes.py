"""`make bench-routes`: the CPU each route of the load mix costs, per process.

`make bench-load` measures throughput, which on two shared cores moves with whatever else the
machine does. This measures what a request costs instead, which moves much less: the platform
as processes (5,036 demo enterprises, as `make bench-load`), then for each route of the mix
`--requests` sequential requests through the gateway, and the CPU time (user + system, from
/proc) that the gateway, each service and the embedded PostgreSQL spent meanwhile, divided by
the requests. A route's total is what one call costs the machine; the mix's throughput on two
cores is bounded by 2 s / (the mix's weighted total).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from scripts.assembled import Assembled, start_assembled
from scripts.bench_gateway import postgres_cpu, tree_cpu
from scripts.bench_load import principals
from scripts.demo_data import DEMO_SIZE

VAR = Path("var/bench-routes")
PROCESSES = ("gateway", "scoring", "credit", "policy")
STAGES = ("seed", "seedling", "growth", "expansion", "mature")

Route = Callable[[int], tuple[str, str]]


def routes(who: dict[str, Any]) -> dict[str, Route]:
    """The mix's routes (scripts/locustfile.py), each as path and token for request i."""
    firms: list[dict[str, str]] = who["enterprises"]
    banks: list[dict[str, Any]] = who["banks"]
    gov: str = who["government"]

    def firm(i: int) -> dict[str, str]:
        return firms[i % len(firms)]

    def bank(i: int) -> tuple[str, str]:
        b = banks[i % len(banks)]
        return b["applicants"][i % len(b["applicants"])], b["token"]

    return {
        "GET /v1/me/dashboard": lambda i: ("/v1/me/dashboard", firm(i)["token"]),
        "GET /v1/scoring/enterprises/{uscc}/score": lambda i: (
            f"/v1/scoring/enterprises/{firm(i)['uscc']}/score",
            firm(i)["token"],
        ),
        "GET /v1/credit/enterprises/{uscc}/offers": lambda i: (
            f"/v1/credit/enterprises/{firm(i)['uscc']}/offers",
            firm(i)["token"],
        ),
        "GET /v1/policy/enterprises/{uscc}/matches": lambda i: (
            f"/v1/policy/enterprises/{firm(i)['uscc']}/matches",
            firm(i)["token"],
        ),
        "GET /v1/credit/applications": lambda i: (
            "/v1/credit/applications?limit=20",
            banks[i % len(banks)]["token"],
        ),
        "GET /v1/credit/enterprises/{uscc}/approved-amounts": lambda i: (
            f"/v1/credit/enterprises/{bank(i)[0]}/approved-amounts",
            bank(i)[1],
        ),
        "GET /v1/scoring/rankings": lambda i: (
            f"/v1/scoring/rankings?stage={STAGES[i % len(STAGES)]}&period=2025&limit=50",
            gov,
        ),
        "GET /v1/credit/stats": lambda i: ("/v1/credit/stats", gov),
        "GET /v1/policy/pools": lambda i: ("/v1/policy/pools", gov),
    }


def snapshot(platform: Assembled, pids: dict[str, int]) -> dict[str, float]:
    out = {name: tree_cpu(pid) for name, pid in pids.items()}
    out["postgres"] = postgres_cpu(platform.pgdata.resolve())
    return out


def measure(
    platform: Assembled, table: dict[str, Route], requests: int
) -> dict[str, dict[str, float]]:
    pids = {n: p.pid for n, p in platform.launcher.procs.items() if n in PROCESSES}
    result: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=platform.gateway, timeout=30) as client:
        for name, route in table.items():
            for i in range(10):  # warm: connections, caches, compiled statements
                path, token = route(i)
                client.get(path, headers={"Authorization": f"Bearer {token}"})
            before, started = snapshot(platform, pids), time.perf_counter()
            for i in range(requests):
                path, token = route(i)
                r = client.get(path, headers={"Authorization": f"Bearer {token}"})
                if r.status_code != 200:
                    raise SystemExit(f"{name}: {r.status_code} {r.text[:300]}")
            wall = time.perf_counter() - started
            after = snapshot(platform, pids)
            per = {k: (after[k] - before[k]) / requests * 1000 for k in before}
            per["total"] = sum(per.values())
            per["wall"] = wall / requests * 1000
            result[name] = per
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--enterprises", type=int, default=30)
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("BENCH_LOAD_PORT_OFFSET", 20000))
    )
    args = parser.parse_args()
    platform = start_assembled(VAR, size=DEMO_SIZE, port_offset=args.port_offset)
    try:
        table = routes(principals(platform, args.enterprises))
        load_before = os.getloadavg()
        runs = [measure(platform, table, args.requests) for _ in range(args.runs)]
        load_after = os.getloadavg()
    finally:
        platform.close()
    columns = [*PROCESSES, "postgres", "total"]
    print(
        f"\nCPU ms per request, {args.requests} sequential requests per route, "
        f"{args.runs} runs: median (worst)\n"
    )
    print("| route | " + " | ".join(columns) + " | wall ms |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for name in table:
        cells = []
        for col in [*columns, "wall"]:
            values = [run[name][col] for run in runs]
            cells.append(f"{statistics.median(values):.2f} ({max(values):.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "\nload average before: {:.2f} {:.2f} {:.2f}  after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )


if __name__ == "__main__":
    main()
