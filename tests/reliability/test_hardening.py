"""The findings of the adversarial probe (issue 10), replayed as attacks on the assembled
platform: real processes, every request from outside through public ports.

Where a finding depends on how a process is configured (forwarded headers, production
settings, secure cookies, a failing upstream), the test starts one more gateway or identity
provider as a real process beside the platform, on the platform's database and keys, with
that configuration; the platform itself is left as it was.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from argon2 import PasswordHasher
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import text

from scripts.assembled import PORT_OFFSET, Assembled
from scripts.launcher import HOST, Launcher
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.tokens import TokenIssuer
from shared.db import create_engine
from tests.reliability.conftest import BANK_X, PROBLEM, Principals, client

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "innovation-points-gateway"
PRODUCT_X = "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01"
# Not UTF-8: one Latin-1 byte, as the probe sent it.
LATIN1 = b"caf\xe9"
# Extra processes sit inside the platform's block of ports (offset + 0..999).
TRUSTED_SLOT, UNTRUSTED_SLOT, PRODUCTION_SLOT = 300, 500, 700
STAND_IN_PORT = 8950 + PORT_OFFSET


def assert_problem(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.request.method, r.request.url.path, r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    assert r.json()["status"] == r.status_code


def assert_request_id(r: httpx.Response) -> None:
    rid = r.headers.get("x-request-id")
    assert rid, (r.request.url.path, r.status_code, dict(r.headers))
    if r.headers.get("content-type", "").startswith(PROBLEM):
        assert r.json().get("request_id") == rid, r.text


# --- extra processes ---------------------------------------------------------------------


def extra_launcher(
    assembled: Assembled, slot: int, env: dict[str, dict[str, str]], **kw: Any
) -> Launcher:
    return Launcher(
        database_url=assembled.database_url,
        var=assembled.var / f"extra-{slot}",
        port_offset=PORT_OFFSET + slot,
        extra_env=env,
        **kw,
    )


def shared_keys(assembled: Assembled) -> dict[str, str]:
    """The platform's signing key and client-secret key, so the demo clients work here too."""
    return {
        "VAR_DIR": str(assembled.var),
        "KEY_FILE": str(assembled.var / "keys" / "issuer.json"),
    }


