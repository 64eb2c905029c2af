"""`make bench-gateway`: what the gateway costs on an authenticated score lookup.

Starts a scoring service and a gateway with uvicorn on loopback ports against a scratch
database (TEST_DATABASE_URL / DATABASE_URL, else the embedded PostgreSQL), loads a small
scored cohort, then runs wrk against the same score lookup twice in the same run:

* directly at the scoring service, with an internal token for it;
* through the gateway, with a gateway access token (client credentials of the government
  portal): the gateway verifies it, applies the rate limit and breaker, mints a fresh
  internal token and forwards over its own HTTP/1.1 client (`--transport` to compare).

Direct and gateway runs alternate, `--rounds` (3) times at 64 and at 4 connections. Reported
per level, median and worst of the rounds: throughput through the gateway as a share of
direct within each round (target >= 85 %), the p50 it adds (target <= 1 ms at 4
connections), the gateway's CPU per proxied request (target <= 400 us), failures (none),
and the load average before and after. `--profile out.txt` records the gateway with py-spy
during the first round at 4 connections.
wrk is the Debian package (`apt-get install wrk`); the PyPI packages named wrk are unrelated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from stdnum.cn import uscc as uscc_std

from gateway.bootstrap import seed_demo_clients
from shared.auth.keys import load_or_create_key_set
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenIssuer
from shared.migrations import upgrade
from shared.pg import admin_execute, other_database, resolve_database_url

HOST = "127.0.0.1"
ISSUER = "innovation-points-gateway"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("wrk not found: installing the Debian package ...")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
        found = shutil.which("wrk")
        if not found:
            subprocess.run(["apt-get", "update", "-q"], check=False)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False)
            found = shutil.which("wrk")
    if not found:
        raise SystemExit(
            "wrk is needed: `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`. "
            "The PyPI packages named wrk are unrelated."
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def code(i: int) -> str:
    base = f"91330108{i:09d}"
    return base + uscc_std.calc_check_digit(base)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int
    non_2xx: int
    socket_errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    assert m, text
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(
    wrk: str, url: str, token: str, connections: int, seconds: int, script: Path | None = None
) -> WrkResult:
    """One wrk run; `script` is a Lua file choosing each request (e.g. rotating paths)."""
    out = subprocess.run(
        [
            wrk,
            *(["-s", str(script)] if script is not None else []),
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            # A slow answer is latency (in p99), not a lost request.
            "--timeout",
            "10s",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = socket_errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        non_2xx = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        socket_errors = sum(int(x) for x in m.groups())
    return WrkResult(rps, p50, p99, total, non_2xx + socket_errors, non_2xx, socket_errors)


def best(rounds: list[WrkResult]) -> WrkResult:
    return max(rounds, key=lambda r: r.rps)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; NaN elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """User + system CPU of a process and every process under it, the exited ones included
    (their parent's reaped-children fields): a PostgreSQL backend that ended during a run
    (a pool's overflow connection) or a worker of `--workers` counts as much as a live one."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        found = stats.get(pid)
        if found is None:
            continue
        total += sum(int(f) for f in found[11:15])
        todo.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK") if root in stats else float("nan")


def postgres_cpu(pgdata: Path) -> float:
    """CPU seconds of the embedded server: its postmaster and the processes it started
    (backends, checkpointer, writers), the ended ones included."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return tree_cpu(postmaster)


def idle_cpu(pid: int, seconds: float = 5.0) -> float:
    """CPU seconds per second the process spends with no requests at all."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def start(factory: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    out = log.open("ab")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited early (see the log)")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not become ready")


def load_scores(scoring: str, token: str, size: int) -> str:
    header = (
        "uscc,name,period,operating_revenue,rd_expense,rd_intensity,invention_patents,listed,"
        "qualifications"
    )
    rows = [
        f"{code(i)},杭州基准{i}号科技有限公司,2025,{800 + 13 * i},{50 + 7 * (i % 50)},"
        f"{3 + i % 25},{i % 9},0,"
        for i in range(1, size + 1)
    ]
    content = ("\n".join([header, *rows]) + "\n").encode()
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=scoring, headers=auth, timeout=120) as c:
        r = c.post("/v1/imports", files={"file": ("bench.csv", content, "text/csv")})
        r.raise_for_status()
        r = c.post("/v1/evaluations", json={"period": 2025, "wait": True})
        r.raise_for_status()
        c.post(f"/v1/evaluations/{r.json()['id']}/publish").raise_for_status()
        target = code(size // 2)
        if c.get(f"/v1/enterprises/{target}/score").status_code == 200:
            return f"/v1/enterprises/{target}/score"
        print("note: the score endpoint does not answer 200 yet; using the enterprise lookup")
        r = c.get(f"/v1/enterprises/{target}")
        r.raise_for_status()
        return f"/v1/enterprises/{target}"


def measure_levels(
    args: argparse.Namespace,
    wrk: str,
    gateway_pid: int,
    direct: tuple[str, str],
    via: tuple[str, str],
) -> dict[str, object]:
    """Direct and gateway runs alternate, `--rounds` times at each level: on a shared machine
    load from elsewhere then drifts into both sides alike, and each round gives a ratio."""
    summary: dict[str, object] = {}
    spy_done = False
    for label, conns in (("load", args.connections), ("moderate", args.moderate)):
        rows: dict[str, list[WrkResult]] = {"direct": [], "gateway": []}
        cpu: list[float] = []
        for _ in range(args.rounds):
            rows["direct"].append(run_wrk(wrk, direct[0], direct[1], conns, args.seconds))
            spy = None
            if args.profile and label == "moderate" and not spy_done:
                spy, spy_done = py_spy(gateway_pid, args.profile, args.seconds), True
            before = cpu_seconds(gateway_pid)
            result = run_wrk(wrk, via[0], via[1], conns, args.seconds)
            cpu.append((cpu_seconds(gateway_pid) - before) / max(result.requests, 1) * 1e6)
            if spy is not None:
                spy.wait()
            rows["gateway"].append(result)
        ratios = [g.rps / d.rps for d, g in zip(rows["direct"], rows["gateway"], strict=True)]
        added = [g.p50_ms - d.p50_ms for d, g in zip(rows["direct"], rows["gateway"], strict=True)]
        print(
            f"\nc={conns}: {args.rounds} rounds of {args.seconds} s, direct and gateway alternating"
        )
        print(f"{'':10}{'':8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
        for side, rs in rows.items():
            for name, pick in (("median", statistics.median), ("worst", None)):
                rps = pick([r.rps for r in rs]) if pick else min(r.rps for r in rs)
                p50 = pick([r.p50_ms for r in rs]) if pick else max(r.p50_ms for r in rs)
                p99 = pick([r.p99_ms for r in rs]) if pick else max(r.p99_ms for r in rs)
                failed = sum(r.failures for r in rs)
                print(f"{side:10}{name:>8}{rps:10.0f}{p50:10.2f}{p99:10.2f}{failed:8d}")
        print(
            f"throughput through the gateway: median {statistics.median(ratios):.0%}, worst "
            f"{min(ratios):.0%} of direct (target >= 85 %)"
        )
        print(
            f"median added: median {statistics.median(added):+.2f} ms, worst {max(added):+.2f} ms "
            "(target <= 1 ms at c=4)"
        )
        print(
            f"gateway CPU per proxied request: median {statistics.median(cpu):.0f} us, worst "
            f"{max(cpu):.0f} us (target <= 400 us)"
        )
        summary[label] = {
            "connections": conns,
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_worst": round(min(ratios), 3),
            "added_p50_ms_median": round(statistics.median(added), 2),
            "added_p50_ms_worst": round(max(added), 2),
            "gateway_cpu_us_median": round(statistics.median(cpu)),
            "gateway_cpu_us_worst": round(max(cpu)),
            "direct_rps_median": round(statistics.median(r.rps for r in rows["direct"])),
            "gateway_rps_median": round(statistics.median(r.rps for r in rows["gateway"])),
            "failures": sum(r.failures for rs in rows.values() for r in rs),
        }
    return summary


def py_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found: `pip install py-spy` into the venv to profile")
        return None
    cmd = [spy, "record", "-p", str(pid), "-d", str(seconds), "-o", str(out), "-r", "200"]
    if out.suffix != ".svg":
        cmd += ["-f", "raw"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--moderate", type=int, default=4, help="connections at moderate load")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--profile", type=Path, help="py-spy output (.svg, else raw) of a run")
    parser.add_argument("--size", type=int, default=300, help="enterprises in the cohort")
    parser.add_argument(
        "--transport",
        choices=["http1", "aiohttp", "httpx"],
        default="http1",
        help="the gateway's upstream transport (aiohttp, httpx: for comparison)",
    )
    return parser.parse_args()


def measure_and_report(
    args: argparse.Namespace,
    wrk: str,
    gateway_pid: int,
    direct: tuple[str, str],
    via: tuple[str, str],
) -> None:
    load_before = os.getloadavg()
    for url, tok in (direct, via):
        run_wrk(wrk, url, tok, args.connections, 3)  # warm-up: pools, caches, JIT-less paths
    idle = idle_cpu(gateway_pid)
    print(
        f"gateway CPU while idle: {idle * 1000:.1f} ms/s (its background work: the revocation "
        "poll; counted in the per-request figures below)"
    )
    summary = measure_levels(args, wrk, gateway_pid, direct, via)
    summary["gateway_idle_cpu_ms_per_s"] = round(idle * 1000, 1)
    load_after = os.getloadavg()
    print(
        "load average before: {:.2f} {:.2f} {:.2f}  after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1) + 1:
        print("warning: the machine was busy with other work; compare ratios within the run")
    summary["loadavg"] = [round(load_before[0], 2), round(load_after[0], 2)]
    print(json.dumps(summary))


def main() -> None:
    args = parse_args()
    wrk = ensure_wrk()

    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    server = resolve_database_url(configured, Path("var"))
    name = f"bench_gw_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_execute(server, f'CREATE DATABASE "{name}"'))
    db = other_database(server, name)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        from gateway.app import MIGRATIONS as GATEWAY_MIGRATIONS
        from services.scoring.app import MIGRATIONS as SCORING_MIGRATIONS

        upgrade(SCORING_MIGRATIONS, db, "scoring")
        upgrade(GATEWAY_MIGRATIONS, db, "gateway")
        key_file = work / "keys" / "issuer.json"
        issuer = TokenIssuer(load_or_create_key_set(key_file), ISSUER)
        creds = asyncio.run(seed_demo_clients(db, work))

        sp, gp = free_port(), free_port()
        scoring, gateway = f"http://{HOST}:{sp}", f"http://{HOST}:{gp}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        scoring_env = {
            **env,
            "SCORING_DATABASE_URL": db,
            "SCORING_JWKS_FILE": str(key_file),
            "SCORING_LOG_LEVEL": "WARNING",
        }
        gateway_env = {
            **env,
            "GATEWAY_DATABASE_URL": db,
            "GATEWAY_KEY_FILE": str(key_file),
            # The client-secret key the demo clients were stored under (seed_demo_clients).
            "GATEWAY_VAR_DIR": str(work),
            "GATEWAY_SCORING_URL": scoring,
            "GATEWAY_LOG_LEVEL": "WARNING",
            # The benchmark measures the path, not the throttle.
            "GATEWAY_RATE_LIMIT_CLIENT": "1000000/second",
            "GATEWAY_UPSTREAM_TRANSPORT": args.transport,
        }
        procs.append(
            start("services.scoring.app:create_app", sp, scoring_env, work / "scoring.log")
        )
        procs.append(start("gateway.app:create_app", gp, gateway_env, work / "gateway.log"))
        wait_ready(scoring, procs[0])
        wait_ready(gateway, procs[1])

        gov = Principal(sub="bench-government", kind=PrincipalKind.GOVERNMENT)
        direct_token = issuer.mint(gov, "scoring", ttl=3600)
        path = load_scores(scoring, direct_token, args.size)
        r = httpx.post(
            f"{gateway}/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(creds["government"]["client_id"], creds["government"]["client_secret"]),
        )
        r.raise_for_status()
        gateway_token = r.json()["access_token"]
        direct_url = scoring + path
        via_url = gateway + "/v1/scoring" + path.removeprefix("/v1")
        assert (
            httpx.get(via_url, headers={"Authorization": f"Bearer {gateway_token}"}).status_code
            == 200
        )

        print(
            f"endpoint: GET {path}  ({args.size} scored enterprises, {os.cpu_count()} cores, "
            f"gateway upstream transport: {args.transport})"
        )
        measure_and_report(
            args, wrk, procs[1].pid, (direct_url, direct_token), (via_url, gateway_token)
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        asyncio.run(admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
