"""Enterprise-code login through the gateway with the development identity provider."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.gateway.conftest import ENTERPRISE_A, ENTERPRISE_B, ESSO_PROJECT, ESSO_SECRET, Gateway


async def test_exchange_gives_a_session_bound_to_the_enterprise(gw: Gateway) -> None:
    body = await gw.login(ENTERPRISE_A["uscc"])
    assert body["token_type"] == "Bearer"
    assert body["enterprise"] == {
        "uscc": ENTERPRISE_A["uscc"],
        "name": ENTERPRISE_A["name"],
        "legal_rep": ENTERPRISE_A["legal_rep"],
    }
    async with gw.client(body["access_token"]) as c:
        me = await c.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["kind"] == "enterprise"
        assert me.json()["uscc"] == ENTERPRISE_A["uscc"]
        assert me.json()["act"] == ENTERPRISE_A["legal_rep"]
        assert me.json()["company_name"] == ENTERPRISE_A["name"]


async def test_replayed_ssotoken_refused(gw: Gateway) -> None:
    token = await gw.ssotoken(ENTERPRISE_A["uscc"])
    async with gw.client() as c:
        first = await c.post("/v1/auth/esso/exchange", json={"ssotoken": token})
        assert first.status_code == 200, first.text
        again = await c.post("/v1/auth/esso/exchange", json={"ssotoken": token})
        assert again.status_code == 401
        assert again.headers["content-type"] == "application/problem+json"
        assert again.json()["type"].endswith("/esso-refused")


async def test_unknown_or_expired_ssotoken_refused(gw: Gateway) -> None:
    idp = gw.platform.apps["idp"]
    idp.state.tokens.ttl = -1  # every new token born expired
    token = await gw.ssotoken(ENTERPRISE_A["uscc"])
    async with gw.client() as c:
        for t in (token, "no-such-token"):
            r = await c.post("/v1/auth/esso/exchange", json={"ssotoken": t})
            assert r.status_code == 401, r.text
            assert r.json()["esso_code"] == 1004


async def test_non_legal_person_refused(gw: Gateway) -> None:
    token = await gw.ssotoken(ENTERPRISE_A["uscc"], attn_name="经办人赵六")
    async with gw.client() as c:
        r = await c.post("/v1/auth/esso/exchange", json={"ssotoken": token})
    assert r.status_code == 403
    assert r.json()["type"].endswith("/not-legal-person")


async def test_low_assurance_refused(gw: Gateway) -> None:
    token = await gw.ssotoken(ENTERPRISE_B["uscc"], real_level="2")
    async with gw.client() as c:
        r = await c.post("/v1/auth/esso/exchange", json={"ssotoken": token})
    assert r.status_code == 403
    assert r.json()["type"].endswith("/assurance-too-low")


async def test_bad_signature_refused_by_provider_and_login_fails(gw: Gateway) -> None:
    token = await gw.ssotoken(ENTERPRISE_A["uscc"])
    body = json.dumps({"token": token}).encode()
    async with gw.idp() as idp:
        wrong = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
        r = await idp.post(
            "/rest/user/query",
            content=body,
            headers={"x-esso-project-id": ESSO_PROJECT, "x-esso-signature": wrong},
        )
        assert r.json()["errCode"] == 1002
        r = await idp.post(
            "/rest/user/query",
            content=body,
            headers={"x-esso-project-id": "someone-else", "x-esso-signature": wrong},
        )
        assert r.json()["errCode"] == 1001
        right = hmac.new(ESSO_SECRET.encode(), body, hashlib.sha256).hexdigest()
        r = await idp.post(
            "/rest/user/query",
            content=body,
            headers={"x-esso-project-id": ESSO_PROJECT, "x-esso-signature": right},
        )
        info = r.json()
        assert info["errCode"] == 0
        assert info["info"]["uniscid"] == ENTERPRISE_A["uscc"]
        assert info["info"]["attnName"] == info["info"]["CompanyLegRep"]

    # A gateway configured with the wrong secret: the provider refuses, so does the login.
    await gw.platform.stop("gateway")
    await gw.platform.start("gateway", esso_project_secret="a-wrong-project-secret")
    token = await gw.ssotoken(ENTERPRISE_A["uscc"])
    async with gw.client() as c:
        r = await c.post("/v1/auth/esso/exchange", json={"ssotoken": token})
    assert r.status_code == 401
    assert r.json()["esso_code"] == 1002


async def test_bad_exchange_bodies_are_4xx_problems(gw: Gateway) -> None:
    cases: list[dict[str, Any]] = [
        {"json": {}},
        {"json": {"ssotoken": ""}},
        {"json": {"ssotoken": 12}},
        {"content": b"not json", "headers": {"content-type": "application/json"}},
        {"json": {"ssotoken": "x" * 5000}},
    ]
    async with gw.client() as c:
        for kwargs in cases:
            r = await c.post("/v1/auth/esso/exchange", **kwargs)
            assert r.status_code == 422, (kwargs, r.text)
            assert r.headers["content-type"] == "application/problem+json"


async def test_provider_down_is_503(gw: Gateway) -> None:
    gw.platform.apps.pop("idp")
    async with gw.client() as c:
        r = await c.post("/v1/auth/esso/exchange", json={"ssotoken": "whatever"})
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"


async def test_browser_flow_login_callback_cookie_logout(gw: Gateway) -> None:
    async with gw.client() as browser:
        r = await browser.get("/v1/auth/esso/login", params={"goto": "/v1/me"})
        assert r.status_code == 302
        location = urlsplit(r.headers["location"])
        assert location.netloc == "idp"
        spappurl = parse_qs(location.query)["spappurl"][0]
        assert spappurl.startswith("http://gateway/v1/auth/esso/callback?")

        async with gw.idp() as idp:
            page = await idp.get(location.path, params={"spappurl": spappurl})
            assert page.status_code == 200
            assert ENTERPRISE_A["name"] in page.text
            face = await idp.post(
                "/login",
                data={
                    "spappurl": spappurl,
                    "uscc": ENTERPRISE_A["uscc"],
                    "attn_name": ENTERPRISE_A["legal_rep"],
                },
            )
            assert face.status_code == 200
            back = await idp.post(
                "/face-check",
                data={
                    "spappurl": spappurl,
                    "uscc": ENTERPRISE_A["uscc"],
                    "attn_name": ENTERPRISE_A["legal_rep"],
                    "passed": "yes",
                },
            )
            assert back.status_code == 303
            callback = back.headers["location"]
            assert "ssotoken=" in callback

        done = await browser.get(callback)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/v1/me"
        assert "ip_access" in browser.cookies
        me = await browser.get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["uscc"] == ENTERPRISE_A["uscc"]

        # Cookie-authenticated writes from another site are refused.
        r = await browser.post("/v1/auth/logout", headers={"origin": "https://evil.example"})
        assert r.status_code == 403
        r = await browser.post("/v1/auth/logout")
        assert r.status_code == 204
        assert "ip_access" not in browser.cookies
        assert (await browser.get("/v1/me")).status_code == 401


async def test_callback_without_the_browsers_state_refused(gw: Gateway) -> None:
    token = await gw.ssotoken(ENTERPRISE_A["uscc"])
    async with gw.client() as c:
        r = await c.get("/v1/auth/esso/callback", params={"ssotoken": token, "state": "forged"})
        assert r.status_code == 401
        r = await c.get("/v1/auth/esso/login", params={"goto": "https://evil.example/"})
        assert r.status_code == 400
        r = await c.get("/v1/auth/esso/login", params={"goto": "//evil.example/"})
        assert r.status_code == 400


async def test_refresh_rotates_and_reuse_revokes(gw: Gateway) -> None:
    session = await gw.login(ENTERPRISE_A["uscc"])
    async with gw.client() as c:
        r = await c.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["refresh_token"] != session["refresh_token"]
        async with gw.client(second["access_token"]) as authed:
            assert (await authed.get("/v1/me")).status_code == 200
        # The first refresh token again: stolen, so the whole session ends.
        r = await c.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert r.status_code == 401
        r = await c.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert r.status_code == 401
        async with gw.client(second["access_token"]) as authed:
            assert (await authed.get("/v1/me")).status_code == 401
        r = await c.post("/v1/auth/refresh", json={"refresh_token": "nonsense"})
        assert r.status_code == 401


async def test_logout_revokes_access_and_refresh(gw: Gateway) -> None:
    session = await gw.login(ENTERPRISE_A["uscc"])
    async with gw.client(session["access_token"]) as c:
        assert (await c.post("/v1/auth/logout")).status_code == 204
        assert (await c.get("/v1/me")).status_code == 401
        r = await c.get(f"/v1/scoring/enterprises/{ENTERPRISE_A['uscc']}/score")
        assert r.status_code == 401
    async with gw.client() as c:
        r = await c.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert r.status_code == 401