class _StandIn(BaseHTTPRequestHandler):
    """An upstream that fails on request: `/v1/boom` is its own 500, `/v1/unavailable` 503."""

    def do_GET(self) -> None:
        status = {"/v1/boom": 500, "/v1/unavailable": 503}.get(self.path, 200)
        body = json.dumps({"status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer((HOST, STAND_IN_PORT), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{STAND_IN_PORT}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def trusted(assembled: Assembled, stand_in: str) -> Iterator[Launcher]:
    """A gateway behind a (pretend) TLS ingress at 127.0.0.1: it trusts X-Forwarded-For from
    there, sets secure cookies, and its policy upstream is the stand-in above."""
    idp = assembled.launcher.url("idp")
    env = {
        **shared_keys(assembled),
        "PUBLIC_URL": "https://gateway.test",
        # Per address; the tests below use distinct addresses and stay under it.
        "RATE_LIMIT_AUTH": "10/minute",
        "CLIENT_FAILURE_LIMIT": "5/minute",
        "POLICY_URL": stand_in,
        "BREAKER_TTL": "60",
        "ESSO_LOGIN_URL": f"{idp}/opensso/spsaehandler/metaAlias/sp",
        "ESSO_QUERY_URL": f"{idp}/rest/user/query",
    }
    launcher = extra_launcher(
        assembled, TRUSTED_SLOT, {"gateway": env}, forwarded_allow_ips="127.0.0.1"
    )
    try:
        launcher.start("gateway")
        yield launcher
    finally:
        launcher.stop_all()


def token_at(gateway: str, client_id: str, secret: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway}/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        headers=headers,
        timeout=30,
    )


# --- 1. a malformed header, or a service's own 500, never switches a service off --------


def test_a_malformed_header_is_refused_and_never_opens_the_breaker(
    assembled: Assembled, principals: Principals
) -> None:
    with client(assembled, principals.enterprise_a) as c:
        for _ in range(10):
            for name in ("User-Agent", "Accept-Language", "Accept", "If-None-Match", "Prefer"):
                r = c.get("/v1/scoring/indicators", headers={name: LATIN1})
                assert_problem(r, 400)
                assert_request_id(r)
                assert name in r.json()["detail"]
            r = c.post(
                "/v1/credit/applications",
                json={"product_id": PRODUCT_X, "amount": 100_000},
                headers={"Idempotency-Key": LATIN1},
            )
            assert_problem(r, 400)
            assert_request_id(r)
        # Text in UTF-8 is forwarded byte for byte; what the service makes of it is its own
        # answer (credit's keys are visible ASCII), passed back unchanged.
        r = c.get("/v1/scoring/indicators", headers={"User-Agent": "café/1.0".encode()})
        assert r.status_code == 200, r.text
        r = c.post(
            "/v1/credit/applications",
            json={"product_id": PRODUCT_X, "amount": 100_000},
            headers={"Idempotency-Key": "申请-1".encode()},
        )
        assert_problem(r, 422)
        assert r.json()["instance"] == "/v1/applications"
    # Sixty malformed requests later, everyone else is served: no breaker opened.
    with client(assembled, principals.government) as g:
        for path in ("/v1/scoring/indicators", "/v1/credit/banks", "/v1/policy/pools"):
            assert g.get(path).status_code == 200, path


def test_odd_bytes_in_any_header_are_never_a_500(
    assembled: Assembled, principals: Principals
) -> None:
    bearer = f"Bearer {principals.enterprise_a}".encode()
    cases: list[tuple[str, str, dict[str, bytes]]] = [
        ("GET", "/v1/me", {"Authorization": b"Bearer " + LATIN1}),
        ("GET", "/v1/me", {"Cookie": b"ip_access=" + LATIN1}),
        ("GET", "/v1/me", {"Cookie": b"__Host-ip_access=" + LATIN1}),
        ("GET", "/v1/scoring/indicators", {"Authorization": bearer, "X-Request-ID": LATIN1}),
        ("GET", "/v1/scoring/indicators", {"Authorization": bearer, "X-Forwarded-For": LATIN1}),
        ("GET", "/v1/scoring/indicators", {"Authorization": bearer, "Traceparent": LATIN1}),
        ("GET", "/v1/scoring/indicators", {"Authorization": bearer, "Content-Type": LATIN1}),
        ("POST", "/v1/auth/token", {"Content-Type": LATIN1}),
        ("POST", "/v1/auth/token", {"Authorization": b"Basic " + LATIN1}),
        ("POST", "/v1/auth/esso/exchange", {"Content-Type": b"application/json; x=" + LATIN1}),
        ("POST", "/v1/auth/refresh", {"Cookie": b"ip_refresh=" + LATIN1}),
        ("POST", "/v1/auth/logout", {"Origin": LATIN1}),
    ]
    with client(assembled) as c:
        for method, path, headers in cases:
            r = c.request(method, path, headers=headers, content=b"{}")
            assert r.status_code < 500, (method, path, headers, r.status_code, r.text)
            assert_request_id(r)


def test_a_services_own_500_passes_through_and_does_not_open_the_breaker(
    assembled: Assembled, trusted: Launcher
) -> None:
    bank = next(b for b in assembled.creds["banks"] if b["bank_id"] == BANK_X)
    r = token_at(trusted.url("gateway"), bank["client_id"], bank["client_secret"])
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    with httpx.Client(base_url=trusted.url("gateway"), headers=auth, timeout=30) as c:
        for _ in range(50):
            r = c.get("/v1/policy/boom")
            assert r.status_code == 500
            assert r.json() == {"status": 500}  # the service's answer, unchanged
            assert_request_id(r)
        assert c.get("/v1/policy/ok").status_code == 200
        # What the breaker is for still opens it: the upstream saying it is unavailable.
        for _ in range(5):
            assert c.get("/v1/policy/unavailable").status_code == 503
        r = c.get("/v1/policy/ok")
        assert_problem(r, 503)
        assert "paused" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1


# --- 2. production refuses the development provider and placeholder secrets --------------


def compose_environment(service: str, environment: str) -> dict[str, str]:
    """The service's environment in deploy/compose.yaml, interpolated as compose would with
    only ENVIRONMENT set (every other `${VAR:-default}` takes its default)."""
    doc = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    given = {"ENVIRONMENT": environment, "POSTGRES_PASSWORD": "unused"}

    def value(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3) or ""
        return given.get(name, default)

    env = doc["services"][service]["environment"]
    pattern = re.compile(r"\$\{(\w+)(:?[-?]([^}]*))?\}")
    return {k: pattern.sub(value, str(v)) for k, v in env.items()}


def unprefixed(env: dict[str, str], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix)}


