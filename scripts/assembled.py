"""The assembled platform as real processes on its own PostgreSQL: for the reliability suite
and `make bench-load`.

Everything runs on 127.0.0.1 at a port offset, against an embedded PostgreSQL with its own
data directory (so stopping that server for a fault test disturbs nothing else) and a fresh
database per start (so every run begins from the same state). The demo population is loaded
through the gateway exactly as `make run` does, only smaller.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scripts.demo_data import load_demo_through_gateway, prepare_demo_files
from scripts.launcher import PORTAL_OIDC_CLIENT, PORTAL_STAFF_CALLBACK, Launcher
from scripts.migrate import migrate_all
from shared.pg import admin_execute, embedded_url, other_database

RELIABILITY_VAR = Path("var/reliability")
# IP_RELIABILITY_PORT_OFFSET lets two checkouts run the suite side by side on one machine.
PORT_OFFSET = int(os.environ.get("IP_RELIABILITY_PORT_OFFSET", "10000"))
DEFAULT_SIZE = 600
PERIODS = (2024, 2025)

# Load principals send far more than a person would: the limits are raised by configuration,
# as an operator would for a load test, never by code.
LOAD_ENV: dict[str, dict[str, str]] = {
    "gateway": {
        "RATE_LIMIT_ENTERPRISE": "10000/second",
        "RATE_LIMIT_CLIENT": "10000/second",
        "RATE_LIMIT_AUTH": "100000/minute",
        # Small enough that the oversized-body test sends a few MiB, not the default 64.
        "MAX_BODY_BYTES": str(2 * 1024 * 1024),
        # A stopped service is retried after 2 s rather than 15, so recovery fits a test.
        "BREAKER_TTL": "2",
    },
    # Short polls, so a consumer catches up within the tests' patience.
    "credit": {"SYNC_INTERVAL": "1", "OUTBOX_INTERVAL": "1"},
    "policy": {"SYNC_INTERVAL": "1"},
}


@dataclass
class Assembled:
    var: Path
    pgdata: Path
    admin_url: str
    database: str
    launcher: Launcher
    enterprises: list[dict[str, str]] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return other_database(self.admin_url, self.database)

    @property
    def gateway(self) -> str:
        return self.launcher.url("gateway")

    @property
    def creds(self) -> dict[str, Any]:
        return self.launcher.creds

    # -- tokens, obtained as real clients obtain them ------------------------------------

    def client_token(self, client_id: str, secret: str) -> str:
        r = httpx.post(
            f"{self.gateway}/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=30,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def government_token(self) -> str:
        gov = self.creds["government"]
        return self.client_token(gov["client_id"], gov["client_secret"])

    def bank_token(self, bank_id: str) -> str:
        bank = next(b for b in self.creds["banks"] if b["bank_id"] == bank_id)
        return self.client_token(bank["client_id"], bank["client_secret"])

    def enterprise_token(self, uscc: str) -> str:
        """The mini-app login: the identity provider's ssotoken, exchanged at the gateway."""
        r = httpx.post(
            f"{self.launcher.url('idp')}/simulate-login", data={"uscc": uscc}, timeout=30
        )
        r.raise_for_status()
        sso = r.json()["ssotoken"]
        r = httpx.post(f"{self.gateway}/v1/auth/esso/exchange", json={"ssotoken": sso}, timeout=30)
        r.raise_for_status()
        return str(r.json()["access_token"])

    def staff_relying_party(self) -> dict[str, str]:
        """The portal's registrations for staff sign-in, for a client playing its part: at the
        development OpenID Connect provider, and its gateway client for the token exchange."""
        portal = self.creds["portal"]
        return {
            "issuer": self.launcher.url("idp"),
            "client_id": PORTAL_OIDC_CLIENT,
            "client_secret": self.launcher.portal_oidc_secret(),
            "redirect_uri": self.launcher.portal_url() + PORTAL_STAFF_CALLBACK,
            "gateway_client_id": str(portal["client_id"]),
            "gateway_client_secret": str(portal["client_secret"]),
        }

    def scored_enterprises(self, count: int) -> list[str]:
        """USCCs with a published score in the newest period (the negative list has none)."""
        headers = {"Authorization": f"Bearer {self.government_token()}"}
        found: list[str] = []
        with httpx.Client(base_url=self.gateway, headers=headers, timeout=30) as c:
            for e in self.enterprises:
                if c.get(f"/v1/scoring/enterprises/{e['uscc']}/score").status_code == 200:
                    found.append(e["uscc"])
                    if len(found) == count:
                        break
        return found

    # -- the database server --------------------------------------------------------------

    def _server(self) -> Any:
        from pgserver import postgres_server

        return postgres_server.get_server(self.pgdata, cleanup_mode=None)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        # pgserver makes one function per bundled binary at import time, unseen by mypy.
        pg_ctl: Callable[..., str] = _commands.__dict__["pg_ctl"]
        pg_ctl(list(args), pgdata=self.pgdata, user=self._server().system_user)

    def stop_postgres(self) -> None:
        # fast: open connections are cut, as when a database host restarts.
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start_postgres(self) -> None:
        self._server().ensure_postgres_running()

    def postgres_running(self) -> bool:
        try:
            self._pg_ctl("status")
        except subprocess.CalledProcessError:
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------------

    def wait_consumers(self, period: int, timeout: float = 60) -> None:
        """Until credit and policy have taken in the newest published evaluation."""
        headers = {"Authorization": f"Bearer {self.government_token()}"}
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.gateway, headers=headers, timeout=30) as c:
            while time.monotonic() < deadline:
                credit = c.get("/v1/credit/stats")
                pools = c.get("/v1/policy/pools")
                if (
                    credit.status_code == 200
                    and (credit.json().get("evaluation") or {}).get("period") == period
                    and pools.status_code == 200
                    and any(p.get("members", 0) for p in pools.json()["items"])
                ):
                    return
                time.sleep(0.5)
        raise RuntimeError("credit and policy did not take in the published evaluation")

    def close(self) -> None:
        self.launcher.stop_all()
        try:
            if not self.postgres_running():
                self.start_postgres()
            asyncio.run(
                admin_execute(
                    self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'
                )
            )
        finally:
            # Nothing of the suite outlives it: its server is stopped, its data dir kept.
            self.stop_postgres()


def start_assembled(
    var: Path = RELIABILITY_VAR,
    *,
    size: int = DEFAULT_SIZE,
    port_offset: int = PORT_OFFSET,
    extra_env: dict[str, dict[str, str]] | None = None,
    workers: dict[str, int] | None = None,
) -> Assembled:
    from gateway.bootstrap import seed_demo_clients

    var = var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    pgdata = var / "pgdata"
    admin_url = embedded_url(pgdata)
    database = f"ip_rel_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{database}"'))
    env = {name: dict(values) for name, values in LOAD_ENV.items()}
    for name, values in (extra_env or {}).items():
        env.setdefault(name, {}).update(values)
    launcher = Launcher(
        database_url=other_database(admin_url, database),
        var=var,
        port_offset=port_offset,
        extra_env=env,
        workers=dict(workers or {}),
    )
    platform = Assembled(var, pgdata, admin_url, database, launcher)
    try:
        migrate_all(platform.database_url)
        prepare_demo_files(var, size)
        platform.enterprises = json.loads((var / "demo-enterprises.json").read_text())
        launcher.creds = asyncio.run(seed_demo_clients(platform.database_url, var))
        launcher.start_all()
        load_demo_through_gateway(launcher.url("gateway"), launcher.creds, var)
        platform.wait_consumers(PERIODS[-1])
    except BaseException:
        platform.close()
        raise
    return platform
