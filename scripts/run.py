"""`make run`: the whole platform with demo data, on this machine.

1. the database: DATABASE_URL if set, else the embedded PostgreSQL under var/pgdata;
2. every schema migrated; the gateway's signing key and demo clients created (var/);
3. the gateway, the three services and the development identity provider started with
   uvicorn on 127.0.0.1 (8000, 8001-8003, 8009);
4. on first start, the demo data (5,036 enterprises, 2024 and 2025) imported through the
   gateway as the government portal would, both periods evaluated and published; the credit
   and policy services pick the publications up from the event feed;
5. URLs and demo credentials printed; Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.components import COMPONENTS, Component
from scripts.migrate import migrate_all
from shared.pg import resolve_database_url

VAR = Path("var").resolve()
HOST = "127.0.0.1"


def url_of(name: str) -> str:
    comp = next(c for c in COMPONENTS if c.name == name)
    return f"http://{HOST}:{comp.port}"


def component_env(comp: Component, db_url: str, creds: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    gateway = url_of("gateway")
    services = creds.get("services", {})
    prefix = comp.name.upper() + "_"
    common = {
        "ENVIRONMENT": "development",
        "DATABASE_URL": db_url,
        "JWKS_URL": f"{gateway}/.well-known/jwks.json",
        "VAR_DIR": str(VAR),
    }
    if comp.name in services:
        common.update(
            {
                "TOKEN_URL": f"{gateway}/v1/auth/token",
                "CLIENT_ID": services[comp.name]["client_id"],
                "CLIENT_SECRET": services[comp.name]["client_secret"],
            }
        )
    if comp.name in ("credit", "policy"):
        common["SCORING_URL"] = url_of("scoring")
    if comp.name == "credit":
        hooks = {
            bank: {"url": f"http://{HOST}:{BANK_SIMULATOR_PORT}/webhooks/{bank}", "secret": s}
            for bank, s in bank_webhook_secrets().items()
        }
        common["BANK_WEBHOOKS"] = json.dumps(hooks)
    if comp.name == "gateway":
        common.update(
            {
                "SCORING_URL": url_of("scoring"),
                "CREDIT_URL": url_of("credit"),
                "POLICY_URL": url_of("policy"),
                "KEY_FILE": str(VAR / "keys" / "issuer.json"),
                "ESSO_LOGIN_URL": f"{url_of('idp')}/opensso/spsaehandler/metaAlias/sp",
                "ESSO_QUERY_URL": f"{url_of('idp')}/rest/user/query",
                "PUBLIC_URL": gateway,
            }
        )
    if comp.name == "idp":
        common.update(
            {
                "ENTERPRISES_FILE": str(VAR / "demo-enterprises.json"),
            }
        )
    for key, value in common.items():
        env.setdefault(prefix + key, value)
    return env


BANK_SIMULATOR_PORT = 8090
BANK_IDS = ("icbc-binjiang", "hzunited-binjiang", "hzbank-binjiang")


def bank_webhook_secrets() -> dict[str, str]:
    """Per-bank webhook secrets (Standard Webhooks `whsec_` form), made once and kept."""
    path = VAR / "bank-webhooks.json"
    if path.exists():
        secrets: dict[str, str] = json.loads(path.read_text())
        return secrets
    secrets = {
        bank: "whsec_" + base64.b64encode(os.urandom(24)).decode() for bank in BANK_IDS
    }
    path.write_text(json.dumps(secrets))
    path.chmod(0o600)
    return secrets


def start_bank_simulator(secrets: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "services.credit.bank_simulator", "--host", HOST]
    cmd += ["--port", str(BANK_SIMULATOR_PORT)]
    for bank, secret in secrets.items():
        cmd += ["--secret", f"{bank}={secret}"]
    log = open(VAR / "logs" / "bank-simulator.log", "ab")  # noqa: SIM115 - lives with the child
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def start(comp: Component, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        comp.factory,
        "--host",
        HOST,
        "--port",
        str(comp.port),
        "--log-level",
        "warning",
    ]
    log = open(VAR / "logs" / f"{comp.name}.log", "ab")  # noqa: SIM115 - lives with the child
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(comp: Component, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    path = "/readyz" if comp.schema else "/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{comp.name} exited; see var/logs/{comp.name}.log")
        try:
            if httpx.get(f"http://{HOST}:{comp.port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{comp.name} did not become ready; see var/logs/{comp.name}.log")


def main() -> None:
    VAR.mkdir(exist_ok=True)
    (VAR / "logs").mkdir(exist_ok=True)
    db_url = resolve_database_url(os.environ.get("DATABASE_URL"), VAR)
    print("database:", "external" if os.environ.get("DATABASE_URL") else f"embedded ({VAR}/pgdata)")
    print("migrated:", ", ".join(migrate_all(db_url)))

    from scripts.demo_data import prepare_demo_files

    prepare_demo_files(VAR)
    creds: dict[str, Any] = {}
    try:
        from gateway.bootstrap import seed_demo_clients

        creds = asyncio.run(seed_demo_clients(db_url, VAR))
    except ModuleNotFoundError:
        print("gateway not available: services only")

    procs: list[tuple[Component, subprocess.Popen[bytes]]] = []

    def stop(*_: Any) -> None:
        if bank_sim.poll() is None:
            bank_sim.terminate()
        for _comp, proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for _comp, proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("\nstopped.")
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    bank_sim = start_bank_simulator(bank_webhook_secrets())
    for comp in COMPONENTS:
        if not comp.available():
            print(f"skipping {comp.name}: not built yet")
            continue
        proc = start(comp, component_env(comp, db_url, creds))
        procs.append((comp, proc))
    for comp, proc in procs:
        wait_ready(comp, proc)

    from scripts.demo_data import load_demo_through_gateway

    load_demo_through_gateway(url_of("gateway"), creds, VAR)

    print()
    print("Innovation points platform is running:")
    for comp, _proc in procs:
        print(f"  {comp.name:8} http://{HOST}:{comp.port}  (docs: /docs)")
    print(f"  banks'   http://{HOST}:{BANK_SIMULATOR_PORT}  (webhook receiver simulator)")
    print(f"  demo credentials: {VAR / 'demo-credentials.json'}")
    if creds:
        print(json.dumps({k: v for k, v in creds.items() if k != "services"}, indent=2))
    print("Ctrl-C stops everything.")
    while True:
        for comp, proc in procs:
            if proc.poll() is not None:
                print(f"{comp.name} stopped unexpectedly; see var/logs/{comp.name}.log")
                stop()
        time.sleep(1)


if __name__ == "__main__":
    main()
