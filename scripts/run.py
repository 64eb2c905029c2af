"""`make run`: the whole platform with demo data, on this machine.

1. the database: DATABASE_URL if set, else the embedded PostgreSQL under var/pgdata;
2. every schema migrated; the gateway's signing key and demo clients created (var/);
3. the gateway, the three services, the development identity provider, the web portal and a
   bank webhook receiver started with uvicorn on 127.0.0.1 (8000, 8001-8003, 8009, 8010, 8090;
   metrics on 8100-8103 and 8110);
4. on first start, the demo data (5,036 enterprises, 2024 and 2025) imported through the
   gateway as the government portal would, both periods evaluated and published; the credit
   and policy services pick the publications up from the event feed;
5. URLs, demo credentials and the demo staff accounts (who signs in at the development
   OpenID Connect provider, through the web portal) printed; Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from scripts.demo_data import (
    BACKBOOK_PERIOD,
    build_backbook,
    load_demo_through_gateway,
    prepare_demo_files,
    run_demo_challenger,
    simulate_demo_activity,
)
from scripts.launcher import HOST, PORTAL_STAFF_CALLBACK, STAFF_PROVIDER, Launcher
from scripts.migrate import migrate_all
from shared.components import component
from shared.pg import embedded_running, resolve_database_url, stop_embedded

VAR = Path("var").resolve()


def main() -> None:
    VAR.mkdir(exist_ok=True)
    external = bool(os.environ.get("DATABASE_URL"))
    pgdata = VAR / "pgdata"
    # The embedded server this run starts is stopped with it (Ctrl-C); one that was already
    # running (a test session, an earlier run left by a crash) is left as found.
    owns_database = not external and not embedded_running(pgdata)
    db_url = resolve_database_url(os.environ.get("DATABASE_URL"), VAR)
    print("database:", "external (DATABASE_URL)" if external else f"embedded ({VAR}/pgdata)")
    print("migrated:", ", ".join(migrate_all(db_url)))
    prepare_demo_files(VAR)

    launcher = Launcher(database_url=db_url, var=VAR)
    try:
        from gateway.bootstrap import seed_demo_clients

        launcher.creds = asyncio.run(seed_demo_clients(db_url, VAR))
    except ModuleNotFoundError:
        print("gateway not available: services only")

    def stop_database() -> None:
        if owns_database and stop_embedded(pgdata):
            print("embedded PostgreSQL stopped (its data stays in var/pgdata)")

    def stop(*_: Any) -> None:
        launcher.stop_all()
        stop_database()
        print("\nstopped.")
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        started = launcher.start_all()
        gateway, idp = launcher.url("gateway"), launcher.url("idp")

        def after_publish(period: int) -> None:
            if period == BACKBOOK_PERIOD:  # SYNTHETIC loans on the 2024 scores (issue 13)
                build_backbook(gateway, idp, launcher.creds, VAR)

        load_demo_through_gateway(gateway, launcher.creds, VAR, after_publish)
        simulate_demo_activity(gateway, idp, launcher.creds, VAR)
        run_demo_challenger(gateway, launcher.creds)
    except BaseException:
        launcher.stop_all()
        stop_database()
        raise

    print_running(launcher, started)
    print("Ctrl-C stops everything.")
    while True:
        dead = launcher.exited()
        if dead:
            print(f"{', '.join(dead)} stopped unexpectedly; see {VAR / 'logs'}")
            stop()
        time.sleep(1)


def print_running(launcher: Launcher, started: list[str]) -> None:
    """Where everything is: URLs, metrics ports, logs, the demo credentials and accounts."""
    print("\nInnovation points platform is running:")
    for name in started:
        if name == "portal":
            print(f"  {name:15} {launcher.url(name)}   (web portal: 企业码 and staff sign-in)")
        else:
            print(f"  {name:15} {launcher.url(name)}   (OpenAPI: {launcher.url(name)}/docs)")
    print(f"  {'bank webhooks':15} {launcher.url('bank-simulator')}   (simulated bank systems)")
    scraped = [n for n in started if component(n).metrics_port is not None]
    ports = ", ".join(f"{n} {launcher.metrics_port(n)}" for n in scraped)
    print(f"  metrics (Prometheus, internal ports on {HOST}): {ports}")
    print(f"  logs: {VAR / 'logs'}   demo credentials: {VAR / 'demo-credentials.json'}")
    if launcher.creds:
        shown = {k: v for k, v in launcher.creds.items() if k != "services"}
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    if "idp" in started:
        print_staff_accounts(launcher, "portal" in started)


def print_staff_accounts(launcher: Launcher, portal: bool) -> None:
    """Who can sign in as staff, and where (the development provider offers these)."""
    from devtools.idp.staff import GOVERNMENT, default_accounts

    if portal:
        login = f"{launcher.portal_url()}/auth/staff/login?provider={STAFF_PROVIDER}"
        print(f"\nStaff sign-in: {login} (工作人员 on the portal's home page)")
    else:
        print(
            f"\nStaff sign-in (OpenID Connect, {launcher.url('idp')}): through the web portal "
            f"({launcher.portal_url()}{PORTAL_STAFF_CALLBACK} is registered) once it runs"
        )
    for account in default_accounts():
        org = "government" if account.org == GOVERNMENT else f"bank {account.org}"
        print(f"  {account.name:6} {org:22} {account.role:9} {account.org_label}")


if __name__ == "__main__":
    main()
