"""Staff sign-in end to end, without a browser: the development OpenID Connect provider, a
test playing the portal with authlib's httpx client, and the gateway's token exchange; then
calls as that person, and every refusal on the way."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from pydantic import ValidationError
from sqlalchemy import select

from devtools.idp.oidc import Expiring
from gateway.auth.staff import ID_TOKEN_TYPE, TOKEN_EXCHANGE
from gateway.models import LoginSession
from gateway.settings import GatewaySettings
from shared.auth.keys import generate_key
from tests.gateway.conftest import (
    BANK_VIEWER,
    GOV_OPERATOR,
    GOV_VIEWER,
    ICBC_OFFICER,
    IDP_ISSUER,
    OTHER_CALLBACK,
    OTHER_RP,
    OTHER_RP_SECRET,
    PORTAL_CALLBACK,
    PORTAL_RP,
    PORTAL_RP_SECRET,
    STAFF,
    Gateway,
)
from tests.gateway.test_hardening import REAL_ESSO
from tests.staff_login import query_of, staff_buttons

IMPORT_CSV = b"uscc,name,period,operating_revenue\n91330108MA27XK0A1M,Acme,2025,not-a-number\n"


def idp_keys(gw: Gateway) -> KeySet:
    keys: KeySet = gw.platform.apps["idp"].state.oidc.keys
    return keys


def mint_id_token(key: ECKey, **claims: Any) -> str:
    """An ID token as the provider would sign it, with the claims given."""
    now = int(time.time())
    body = {
        "iss": IDP_ISSUER,
        "sub": GOV_OPERATOR.subject,
        "aud": PORTAL_RP,
        "iat": now,
        "exp": now + 300,
        "name": GOV_OPERATOR.name,
        "org": "government",
        "roles": ["operator"],
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "JWT"}, body, key)


def idp_key(gw: Gateway) -> ECKey:
    key = next(iter(idp_keys(gw).keys))
    assert isinstance(key, ECKey)
    return key


async def exchange(gw: Gateway, id_token: str, client: tuple[str, str] | None = None) -> Any:
    portal = gw.credentials["portal"]
    async with gw.client() as c:
        return await c.post(
            "/v1/auth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": id_token,
                "subject_token_type": ID_TOKEN_TYPE,
            },
            auth=client or (portal["client_id"], portal["client_secret"]),
        )


def assert_refused(r: httpx.Response, status: int, slug: str, error: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith(f"/{slug}"), r.json()
    if error is not None:
        assert r.json()["error"] == error


# -- the whole flow --------------------------------------------------------------------


async def test_a_government_operator_signs_in_and_acts_under_their_name(gw: Gateway) -> None:
    async with gw.staff_login() as login:
        assert login.metadata["issuer"] == IDP_ISSUER
        assert login.metadata["code_challenge_methods_supported"] == ["S256"]
        auth = login.authorization()
        page = await login.staff_page(auth)
        assert page.status_code == 200
        buttons = staff_buttons(page.text)
        # Every demo account is offered, each with a 登录 button (the acceptance contract).
        assert {b.account for b in buttons} == {a.subject for a in STAFF}
        assert all("登录" in b.text for b in buttons)
        back = await login.choose(page, GOV_OPERATOR.subject)
        assert back.status_code == 303
        callback = query_of(back.headers["location"])
        assert back.headers["location"].startswith(PORTAL_CALLBACK + "?")
        assert callback["state"] == auth.state and callback["iss"] == IDP_ISSUER
        token = await login.fetch_token(back.headers["location"], auth.verifier)
        claims = await login.id_token_claims(token["id_token"], auth.nonce)
        assert claims["name"] == GOV_OPERATOR.name
        assert (claims["org"], claims["roles"]) == ("government", ["operator"])
        assert claims["auth_time"] <= claims["iat"]
        # userinfo answers for the provider's access token.
        info = await login.http.get(
            login.metadata["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert info.json()["preferred_username"] == GOV_OPERATOR.username
        r = await login.exchange(token["id_token"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["staff"] == {
        "sub": f"staff:dev:{GOV_OPERATOR.subject}",
        "name": GOV_OPERATOR.name,
        "kind": "government",
        "bank_id": None,
        "role": "operator",
        "provider": "dev",
    }
    assert set(body["scope"].split()) == {
        "scoring:read",
        "scoring:admin",
        "credit:read",
        "policy:read",
        "policy:admin",
    }
    async with gw.client(body["access_token"]) as c:
        me = (await c.get("/v1/me")).json()
        assert (me["kind"], me["role"], me["act"]) == ("government", "operator", "陈思远")
        assert me["session_expires_at"] is not None
        # A write through the gateway records the person, not a client id.
        r = await c.post(
            "/v1/scoring/imports", files={"file": ("facts.csv", IMPORT_CSV, "text/csv")}
        )
        assert r.status_code in (201, 422), r.text
        imported = r.json()
        import_id = imported.get("id") or imported.get("import_id")
        got = await c.get(f"/v1/scoring/imports/{import_id}")
        assert got.json()["created_by"] == GOV_OPERATOR.name


async def test_a_bank_officer_is_bound_to_their_bank(gw: Gateway) -> None:
    body = await gw.staff(ICBC_OFFICER)
    assert body["staff"]["kind"] == "bank"
    assert body["staff"]["bank_id"] == "icbc-binjiang"
    assert "credit:decide" in body["scope"].split()
    assert "scoring:admin" not in body["scope"].split()
    async with gw.client(body["access_token"]) as c:
        me = (await c.get("/v1/me")).json()
        assert (me["kind"], me["bank_id"], me["act"]) == ("bank", "icbc-binjiang", "王建国")
        # A bank officer has no government write scope.
        r = await c.post("/v1/scoring/imports", files={"file": ("f.csv", IMPORT_CSV)})
        assert_refused(r, 403, "insufficient-scope")


async def test_a_viewer_is_refused_every_change_at_the_gateway(gw: Gateway) -> None:
    gov = (await gw.staff(GOV_VIEWER))["access_token"]
    bank = (await gw.staff(BANK_VIEWER))["access_token"]
    some = uuid.uuid4()
    async with gw.client(gov) as c:
        assert (await c.get("/v1/me")).json()["role"] == "viewer"
        # Reading works.
        assert (await c.get("/v1/scoring/indicators")).status_code == 200
        for path in (
            f"/v1/scoring/evaluations/{some}/publish",
            f"/v1/policy/policies/{some}/publish",
            "/v1/scoring/evaluations",
        ):
            assert_refused(await c.post(path, json={}), 403, "insufficient-scope")
        r = await c.post("/v1/scoring/imports", files={"file": ("f.csv", IMPORT_CSV)})
        assert_refused(r, 403, "insufficient-scope")
    async with gw.client(bank) as c:
        r = await c.post(f"/v1/credit/applications/{some}/decision", json={"decision": "approve"})
        assert_refused(r, 403, "insufficient-scope")


# -- sessions: refresh bound to the portal, rotation, reuse, logout ----------------------


async def test_refresh_is_the_portals_alone_rotates_and_detects_reuse(gw: Gateway) -> None:
    body = await gw.staff(GOV_OPERATOR)
    portal = gw.credentials["portal"]
    gov = gw.credentials["government"]
    async with gw.client() as c:
        # A refresh token copied out of the portal is useless without its secret.
        r = await c.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert_refused(r, 401, "invalid-client")
        r = await c.post(
            "/v1/auth/refresh",
            json={"refresh_token": body["refresh_token"]},
            auth=(gov["client_id"], gov["client_secret"]),
        )
        assert_refused(r, 401, "invalid-client")
        # The portal refreshes: a new pair, the same person.
        r = await c.post(
            "/v1/auth/refresh",
            json={"refresh_token": body["refresh_token"]},
            auth=(portal["client_id"], portal["client_secret"]),
        )
        assert r.status_code == 200, r.text
        renewed = r.json()
        assert renewed["staff"] == body["staff"]
        assert renewed["refresh_token"] != body["refresh_token"]
        # The old refresh token again: copied, so the whole session ends.
        r = await c.post(
            "/v1/auth/refresh",
            json={"refresh_token": body["refresh_token"]},
            auth=(portal["client_id"], portal["client_secret"]),
        )
        assert r.status_code == 401
        me = await c.get("/v1/me", headers={"Authorization": f"Bearer {renewed['access_token']}"})
        assert me.status_code == 401


async def test_logout_ends_the_staff_session(gw: Gateway) -> None:
    body = await gw.staff(GOV_VIEWER)
    portal = gw.credentials["portal"]
    async with gw.client(body["access_token"]) as c:
        # A viewer may log out: logging out changes nothing of the platform's.
        assert (await c.post("/v1/auth/logout")).status_code == 204
        assert (await c.get("/v1/me")).status_code == 401
    async with gw.client() as c:
        r = await c.post(
            "/v1/auth/refresh",
            json={"refresh_token": body["refresh_token"]},
            auth=(portal["client_id"], portal["client_secret"]),
        )
        assert r.status_code == 401


async def test_a_provider_no_longer_configured_renews_nothing(gw: Gateway) -> None:
    body = await gw.staff(GOV_OPERATOR)
    portal = gw.credentials["portal"]
    app = gw.platform.fastapi["gateway"]
    settings: GatewaySettings = app.state.settings
    app.state.settings = settings.model_copy(update={"staff_providers": []})
    try:
        async with gw.client() as c:
            r = await c.post(
                "/v1/auth/refresh",
                json={"refresh_token": body["refresh_token"]},
                auth=(portal["client_id"], portal["client_secret"]),
            )
        assert_refused(r, 401, "staff-provider-gone")
    finally:
        app.state.settings = settings
    # Nothing was used up by the refusal: with the provider back, the refresh works.
    async with gw.client() as c:
        r = await c.post(
            "/v1/auth/refresh",
            json={"refresh_token": body["refresh_token"]},
            auth=(portal["client_id"], portal["client_secret"]),
        )
    assert r.status_code == 200, r.text


async def test_the_session_records_who_vouched_for_the_person(gw: Gateway) -> None:
    body = await gw.staff(ICBC_OFFICER)
    async with gw.platform.fastapi["gateway"].state.sessionmaker() as db:
        session = await db.scalar(select(LoginSession).where(LoginSession.kind == "bank"))
    assert session is not None
    assert (session.issuer, session.subject) == (IDP_ISSUER, ICBC_OFFICER.subject)
    assert (session.bank_id, session.role, session.act) == ("icbc-binjiang", "operator", "王建国")
    assert session.client_id == gw.credentials["portal"]["client_id"]
    assert session.uscc is None
    assert body["refresh_expires_in"] <= 12 * 3600


# -- refusals at the gateway --------------------------------------------------------------


async def test_an_id_token_works_once(gw: Gateway) -> None:
    async with gw.staff_login() as login:
        id_token = await login.id_token(GOV_OPERATOR.subject)
        assert (await login.exchange(id_token)).status_code == 200
        again = await login.exchange(id_token)
    assert_refused(again, 400, "staff-token-refused", "invalid_request")
    assert "already" in again.json()["detail"]


async def test_only_a_portal_client_may_exchange(gw: Gateway) -> None:
    async with gw.staff_login() as login:
        id_token = await login.id_token(GOV_OPERATOR.subject)
        for who in (gw.credentials["government"], gw.credentials["banks"][0]):
            r = await login.exchange(id_token, client=(who["client_id"], who["client_secret"]))
            assert_refused(r, 400, "unauthorized-client", "unauthorized_client")
        # Not consumed by those refusals: the portal can still exchange it.
        assert (await login.exchange(id_token)).status_code == 200
        # Nor by a wrong secret, counted as a failure of the client.
        r = await login.exchange(id_token, client=(gw.credentials["portal"]["client_id"], "x"))
        assert_refused(r, 401, "invalid-client")


async def test_a_portal_client_gets_nothing_by_client_credentials(gw: Gateway) -> None:
    portal = gw.credentials["portal"]
    r = await gw.client_token(portal["client_id"], portal["client_secret"])
    assert_refused(r, 400, "unauthorized-client", "unauthorized_client")


async def test_an_id_token_for_another_audience_is_refused(gw: Gateway) -> None:
    # Signed in properly, but at another application of the same provider.
    async with gw.staff_login(
        client_id=OTHER_RP, client_secret=OTHER_RP_SECRET, redirect_uri=OTHER_CALLBACK
    ) as other:
        id_token = await other.id_token(GOV_OPERATOR.subject)
    r = await exchange(gw, id_token)
    assert_refused(r, 400, "staff-token-refused", "invalid_request")
    assert "audience" in r.json()["detail"]
    # Several audiences are accepted only when azp names ours.
    key = idp_key(gw)
    r = await exchange(gw, mint_id_token(key, aud=[PORTAL_RP, OTHER_RP]))
    assert_refused(r, 400, "staff-token-refused")
    r = await exchange(gw, mint_id_token(key, aud=[PORTAL_RP, OTHER_RP], azp=PORTAL_RP))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        # Times as offsets from now, taken when the test runs.
        ({"exp": -60}, "expired"),
        ({"iat": -3600, "exp": 60}, "too old"),
        ({"iat": 3600}, "future"),
        ({"iat": None}, "'iat'"),
        ({"sub": None}, "'sub'"),
        ({"org": None}, "organisation"),
        ({"org": "some-other-bank"}, "may name"),
    ],
)
async def test_a_stale_or_incomplete_id_token_is_refused(
    gw: Gateway, claims: dict[str, Any], why: str
) -> None:
    now = int(time.time())
    timed = {k: now + v if k in ("iat", "exp") and v is not None else v for k, v in claims.items()}
    r = await exchange(gw, mint_id_token(idp_key(gw), **timed))
    assert_refused(r, 400, "staff-token-refused", "invalid_request")
    assert why in r.json()["detail"]


async def test_forged_id_tokens_are_refused(gw: Gateway) -> None:
    real = idp_key(gw)
    # A key of our own under the provider's key id: the signature does not verify.
    impostor = ECKey.generate_key("P-256", parameters={"kid": real.kid}, private=True)
    r = await exchange(gw, mint_id_token(impostor))
    assert_refused(r, 400, "staff-token-refused")
    # A key id the provider never published.
    r = await exchange(gw, mint_id_token(generate_key()))
    assert_refused(r, 400, "staff-token-refused")
    # A tampered payload (role raised from viewer to operator) under the real signature.
    genuine = mint_id_token(real, roles=["viewer"])
    header, _, signature = genuine.split(".")
    forged_body = mint_id_token(real, roles=["operator"]).split(".")[1]
    r = await exchange(gw, f"{header}.{forged_body}.{signature}")
    assert_refused(r, 400, "staff-token-refused")
    # alg none, and HMAC keyed with anything.
    for alg in ("none", "HS256"):
        r = await exchange(gw, f"{_b64({'alg': alg})}.{genuine.split('.')[1]}.")
        assert_refused(r, 400, "staff-token-refused")
    # Not a JWT at all.
    for junk in ("x", "a.b.c", "a.b.c.d.e", "é" * 10):
        r = await exchange(gw, junk)
        assert_refused(r, 400, "staff-token-refused")


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def test_an_unknown_issuer_is_refused(gw: Gateway) -> None:
    for iss in ("http://evil.example", IDP_ISSUER + "/", None):
        r = await exchange(gw, mint_id_token(idp_key(gw), iss=iss))
        assert_refused(r, 400, "staff-token-refused")


async def test_role_and_name_mapping(gw: Gateway) -> None:
    key = idp_key(gw)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"roles": "operator"}, "operator"),
        ({"roles": ["viewer", "operator"]}, "operator"),
        ({"roles": None}, "viewer"),
        ({"roles": ["admin"]}, "viewer"),
        ({"roles": {"operator": True}}, "viewer"),
    ]
    for claims, role in cases:
        r = await exchange(gw, mint_id_token(key, **claims))
        assert r.status_code == 200, r.text
        assert r.json()["staff"]["role"] == role, claims
    # A name with control characters is cleaned; without one, the username stands in.
    r = await exchange(gw, mint_id_token(key, name="陈\x00思远\n"))
    assert r.json()["staff"]["name"] == "陈思远"
    r = await exchange(gw, mint_id_token(key, name=None, preferred_username="chensiyuan"))
    assert r.json()["staff"]["name"] == "chensiyuan"


async def test_malformed_exchange_requests_are_refused(gw: Gateway) -> None:
    async with gw.staff_login() as login:
        id_token = await login.id_token(GOV_OPERATOR.subject)
        for form, error in (
            ({"subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}, None),
            ({"requested_token_type": "urn:ietf:params:oauth:token-type:jwt"}, None),
            ({"audience": "scoring"}, "invalid_target"),
            ({"scope": "scoring:read credit:decide"}, "invalid_scope"),
        ):
            r = await login.exchange(id_token, **form)
            assert r.status_code == 400, (form, r.text)
            assert r.json()["error"] == (error or "invalid_request")
        async with gw.client() as c:
            portal = gw.credentials["portal"]
            r = await c.post(
                "/v1/auth/token",
                data={"grant_type": TOKEN_EXCHANGE, "subject_token_type": ID_TOKEN_TYPE},
                auth=(portal["client_id"], portal["client_secret"]),
            )
            assert r.json()["error"] == "invalid_request"
            r = await c.post(
                "/v1/auth/token",
                data={"grant_type": TOKEN_EXCHANGE, "subject_token": "x" * 20_000},
                auth=(portal["client_id"], portal["client_secret"]),
            )
            assert r.status_code == 422
        # None of that used the ID token up.
        assert (await login.exchange(id_token)).status_code == 200


# -- refusals at the provider -------------------------------------------------------------


async def test_the_provider_requires_pkce_and_the_registered_redirect_uri(gw: Gateway) -> None:
    async with gw.staff_login() as login:
        endpoint = login.metadata["authorization_endpoint"]
        base = {
            "response_type": "code",
            "client_id": PORTAL_RP,
            "redirect_uri": PORTAL_CALLBACK,
            "scope": "openid profile",
            "state": "s-1",
            "nonce": "n-1",
        }
        challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        # Without PKCE: an error sent back to the client, with its state.
        r = await login.http.get(endpoint, params=base)
        assert r.status_code == 303
        answer = query_of(r.headers["location"])
        assert (answer["error"], answer["state"]) == ("invalid_request", "s-1")
        # plain is not S256.
        r = await login.http.get(
            endpoint,
            params={**base, "code_challenge": challenge, "code_challenge_method": "plain"},
        )
        assert query_of(r.headers["location"])["error"] == "invalid_request"
        # A redirect_uri not registered exactly: a page, never a redirect there.
        for uri in (PORTAL_CALLBACK + "/x", PORTAL_CALLBACK + "?a=1", "http://evil/cb"):
            r = await login.http.get(
                endpoint,
                params={**base, "redirect_uri": uri, "code_challenge": challenge},
            )
            assert r.status_code == 400 and "location" not in r.headers
        # Nor for an unknown client.
        r = await login.http.get(endpoint, params={**base, "client_id": "nobody"})
        assert r.status_code == 400 and "location" not in r.headers
        # Without openid it is not OpenID Connect.
        r = await login.http.get(
            endpoint,
            params={
                **base,
                "scope": "profile",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert query_of(r.headers["location"])["error"] == "invalid_scope"


async def test_a_code_is_single_use_and_bound_to_its_verifier(gw: Gateway) -> None:
    async with gw.staff_login() as login:
        # A wrong verifier: refused, and the code burnt.
        auth = login.authorization()
        back = await login.choose(await login.staff_page(auth), GOV_OPERATOR.subject)
        code = query_of(back.headers["location"])["code"]
        token_url = login.metadata["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": PORTAL_CALLBACK}
        secret = (PORTAL_RP, PORTAL_RP_SECRET)
        r = await login.http.post(
            token_url, data={**form, "code_verifier": "x" * 43 + "y"}, auth=secret
        )
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        r = await login.http.post(token_url, data={**form, "code_verifier": auth.verifier})
        assert r.status_code == 401  # no client authentication
        r = await login.http.post(
            token_url, data={**form, "code_verifier": auth.verifier}, auth=secret
        )
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")

        # A replayed code: the first use works, the second fails and withdraws the first's
        # access token.
        auth = login.authorization()
        back = await login.choose(await login.staff_page(auth), GOV_OPERATOR.subject)
        code = query_of(back.headers["location"])["code"]
        form["code"] = code
        # client_secret_post this time.
        post_auth = {"client_id": PORTAL_RP, "client_secret": PORTAL_RP_SECRET}
        first = await login.http.post(
            token_url, data={**form, "code_verifier": auth.verifier, **post_auth}
        )
        assert first.status_code == 200, first.text
        userinfo = login.metadata["userinfo_endpoint"]
        bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
        assert (await login.http.get(userinfo, headers=bearer)).status_code == 200
        again = await login.http.post(
            token_url, data={**form, "code_verifier": auth.verifier, **post_auth}
        )
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
        assert (await login.http.get(userinfo, headers=bearer)).status_code == 401

        # Missing verifier, and a redirect_uri that differs from the authorization's.
        for change in ({"code_verifier": ""}, {"redirect_uri": OTHER_CALLBACK}):
            auth = login.authorization()
            back = await login.choose(await login.staff_page(auth), GOV_OPERATOR.subject)
            data = {
                **form,
                "code": query_of(back.headers["location"])["code"],
                "code_verifier": auth.verifier,
                **change,
            }
            r = await login.http.post(token_url, data=data, auth=secret)
            assert (r.status_code, r.json()["error"]) == (400, "invalid_grant"), change

        # A code issued to the portal is no use to another client.
        auth = login.authorization()
        back = await login.choose(await login.staff_page(auth), GOV_OPERATOR.subject)
        data = {
            **form,
            "code": query_of(back.headers["location"])["code"],
            "code_verifier": auth.verifier,
        }
        r = await login.http.post(token_url, data=data, auth=(OTHER_RP, OTHER_RP_SECRET))
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


async def test_an_expired_code_is_refused(gw: Gateway) -> None:
    gw.platform.apps["idp"].state.oidc.codes.ttl = -1  # every code born expired
    async with gw.staff_login() as login:
        auth = login.authorization()
        back = await login.choose(await login.staff_page(auth), GOV_OPERATOR.subject)
        r = await login.http.post(
            login.metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": query_of(back.headers["location"])["code"],
                "redirect_uri": PORTAL_CALLBACK,
                "code_verifier": auth.verifier,
            },
            auth=(PORTAL_RP, PORTAL_RP_SECRET),
        )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


# -- production -------------------------------------------------------------------------


REAL_PROVIDER = {
    "name": "zzd",
    "issuer": "https://openplatform.dg-work.cn",
    "jwks_url": "https://openplatform.dg-work.cn/oauth2/jwks",
    "audience": "innovation-points-portal",
    "org": "government",
}


def test_production_accepts_a_real_staff_provider() -> None:
    settings = GatewaySettings(
        environment="production",
        staff_providers=[REAL_PROVIDER],  # type: ignore[list-item]
        **REAL_ESSO,  # type: ignore[arg-type]
    )
    assert settings.staff_providers[0].name == "zzd"


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "http://127.0.0.1:8009"},
        {"jwks_url": "http://127.0.0.1:8009/oidc/jwks"},
        {"issuer": "http://idp:8009", "jwks_url": "http://idp:8009/oidc/jwks"},
        {"jwks_url": "https://idp.innovation-points.svc.cluster.local/oidc/jwks"},
        {"issuer": "https://localhost"},
    ],
)
def test_production_refuses_the_development_staff_provider(change: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="development identity provider"):
        GatewaySettings(
            environment="production",
            staff_providers=[{**REAL_PROVIDER, **change}],  # type: ignore[list-item]
            **REAL_ESSO,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    "change",
    [
        {"org": "bank"},
        {"org": "claim:"},
        {"algorithms": ["HS256"]},
        {"algorithms": ["none"]},
        {"name": "Has Spaces"},
        {"unknown": "field"},
        {"orgs": ["Not A Bank"]},
    ],
)
def test_a_malformed_staff_provider_fails_at_start(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(staff_providers=[{**REAL_PROVIDER, **change}])  # type: ignore[list-item]


def test_two_providers_may_not_share_a_name_or_issuer() -> None:
    other = {**REAL_PROVIDER, "issuer": "https://sso.bank.example"}
    with pytest.raises(ValidationError, match="each name and each issuer once"):
        GatewaySettings(staff_providers=[REAL_PROVIDER, other])  # type: ignore[list-item]


def test_the_production_overlay_names_a_staff_provider_to_fill_in() -> None:
    """deploy/k8s's production settings hold a 浙政钉 template: well-formed, and refused until
    its placeholders are replaced."""
    path = Path(__file__).parents[2] / "deploy/k8s/overlays/production/settings.yaml"
    gateway = next(
        d for d in yaml.safe_load_all(path.read_text()) if d["metadata"]["name"] == "gateway-config"
    )
    template = json.loads(gateway["data"]["GATEWAY_STAFF_PROVIDERS"])
    assert GatewaySettings(staff_providers=template).staff_providers[0].org == "government"
    with pytest.raises(ValidationError, match="placeholder"):
        GatewaySettings(environment="production", staff_providers=template, **REAL_ESSO)  # type: ignore[arg-type]
    filled = [{**template[0], **{k: v for k, v in REAL_PROVIDER.items() if k != "name"}}]
    GatewaySettings(environment="production", staff_providers=filled, **REAL_ESSO)  # type: ignore[arg-type]


def test_the_providers_memory_is_bounded() -> None:
    """A flood of authorize requests cannot grow the development provider without bound."""
    store: Expiring[int] = Expiring(ttl=60, limit=3)
    keys = [store.add(i) for i in range(5)]
    assert [store.get(k) for k in keys] == [None, None, 2, 3, 4]
    assert store.pop(keys[2]) == 2 and store.get(keys[2]) is None
    expired: Expiring[int] = Expiring(ttl=-1)
    assert expired.get(expired.add(1)) is None
