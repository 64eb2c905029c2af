"""Issue 10 at the gateway, in process: what the reliability suite shows on real processes,
here with the rules spelled out case by case."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from devtools.idp.callbacks import AllowedCallback, callback_allowed
from gateway.proxy.router import public_location
from gateway.settings import GatewaySettings
from shared.settings import looks_like_placeholder
from tests.gateway.conftest import ENTERPRISE_A, Gateway
from tests.gateway.test_routing import PROBLEM


async def test_an_unhandled_exception_is_a_500_problem_with_the_request_id(gw: Gateway) -> None:
    app = gw.platform.fastapi["gateway"]

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("a bug")

    app.add_route("/v1/test-boom", boom)
    transport = httpx.ASGITransport(app=gw.platform.apps["gateway"], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        r = await c.get("/v1/test-boom")
        given = await c.get("/v1/test-boom", headers={"X-Request-ID": "caller-chosen-id-1"})
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    rid = r.headers["x-request-id"]
    assert len(rid) == 32
    assert r.json()["request_id"] == rid
    assert "a bug" not in r.text
    assert given.headers["x-request-id"] == given.json()["request_id"] == "caller-chosen-id-1"


def failing_upstream() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/{what}")
    async def answer(what: str) -> JSONResponse:
        status = {"boom": 500, "unavailable": 503, "timeout": 504}.get(what, 200)
        return JSONResponse({"what": what}, status_code=status)

    return app


async def test_only_the_upstreams_failures_open_its_breaker(gw: Gateway) -> None:
    gw.platform.apps["policy"] = failing_upstream()
    async with gw.client(await gw.government()) as c:
        for _ in range(20):
            r = await c.get("/v1/policy/x", headers={"User-Agent": b"caf\xe9"})
            assert r.status_code == 400
            assert r.headers["content-type"] == PROBLEM
            assert r.json()["type"].endswith("/malformed-header")
            assert r.json()["header"] == "User-Agent"
            assert (await c.get("/v1/policy/boom")).status_code == 500
        assert (await c.get("/v1/policy/ok")).status_code == 200
        for _ in range(5):
            assert (await c.get("/v1/policy/unavailable")).status_code == 503
        r = await c.get("/v1/policy/ok")
        assert r.status_code == 503
        assert "paused" in r.json()["detail"]
        # One upstream's breaker is its own.
        assert (await c.get("/v1/scoring/indicators")).status_code == 200


async def test_utf8_headers_are_forwarded_byte_for_byte(gw: Gateway) -> None:
    from tests.gateway.test_routing import probe_upstream

    gw.platform.apps["policy"] = probe_upstream("policy", gw.platform.issuer.jwks())
    a = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    async with gw.client(a) as c:
        r = await c.get(
            "/v1/policy/echo",
            headers={"User-Agent": "小程序/1.0".encode(), "Accept-Language": b"zh-CN"},
        )
    assert r.status_code == 200, r.text
    # The probe decodes headers as Latin-1, as Starlette does: encode back to compare bytes.
    seen = r.json()["headers"]
    assert seen["user-agent"].encode("latin-1") == "小程序/1.0".encode()
    assert seen["accept-language"] == "zh-CN"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/v1/applications/7", "/v1/credit/applications/7"),
        ("/v1/applications?x=1", "/v1/credit/applications?x=1"),
        ("http://credit/v1/applications/7", "/v1/credit/applications/7"),
        ("https://bank.example/callback", "https://bank.example/callback"),
        ("/healthz", "/healthz"),
        ("/v10/x", "/v10/x"),
    ],
)
def test_service_locations_become_public_paths(value: str, expected: str) -> None:
    assert public_location(value, "credit", "http://credit") == expected


ALLOWED = [
    AllowedCallback.parse("http://127.0.0.1:8000/v1/auth/esso/callback"),
    AllowedCallback.parse("https://portal.example.gov.cn/auth/esso/callback"),
]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1/auth/esso/callback",
        "http://127.0.0.1:8000/v1/auth/esso/callback?goto=%2Fv1%2Fme&state=s",
        "HTTP://127.0.0.1:8000/v1/auth/esso/callback",
        "https://PORTAL.example.gov.cn:443/auth/esso/callback?state=x",
        "https://portal.example.gov.cn/auth/esso/callback/sub",
    ],
)
def test_configured_callbacks_are_admitted(url: str) -> None:
    assert callback_allowed(ALLOWED, url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000@evil.example/steal",
        "http://127.0.0.1:8000@evil.example/v1/auth/esso/callback",
        "http://user@127.0.0.1:8000/v1/auth/esso/callback",
        "http://127.0.0.1:8000.evil.example/v1/auth/esso/callback",
        "http://127.0.0.1:8001/v1/auth/esso/callback",
        "http://127.0.0.1/v1/auth/esso/callback",
        "https://127.0.0.1:8000/v1/auth/esso/callback",
        "http://portal.example.gov.cn/auth/esso/callback",
        "http://127.0.0.1:8000/v1/auth/esso/callbackx",
        "http://127.0.0.1:8000/v1/auth/esso/callback/../../../v1/me",
        "http://127.0.0.1:8000/v1/auth/esso/callback/%2e%2e/x",
        "http://127.0.0.1:8000\\@evil.example/v1/auth/esso/callback",
        "http://127.0.0.1:8000/v1/auth/esso/callback#frag",
        "http://127.0.0.1:8000/v1/auth/esso/callback\n",
        "http://127.0.0.1:99999/v1/auth/esso/callback",
        "//127.0.0.1:8000/v1/auth/esso/callback",
        "javascript:alert(1)//127.0.0.1:8000/v1/auth/esso/callback",
        "",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    assert not callback_allowed(ALLOWED, url)


def test_a_malformed_allowed_callback_fails_at_start() -> None:
    for entry in ("127.0.0.1:8000/cb", "http://u@h/cb", "ftp://h/cb", "http://h/cb?x=1"):
        with pytest.raises(ValueError, match="origin"):
            AllowedCallback.parse(entry)


REAL_ESSO = {
    "esso_login_url": "https://esso.zjzwfw.gov.cn/opensso/spsaehandler/metaAlias/sp",
    "esso_query_url": "https://ssoapi.zjzwfw.gov.cn/rest/user/query",
    "esso_project_id": "binjiang-innovation-points",
    "esso_project_secret": "Q2ZkVmh0c3RqS2l0b0h3b1pJb0pXcXlZbXhWdWpYbGQ",
    "client_secret_hmac_key": "8f1e0c2b7a6d4e3f9a8b7c6d5e4f3a2b1c0d9e8f",
    "database_url": "postgresql://gateway@db.internal/innovation",
}


def production(**values: str) -> GatewaySettings:
    return GatewaySettings(environment="production", **{**REAL_ESSO, **values})  # type: ignore[arg-type]


def test_production_starts_with_the_real_provider_and_real_secrets() -> None:
    assert production().environment == "production"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("esso_query_url", "http://idp:8009/rest/user/query"),
        ("esso_query_url", "http://127.0.0.1:8009/rest/user/query"),
        ("esso_query_url", "https://localhost/rest/user/query"),
        ("esso_query_url", "https://idp.innovation-points.svc.cluster.local/rest/user/query"),
        ("esso_login_url", "http://localhost:8009/opensso/spsaehandler/metaAlias/sp"),
        ("esso_project_id", "innovation-points-dev"),
        ("esso_project_id", "replace-with-the-assigned-project-id"),
        ("esso_project_secret", "compose-esso-secret-change-me"),
        ("esso_project_secret", "dev-secret-for-the-simulator"),
        ("esso_project_secret", "an-example-secret-0123456789"),
        ("client_secret_hmac_key", "short"),
        ("client_secret_hmac_key", "dev-0123456789abcdef0123456789abcdef"),
    ],
)
def test_production_refuses_the_development_provider_and_placeholders(
    field: str, value: str
) -> None:
    with pytest.raises(ValidationError):
        production(**{field: value})


def test_production_needs_a_client_secret_hmac_key() -> None:
    values = {k: v for k, v in REAL_ESSO.items() if k != "client_secret_hmac_key"}
    with pytest.raises(ValidationError, match="client_secret_hmac_key"):
        GatewaySettings(environment="production", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["", "change-me", "compose-esso-secret-change-me", "dev-secret", "DEV-x", "example.org-key"],
)
def test_placeholders_are_recognised(value: str) -> None:
    assert looks_like_placeholder(value)


def test_a_real_secret_is_not_a_placeholder() -> None:
    assert not looks_like_placeholder(json.dumps({"k": "Zm9vYmFyYmF6cXV4"}))


async def test_a_production_gateway_refuses_the_simulators_answers(gw: Gateway) -> None:
    """Settings refuse the simulator's usual addresses; this catches it under any other name
    (an https proxy in front of it, a DNS alias)."""
    from gateway.auth.esso import EssoClient, EssoRefused
    from tests.gateway.conftest import ESSO_PROJECT, ESSO_SECRET

    async with httpx.AsyncClient(transport=gw.platform.transport) as http:
        for refuse in (False, True):
            esso = EssoClient(
                http,
                "http://idp/rest/user/query",
                ESSO_PROJECT,
                ESSO_SECRET,
                5.0,
                refuse_simulator=refuse,
            )
            ssotoken = await gw.ssotoken(ENTERPRISE_A["uscc"])
            if refuse:
                with pytest.raises(EssoRefused, match="development identity provider"):
                    await esso.login(ssotoken, 3)
            else:
                assert (await esso.login(ssotoken, 3)).uscc == ENTERPRISE_A["uscc"]
