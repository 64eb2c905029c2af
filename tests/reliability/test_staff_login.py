"""Staff sign-in against the platform as processes: the development OpenID Connect provider
and the gateway over real sockets, configured by the launcher as `make run` configures them,
with a test playing the web portal's part (authlib's httpx client, no browser)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from devtools.idp.staff import default_accounts
from scripts.assembled import Assembled
from tests.reliability.conftest import PROBLEM, client
from tests.staff_login import StaffLogin

ACCOUNTS = {a.name: a for a in default_accounts()}
OPERATOR, VIEWER, OFFICER = ACCOUNTS["陈思远"], ACCOUNTS["林晓雯"], ACCOUNTS["王建国"]
BAD_FACTS = b"uscc,name,period,operating_revenue\nnot-a-uscc,x,2025,abc\n"


def portal(assembled: Assembled) -> StaffLogin:
    rp = assembled.staff_relying_party()
    return StaffLogin(
        issuer=rp["issuer"],
        gateway=assembled.gateway,
        client_id=rp["client_id"],
        client_secret=rp["client_secret"],
        redirect_uri=rp["redirect_uri"],
        gateway_client=(rp["gateway_client_id"], rp["gateway_client_secret"]),
    )


def sign_in(assembled: Assembled, subject: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with portal(assembled) as login:
            return await login.sign_in(subject)

    return asyncio.run(run())


def test_staff_sign_in_against_the_running_platform(assembled: Assembled) -> None:
    operator = sign_in(assembled, OPERATOR.subject)
    assert operator["staff"]["name"] == OPERATOR.name
    with client(assembled, operator["access_token"]) as c:
        me = c.get("/v1/me").json()
        assert (me["kind"], me["role"], me["act"]) == ("government", "operator", OPERATOR.name)
        # An import through the gateway is recorded under the person's name.
        r = c.post("/v1/scoring/imports", files={"file": ("bad.csv", BAD_FACTS, "text/csv")})
        assert r.status_code in (201, 422), r.text
        body = r.json()
        import_id = body.get("id") or body.get("import_id")
        assert c.get(f"/v1/scoring/imports/{import_id}").json()["created_by"] == OPERATOR.name

    viewer = sign_in(assembled, VIEWER.subject)
    with client(assembled, viewer["access_token"]) as c:
        assert c.get("/v1/scoring/indicators").status_code == 200
        r = c.post(f"/v1/scoring/evaluations/{uuid.uuid4()}/publish")
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/insufficient-scope")
        # Logout ends the gateway session at once.
        assert c.post("/v1/auth/logout").status_code == 204
        assert c.get("/v1/me").status_code == 401

    officer = sign_in(assembled, OFFICER.subject)
    with client(assembled, officer["access_token"]) as c:
        me = c.get("/v1/me").json()
        assert (me["kind"], me["bank_id"], me["act"]) == ("bank", OFFICER.org, OFFICER.name)
        page = c.get("/v1/credit/applications", params={"limit": 100})
        assert page.status_code == 200, page.text
        assert {a["bank_id"] for a in page.json()["items"]} <= {OFFICER.org}


def test_staff_refusals_against_the_running_platform(assembled: Assembled) -> None:
    gov = assembled.creds["government"]

    async def run() -> None:
        async with portal(assembled) as login:
            id_token = await login.id_token(OPERATOR.subject)
            # A client that is not the portal may not exchange it.
            r = await login.exchange(id_token, client=(gov["client_id"], gov["client_secret"]))
            assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")
            assert (await login.exchange(id_token)).status_code == 200
            # Each ID token once.
            r = await login.exchange(id_token)
            assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
            # A code without PKCE is never issued.
            r = await login.http.get(
                login.metadata["authorization_endpoint"],
                params={
                    "response_type": "code",
                    "client_id": login.client_id,
                    "redirect_uri": login.redirect_uri,
                    "scope": "openid",
                    "state": "s",
                },
            )
            assert r.status_code == 303 and "error=invalid_request" in r.headers["location"]

    asyncio.run(run())
    # The gateway and the provider are still healthy after the refusals.
    assert httpx.get(assembled.gateway + "/healthz", timeout=5).status_code == 200