def exits(launcher: Launcher, name: str, timeout: float = 60) -> str:
    (launcher.var / "logs" / f"{name}.log").unlink(missing_ok=True)
    launcher.start(name, wait=False)
    proc = launcher.procs[name]
    try:
        code = proc.wait(timeout=timeout)
    except Exception:
        launcher.stop_all()
        raise AssertionError(f"{name} started with a configuration it must refuse") from None
    assert code != 0
    launcher.stop_all()
    return (launcher.var / "logs" / f"{name}.log").read_text(errors="replace")


def test_production_refuses_the_development_provider_and_placeholders(
    assembled: Assembled,
) -> None:
    compose = unprefixed(compose_environment("gateway", "production"), "GATEWAY_")
    # Compose's own production settings: the gateway must not start with them.
    env = {**compose, **shared_keys(assembled), "DATABASE_URL": assembled.database_url}
    log = exits(extra_launcher(assembled, PRODUCTION_SLOT, {"gateway": env}), "gateway")
    assert "development identity provider" in log or "placeholder" in log, log[-2000:]
    # Real endpoints but a placeholder secret: refused as well.
    real = {
        **env,
        "ESSO_LOGIN_URL": "https://esso.zjzwfw.gov.cn/opensso/spsaehandler/metaAlias/sp",
        "ESSO_QUERY_URL": "https://ssoapi.zjzwfw.gov.cn/rest/user/query",
        "ESSO_PROJECT_ID": "binjiang-innovation-points",
        "CLIENT_SECRET_HMAC_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
    }
    for secret in ("example-esso-secret", "dev-esso-secret-0123", "please-change-me-now"):
        bad = {**real, "ESSO_PROJECT_SECRET": secret}
        log = exits(extra_launcher(assembled, PRODUCTION_SLOT, {"gateway": bad}), "gateway")
        assert "placeholder" in log, log[-2000:]
    # The development provider itself follows compose's ENVIRONMENT and refuses production.
    idp = unprefixed(compose_environment("idp", "production"), "IDP_")
    log = exits(extra_launcher(assembled, PRODUCTION_SLOT, {"idp": idp}), "idp")
    assert "refuses to run in production" in log, log[-2000:]
    # The control: real settings and real secrets start.
    good = {**real, "ESSO_PROJECT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex}
    launcher = extra_launcher(assembled, PRODUCTION_SLOT, {"gateway": good})
    try:
        launcher.start("gateway")
    finally:
        launcher.stop_all()


def test_the_development_provider_in_compose_offers_no_scripted_login(
    assembled: Assembled,
) -> None:
    idp_env = unprefixed(compose_environment("idp", "development"), "IDP_")
    idp_env["ENTERPRISES_FILE"] = str(assembled.var / "demo-enterprises.json")
    launcher = extra_launcher(assembled, PRODUCTION_SLOT, {"idp": idp_env})
    uscc = assembled.enterprises[0]["uscc"]
    try:
        launcher.start("idp")
        r = httpx.post(launcher.url("idp") + "/simulate-login", data={"uscc": uscc}, timeout=10)
        assert r.status_code == 404, r.text
        # What a browser login needs is still there.
        page = httpx.get(
            launcher.url("idp") + "/opensso/spsaehandler/metaAlias/sp",
            params={"spappurl": "http://localhost:8000/v1/auth/esso/callback?state=x"},
            timeout=10,
        )
        assert page.status_code == 200, page.text
    finally:
        launcher.stop_all()


# --- 3. service credentials are internal tokens, never the public API ---------------------


def test_service_credentials_never_open_the_public_api(assembled: Assembled) -> None:
    token_url = f"{assembled.gateway}/v1/auth/token"
    for service in ("credit", "policy"):
        svc = assembled.creds["services"][service]
        auth = (svc["client_id"], svc["client_secret"])
        for extra in ({}, {"audience": "gateway"}, {"audience": ""}):
            r = httpx.post(token_url, data={"grant_type": "client_credentials", **extra}, auth=auth)
            assert_problem(r, 400)
            assert r.json()["error"] == "invalid_target"
        r = httpx.post(
            token_url, data={"grant_type": "client_credentials", "audience": "scoring"}, auth=auth
        )
        assert r.status_code == 200, r.text
    # A service principal holding a gateway token anyway (signed with the real key, as one
    # issued before this fix was) is refused by the public proxy.
    keys = KeySet.import_key_set(json.loads((assembled.var / "keys" / "issuer.json").read_text()))
    issuer = TokenIssuer(keys, ISSUER)
    for sub in ("svc-credit", "svc-policy"):
        token = issuer.mint(Principal(sub=sub, kind=PrincipalKind.SERVICE), "gateway")
        with client(assembled, token) as c:
            for path in (
                "/v1/credit/webhook-deliveries",
                "/v1/credit/feed",
                "/v1/scoring/rankings?stage=growth&period=2025",
                "/v1/policy/pools",
                f"/v1/scoring/enterprises/{assembled.enterprises[0]['uscc']}/portrait",
            ):
                assert_problem(c.get(path), 403)
            assert_problem(c.get("/v1/me/dashboard"), 403)


def test_a_service_clients_internal_tokens_live_a_minute(assembled: Assembled) -> None:
    svc = assembled.creds["services"]["credit"]
    r = httpx.post(
        f"{assembled.gateway}/v1/auth/token",
        data={"grant_type": "client_credentials", "audience": "scoring"},
        auth=(svc["client_id"], svc["client_secret"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] <= 60
    claims = jwt.decode(
        r.json()["access_token"],
        KeySet.import_key_set(json.loads((assembled.var / "keys" / "issuer.json").read_text())),
    ).claims
    assert claims["exp"] - claims["iat"] <= 60


def test_scoring_model_drafts_are_the_governments(
    assembled: Assembled, principals: Principals
) -> None:
    version = f"9.{uuid.uuid4().int % 10**6}"
    with client(assembled, principals.government) as gov:
        r = gov.post("/v1/scoring/models", json={"version": version, "description": "draft"})
        assert r.status_code == 201, r.text
        assert gov.get(f"/v1/scoring/models/{version}").json()["status"] == "draft"
        listed = gov.get("/v1/scoring/models", params={"limit": 200}).json()["items"]
        assert version in {m["version"] for m in listed}
    with client(assembled, principals.enterprise_a) as ent:
        assert_problem(ent.get(f"/v1/scoring/models/{version}"), 404)
        listed = ent.get("/v1/scoring/models", params={"limit": 200}).json()["items"]
        assert listed and all(m["status"] == "published" for m in listed)


# --- 4. the login limits hold, and a failed try is cheap ----------------------------------


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    assembled: Assembled,
) -> None:
    env = {**shared_keys(assembled), "RATE_LIMIT_AUTH": "5/minute"}
    launcher = extra_launcher(assembled, UNTRUSTED_SLOT, {"gateway": env})
    try:
        launcher.start("gateway")
        gateway = launcher.url("gateway")
        codes = [
            token_at(gateway, f"nobody-{i}", "x", **{"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(6)
        ]
        assert [r.status_code for r in codes] == [401] * 5 + [429]
        assert int(codes[-1].headers["retry-after"]) >= 1
    finally:
        launcher.stop_all()


def test_forwarded_for_from_the_trusted_ingress_counts_the_real_address(
    trusted: Launcher,
) -> None:
    # Behind the ingress every request arrives from its address: were X-Forwarded-For not
    # read there, all callers would share one limit. The caller's own entries are ignored:
    # the ingress appends the address it saw, and that one is counted.
    gateway = trusted.url("gateway")

    def attempt(forwarded_for: str) -> int:
        client_id = f"nobody-{uuid.uuid4().hex[:8]}"  # no client's failure limit involved
        return token_at(gateway, client_id, "x", **{"X-Forwarded-For": forwarded_for}).status_code

    same_spoof = [attempt(f"198.18.0.1, 192.0.2.{i}") for i in range(12)]
    assert same_spoof == [401] * 12
    same_address = [attempt(f"198.18.0.{i}, 192.0.2.200") for i in range(11)]
    assert same_address == [401] * 10 + [429]


def test_failed_tries_lock_a_client_id_but_not_the_client_at_its_known_address(
    assembled: Assembled, trusted: Launcher
) -> None:
    gateway = trusted.url("gateway")
    gov = assembled.creds["government"]
    bank = next(b for b in assembled.creds["banks"] if b["bank_id"] == BANK_X)
    home, attacker, elsewhere = "198.51.100.7", "203.0.113.9", "198.51.100.8"

    def at(address: str, client_id: str, secret: str) -> httpx.Response:
        return token_at(gateway, client_id, secret, **{"X-Forwarded-For": address})

    assert at(home, gov["client_id"], gov["client_secret"]).status_code == 200
    wrong = [at(attacker, gov["client_id"], f"guess-{i}").status_code for i in range(5)]
    assert wrong == [401] * 5
    locked = at(attacker, gov["client_id"], "guess-5")
    assert_problem(locked, 429)
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    # Locked for every address the client was not using: even the right secret.
    assert_problem(at(attacker, gov["client_id"], gov["client_secret"]), 429)
    assert_problem(at(elsewhere, gov["client_id"], gov["client_secret"]), 429)
    # The client itself, where it works from, is not locked out by the attacker.
    assert at(home, gov["client_id"], gov["client_secret"]).status_code == 200
    # Nor is any other client.
    assert at(attacker, bank["client_id"], bank["client_secret"]).status_code == 200


async def test_client_secrets_are_keyed_digests_and_legacy_hashes_upgrade(
    assembled: Assembled,
) -> None:
    engine = create_engine(assembled.database_url, pool_size=1, max_overflow=0)
    secret = "legacy-" + uuid.uuid4().hex + uuid.uuid4().hex
    client_id = f"legacy-{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as conn:
            stored = (await conn.execute(text("SELECT secret_hash FROM gateway.clients"))).all()
            assert stored
            assert all(row[0].startswith("hmac-sha256$") for row in stored), stored
            # A client registered before this change keeps working, once, by argon2...
            await conn.execute(
                text(
                    "INSERT INTO gateway.clients (client_id, name, kind, secret_hash, scopes, "
                    "audiences) VALUES (:id, 'legacy portal', 'government', :hash, "
                    "ARRAY['scoring:read'], ARRAY[]::text[])"
                ),
                {"id": client_id, "hash": PasswordHasher().hash(secret)},
            )
        assert token_at(assembled.gateway, client_id, "wrong").status_code == 401
        async with engine.connect() as conn:
            row = await conn.scalar(
                text("SELECT secret_hash FROM gateway.clients WHERE client_id = :id"),
                {"id": client_id},
            )
        assert row.startswith("$argon2")  # a wrong secret changes nothing
        assert token_at(assembled.gateway, client_id, secret).status_code == 200
        async with engine.connect() as conn:
            row = await conn.scalar(
                text("SELECT secret_hash FROM gateway.clients WHERE client_id = :id"),
                {"id": client_id},
            )
        # ... and is then stored in the new form, which keeps working.
        assert row.startswith("hmac-sha256$"), row
        assert token_at(assembled.gateway, client_id, secret).status_code == 200
        assert token_at(assembled.gateway, client_id, secret + "x").status_code == 401
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM gateway.clients WHERE client_id = :id"), {"id": client_id}
            )
        await engine.dispose()


# --- 5. the development provider sends the ssotoken only to a configured callback ---------


def test_the_development_provider_checks_callbacks_exactly(assembled: Assembled) -> None:
    idp = assembled.launcher.url("idp")
    port = assembled.launcher.port("gateway")
    gateway = assembled.gateway
    good = f"{gateway}/v1/auth/esso/callback?goto=%2Fv1%2Fme&state=abc"
    evil = [
        f"http://127.0.0.1:{port}@evil.example/steal",
        f"{gateway}@evil.example/v1/auth/esso/callback",
        f"http://127.0.0.1:{port}.evil.example/v1/auth/esso/callback",
        f"https://127.0.0.1:{port}/v1/auth/esso/callback",
        f"http://127.0.0.1:{assembled.launcher.port('scoring')}/v1/auth/esso/callback",
        f"http://localhost.evil.example:{port}/v1/auth/esso/callback",
        f"{gateway}/v1/me",
        f"{gateway}/v1/auth/esso/callback/../../../v1/me",
        "http://evil.example/v1/auth/esso/callback",
        "//evil.example/v1/auth/esso/callback",
        f"http://127.0.0.1:{port}\\@evil.example/",
        "javascript:alert(1)//v1/auth/esso/callback",
    ]
    uscc = assembled.enterprises[0]["uscc"]
    with httpx.Client(base_url=idp, timeout=10) as c:
        page = "/opensso/spsaehandler/metaAlias/sp"
        assert c.get(page, params={"spappurl": good}).status_code == 200
        for url in evil:
            assert_problem(c.get(page, params={"spappurl": url}), 400)
            form = {"spappurl": url, "uscc": uscc, "attn_name": "x", "passed": "yes"}
            r = c.post("/face-check", data=form)
            assert_problem(r, 400)
            assert "location" not in r.headers
        form = {"spappurl": good, "uscc": uscc, "attn_name": "x", "passed": "yes"}
        back = c.post("/face-check", data=form)
        assert back.status_code == 303
        assert back.headers["location"].startswith(good + "&ssotoken=")


# --- 7. metrics, service paths, Host, cookies ---------------------------------------------


def test_metrics_are_not_on_the_public_port_but_on_the_internal_one(
    assembled: Assembled,
) -> None:
    launcher = assembled.launcher
    for name in ("gateway", "scoring", "credit", "policy"):
        r = httpx.get(launcher.url(name) + "/metrics", timeout=10)
        assert r.status_code == 404, (name, r.status_code)
        internal = httpx.get(f"http://{HOST}:{launcher.port(name) + 100}/metrics", timeout=10)
        assert internal.status_code == 200, name
        assert "http_requests_total" in internal.text
    gateway = httpx.get(f"http://{HOST}:{launcher.port('gateway') + 100}/metrics", timeout=10)
    assert 'upstream_circuit_state{component="gateway",upstream="scoring"}' in gateway.text


def test_a_created_resource_is_located_at_its_public_path(
    assembled: Assembled, principals: Principals
) -> None:
    with client(assembled, principals.enterprise_a) as c:
        r = c.post(
            "/v1/credit/applications",
            json={"product_id": PRODUCT_X, "amount": 100_000},
            headers={"Idempotency-Key": f"location-{uuid.uuid4()}"},
        )
        assert r.status_code == 201, r.text
        location = r.headers["location"]
        assert location == f"/v1/credit/applications/{r.json()['id']}"
        assert c.get(location).json()["id"] == r.json()["id"]


def test_redirects_never_reflect_the_host_header(
    assembled: Assembled, principals: Principals
) -> None:
    with client(assembled, principals.enterprise_a) as c:
        for path, target in (
            ("/v1/me/", "/v1/me"),
            ("/v1/scoring/indicators/", "/v1/scoring/indicators"),
        ):
            r = c.get(path, headers={"Host": "evil.example"})
            assert r.status_code in (307, 308), (path, r.status_code, r.text)
            assert r.headers["location"] == target, r.headers["location"]
            assert_request_id(r)


def cookie(header: str) -> tuple[str, str, list[str]]:
    """Name, value and the lower-cased attributes of one Set-Cookie header."""
    first, *attrs = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    return name, value, [a.lower() for a in attrs]


def assert_host_cookie(header: str) -> None:
    name, _, attrs = cookie(header)
    assert name.startswith("__Host-"), header
    assert "secure" in attrs and "path=/" in attrs, header
    assert not any(a.startswith("domain=") for a in attrs), header


def test_browser_cookies_are_host_prefixed_on_a_secure_deployment(
    assembled: Assembled, trusted: Launcher
) -> None:
    gateway = trusted.url("gateway")
    with httpx.Client(base_url=gateway, timeout=30) as c:
        start = c.get("/v1/auth/esso/login", params={"goto": "/v1/me"})
        assert start.status_code == 302
        assert_host_cookie(start.headers["set-cookie"])
        name, state, _ = cookie(start.headers["set-cookie"])
        assert name == "__Host-ip_esso_state"
        uscc = assembled.enterprises[0]["uscc"]
        sso = httpx.post(
            assembled.launcher.url("idp") + "/simulate-login", data={"uscc": uscc}, timeout=10
        ).json()["ssotoken"]
        done = c.get(
            "/v1/auth/esso/callback",
            params={"ssotoken": sso, "state": state, "goto": "/v1/me"},
            headers={"Cookie": f"{name}={state}"},
        )
        assert done.status_code == 303, done.text
        set_cookies = done.headers.get_list("set-cookie")
        # The session cookies, and the state cookie's deletion (which a browser ignores
        # without Secure), all in the __Host- form.
        for header in set_cookies:
            assert_host_cookie(header)
        jar = {cookie(h)[0]: cookie(h) for h in set_cookies}
        assert {"__Host-ip_access", "__Host-ip_refresh"} <= set(jar)
        assert all("httponly" in jar[n][2] for n in ("__Host-ip_access", "__Host-ip_refresh"))
        value = jar["__Host-ip_access"][1]
        me = c.get("/v1/me", headers={"Cookie": f"__Host-ip_access={value}"})
        assert me.status_code == 200, me.text
        assert me.json()["uscc"] == uscc
        # The unprefixed name is not read on a secure deployment: a cookie a sibling host
        # could set must not stand in for ours.
        plain = c.get("/v1/me", headers={"Cookie": f"ip_access={value}"})
        assert_problem(plain, 401)


def test_nothing_above_left_the_platform_unhealthy(
    assembled: Assembled, principals: Principals
) -> None:
    with client(assembled, principals.government) as g:
        deadline = time.monotonic() + 30
        while True:
            codes = [g.get(p).status_code for p in ("/v1/scoring/indicators", "/v1/policy/pools")]
            if codes == [200, 200] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert codes == [200, 200]
