"""Starting the platform as real processes: used by `make run`, the reliability suite and the
load benchmark.

Each component runs under uvicorn on 127.0.0.1 (port = its base port + an offset, so a test
platform can run beside `make run`), with its settings passed as prefixed environment
variables, and serves its metrics on its port + 100 (never on the public port). Components
can be stopped and restarted one by one, as the fault tests need.

Nothing stands in front of the gateway here, so it trusts no X-Forwarded-For unless told
which peers are proxies (`forwarded_allow_ips`, uvicorn's own option).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from shared.components import COMPONENTS, METRICS_PORT_STEP, UPSTREAMS, Component, component

HOST = "127.0.0.1"
BANK_SIMULATOR_PORT = 8090
# The web portal logs enterprises in through the development provider too, with its own
# callback; and staff through the provider's OpenID Connect side.
PORTAL_CALLBACK = "/auth/esso/callback"
PORTAL_STAFF_CALLBACK = "/auth/staff/callback"
# The portal's registration as a relying party of the development OpenID Connect provider,
# and the name of that provider for the gateway (part of each staff principal's sub).
PORTAL_OIDC_CLIENT = "innovation-points-portal"
STAFF_PROVIDER = "dev"
# The ids of the banks the credit service seeds (its data migration).
BANK_IDS = ("icbc-binjiang", "hzub-binjiang", "hzbank-binjiang")


@dataclass
class Launcher:
    database_url: str
    var: Path
    port_offset: int = 0
    environment: str = "development"
    # Peers whose X-Forwarded-For the gateway believes (uvicorn --forwarded-allow-ips);
    # None: no proxy in front, the peer's own address counts.
    forwarded_allow_ips: str | None = None
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # uvicorn worker processes per component (1 when absent): `make bench-load --production`
    # runs the production counts (docs/deploy.md), each worker standing in for a replica.
    workers: dict[str, int] = field(default_factory=dict)
    creds: dict[str, Any] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.var = self.var.resolve()
        (self.var / "logs").mkdir(parents=True, exist_ok=True)

    # -- addresses ------------------------------------------------------------------------

    def port(self, name: str) -> int:
        if name == "bank-simulator":
            return BANK_SIMULATOR_PORT + self.port_offset
        return component(name).port + self.port_offset

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.port(name)}"

    def metrics_port(self, name: str) -> int:
        return self.port(name) + METRICS_PORT_STEP

    def portal_url(self) -> str:
        return self.url("portal")

    # -- configuration --------------------------------------------------------------------

    def portal_oidc_secret(self) -> str:
        """The portal's client secret at the development OpenID Connect provider, made once
        and kept (like the webhook secrets), so a restart keeps both sides agreeing."""
        path = self.var / "idp-oidc-client.json"
        if path.exists():
            data = json.loads(path.read_text())
            if data.get("client_id") == PORTAL_OIDC_CLIENT and data.get("client_secret"):
                return str(data["client_secret"])
        secret = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        path.write_text(json.dumps({"client_id": PORTAL_OIDC_CLIENT, "client_secret": secret}))
        path.chmod(0o600)
        return secret

    def staff_provider(self) -> dict[str, Any]:
        """The development provider as the gateway's staff provider (GATEWAY_STAFF_PROVIDERS):
        its `org` claim names the government or one of the demo banks."""
        idp = self.url("idp")
        return {
            "name": STAFF_PROVIDER,
            "issuer": idp,
            "jwks_url": f"{idp}/oidc/jwks",
            "audience": PORTAL_OIDC_CLIENT,
            "org": "claim:org",
            "orgs": ["government", *BANK_IDS],
            "role_claim": "roles",
            "operator_values": ["operator"],
        }

    def bank_webhook_secrets(self) -> dict[str, str]:
        """Per-bank webhook secrets (Standard Webhooks `whsec_` form), made once and kept."""
        path = self.var / "bank-webhooks.json"
        secrets: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if all(bank in secrets for bank in BANK_IDS):
            return secrets
        # A file from before a bank was added (or renamed) gets the missing secrets only.
        for bank in BANK_IDS:
            secrets.setdefault(bank, "whsec_" + base64.b64encode(os.urandom(24)).decode())
        path.write_text(json.dumps(secrets))
        path.chmod(0o600)
        return secrets

    def component_env(self, comp: Component) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        gateway = self.url("gateway")
        services = self.creds.get("services", {})
        values: dict[str, str] = {
            "ENVIRONMENT": self.environment,
            "DATABASE_URL": self.database_url,
            "JWKS_URL": f"{gateway}/.well-known/jwks.json",
            "VAR_DIR": str(self.var),
        }
        # One metrics port per process: workers sharing a socket would race for it.
        if comp.schema is not None and self.workers.get(comp.name, 1) == 1:
            values["METRICS_PORT"] = str(self.metrics_port(comp.name))
            values["METRICS_HOST"] = HOST
        if comp.name in services:
            values["TOKEN_URL"] = f"{gateway}/v1/auth/token"
            values["CLIENT_ID"] = services[comp.name]["client_id"]
            values["CLIENT_SECRET"] = services[comp.name]["client_secret"]
        if comp.name in ("credit", "policy"):
            values["SCORING_URL"] = self.url("scoring")
        if comp.name == "scoring":  # a run's comparison asks both for their what-ifs
            values["CREDIT_URL"] = self.url("credit")
            values["POLICY_URL"] = self.url("policy")
        if comp.name == "credit":
            sim = self.url("bank-simulator")
            hooks = {
                bank: {"url": f"{sim}/webhooks/{bank}", "secret": secret}
                for bank, secret in self.bank_webhook_secrets().items()
            }
            values["BANK_WEBHOOKS"] = json.dumps(hooks)
        if comp.name == "gateway":
            idp = self.url("idp")
            values.update(
                {
                    **{f"{name.upper()}_URL": self.url(name) for name in UPSTREAMS},
                    "KEY_FILE": str(self.var / "keys" / "issuer.json"),
                    "ESSO_LOGIN_URL": f"{idp}/opensso/spsaehandler/metaAlias/sp",
                    "ESSO_QUERY_URL": f"{idp}/rest/user/query",
                    "PUBLIC_URL": gateway,
                }
            )
            if self.environment == "development":
                # Every demo login comes from this one machine's address.
                values["RATE_LIMIT_AUTH"] = "600/minute"
        if comp.name == "portal":
            values.update(
                {
                    "GATEWAY_URL": gateway,
                    "PUBLIC_URL": self.url("portal"),
                    "ESSO_LOGIN_URL": f"{self.url('idp')}/opensso/spsaehandler/metaAlias/sp",
                    "SESSION_KEY_FILE": str(self.var / "keys" / "portal-session.key"),
                }
            )
            values.update(self.portal_staff_env())
        if comp.name == "idp":
            values["ENTERPRISES_FILE"] = str(self.var / "demo-enterprises.json")
            callbacks = [
                f"{gateway}/v1/auth/esso/callback",
                f"{self.portal_url()}{PORTAL_CALLBACK}",
            ]
            values["ALLOWED_CALLBACKS"] = json.dumps(callbacks)
            # The demo season (`make run`) and the tests log enterprises in by script.
            values["SIMULATE_LOGIN"] = "true"
            values["ISSUER"] = self.url("idp")
            values["OIDC_KEY_FILE"] = str(self.var / "keys" / "idp-oidc.json")
            values["OIDC_CLIENTS"] = json.dumps(
                [
                    {
                        "client_id": PORTAL_OIDC_CLIENT,
                        "secret": self.portal_oidc_secret(),
                        "redirect_uris": [f"{self.portal_url()}{PORTAL_STAFF_CALLBACK}"],
                        "name": "企业创新积分 web portal",
                    }
                ]
            )
        values.update(self.extra_env.get(comp.name, {}))
        if (
            comp.name == "gateway"
            and values["ENVIRONMENT"] != "production"
            and component("idp").available()
        ):
            # Staff sign in at the development provider. Never offered to a production
            # gateway (which would refuse to start with it); one may be configured instead.
            values.setdefault("STAFF_PROVIDERS", json.dumps([self.staff_provider()]))
        prefix = comp.env_prefix
        for key, value in values.items():
            # A variable already set by the caller wins: `make run` can be configured.
            env.setdefault(prefix + key, value)
        return env

    def portal_staff_env(self) -> dict[str, str]:
        """What the portal needs for staff sign-in (PORTAL_ prefix): the provider to send
        staff to, and its own gateway client (kind `portal`) for the token exchange."""
        values = {
            "STAFF_PROVIDERS": json.dumps(
                [
                    {
                        "name": STAFF_PROVIDER,
                        "label": "工作人员统一身份认证（开发环境）",
                        "issuer": self.url("idp"),
                        "client_id": PORTAL_OIDC_CLIENT,
                        "client_secret": self.portal_oidc_secret(),
                        "scope": "openid profile",
                    }
                ],
                ensure_ascii=False,
            )
        }
        portal = self.creds.get("portal")
        if isinstance(portal, dict):
            values["GATEWAY_CLIENT_ID"] = str(portal["client_id"])
            values["GATEWAY_CLIENT_SECRET"] = str(portal["client_secret"])
        return values

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None) -> None:
        log = (self.var / "logs" / f"{name}.log").open("ab")
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_bank_simulator(self) -> None:
        cmd = [sys.executable, "-m", "devtools.bank_simulator", "--host", HOST]
        cmd += ["--port", str(self.port("bank-simulator"))]
        for bank, secret in self.bank_webhook_secrets().items():
            cmd += ["--secret", f"{bank}={secret}"]
        self._spawn("bank-simulator", cmd, None)

    def start(self, name: str, *, wait: bool = True) -> None:
        comp = component(name)
        cmd = [sys.executable, "-m", "uvicorn", "--factory", comp.factory, "--host", HOST]
        cmd += ["--port", str(self.port(name)), "--log-level", "warning", "--no-access-log"]
        if self.workers.get(name, 1) > 1:
            cmd += ["--workers", str(self.workers[name])]
        if comp.public:  # the gateway and the portal believe X-Forwarded-For only if told
            if self.forwarded_allow_ips is None:
                cmd += ["--no-proxy-headers"]
            else:
                cmd += ["--proxy-headers", "--forwarded-allow-ips", self.forwarded_allow_ips]
        self._spawn(name, cmd, self.component_env(comp))
        if wait:
            self.wait_ready(name)

    def start_all(self) -> list[str]:
        self.start_bank_simulator()
        started = []
        for comp in COMPONENTS:
            if comp.available():
                self.start(comp.name, wait=False)
                started.append(comp.name)
        for name in started:
            self.wait_ready(name)
        return started

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        comp = component(name)
        path = comp.ready_path
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.var}/logs/{name}.log")
            try:
                if httpx.get(self.url(name) + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not become ready; see {self.var}/logs/{name}.log")

    def stop(self, name: str, timeout: float = 10) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def exited(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]
