"""Staff sign-in through the portal: OpenID Connect at the development provider (code + PKCE,
state and nonce kept server side), the ID token exchanged at the gateway by the portal's own
client, a staff session with the person's name, refresh as the portal's client, logout."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import func, select, update

from portal.models import PortalSession, StaffLoginAttempt
from tests.gateway.conftest import BANK_VIEWER, GOV_OPERATOR, ICBC_OFFICER
from tests.portal.staff import StaffPortal, staff_portal  # noqa: F401


async def _rows(portal: StaffPortal) -> list[PortalSession]:
    app = portal.gw.platform.fastapi["portal"]
    async with app.state.sessionmaker() as db:
        return list(await db.scalars(select(PortalSession)))


async def test_staff_page_lists_the_providers(staff_portal: StaffPortal) -> None:  # noqa: F811
    async with staff_portal.browser() as browser:
        page = await browser.get("/auth/staff")
        assert page.status_code == 200
        assert 'href="/auth/staff/login?provider=dev"' in page.text
        assert "工作人员统一身份认证" in page.text
        unknown = await browser.get("/auth/staff/login?provider=nope")
        assert unknown.status_code == 404


async def test_authorization_request_uses_pkce_state_and_nonce(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    async with staff_portal.browser() as browser:
        start = await browser.get("/auth/staff/login?provider=dev")
        assert start.status_code == 303
        query = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert query["redirect_uri"] == "http://portal/auth/staff/callback"
        assert len(query["state"]) >= 30 and len(query["nonce"]) >= 30
        assert "openid" in query["scope"].split()
        cookie = start.headers["set-cookie"]
        assert "portal_staff_login=" in cookie and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        # What the browser may not change stays on the server; the verifier only encrypted.
        app = staff_portal.gw.platform.fastapi["portal"]
        async with app.state.sessionmaker() as db:
            [row] = list(await db.scalars(select(StaffLoginAttempt)))
        assert row.state == query["state"] and row.nonce == query["nonce"]
        assert b"." not in row.code_verifier[:4] and len(row.code_verifier) > 64


async def test_bank_officer_signs_in_and_sees_their_bank(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    async with staff_portal.browser() as browser:
        done = await staff_portal.staff_login(browser, ICBC_OFFICER.subject)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/bank/"
        assert "portal_session=" in done.headers["set-cookie"]
        page = await browser.get("/bank/")
        assert page.status_code == 200, page.text
        assert ICBC_OFFICER.name in page.text and "银行工作台" in page.text
        [row] = await _rows(staff_portal)
        assert (row.kind, row.bank_id, row.role) == ("bank", "icbc-binjiang", "operator")
        assert row.display_name == row.actor == ICBC_OFFICER.name
        # A bank officer is no government member and no enterprise.
        assert (await browser.get("/gov/")).status_code == 403
        assert (await browser.get("/e/")).status_code == 403
    async with staff_portal.browser() as browser:
        done = await staff_portal.staff_login(browser, GOV_OPERATOR.subject)
        assert done.headers["location"] == "/gov/"
        assert (await browser.get("/bank/")).status_code == 403
        gov = await browser.get("/gov/")
        assert gov.status_code == 200 and GOV_OPERATOR.name in gov.text


async def test_callback_only_completes_in_the_browser_that_started_it(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    async with staff_portal.browser() as victim, staff_portal.browser() as attacker:
        # The attacker's own sign-in, its callback planted in the victim's browser (login CSRF).
        planted = await staff_portal.press(
            attacker, await staff_portal.to_provider(attacker), ICBC_OFFICER.subject
        )
        r = await victim.get(planted)
        assert r.status_code == 400 and "重新登录" in r.text
        assert "portal_session=" not in r.headers.get("set-cookie", "")
        # The victim's own sign-in under way does not accept another state either.
        page = await staff_portal.to_provider(victim)
        mine = await staff_portal.press(victim, page, ICBC_OFFICER.subject)
        query = {k: v[0] for k, v in parse_qs(urlsplit(mine).query).items()}
        forged = "/auth/staff/callback?" + urlencode({**query, "state": "x" * 43})
        assert (await victim.get(forged)).status_code == 400
        # A sign-in is used once: after the refusal, the genuine callback fails too.
        assert (await victim.get(mine)).status_code == 400
    assert await _rows(staff_portal) == []


async def test_provider_error_and_replayed_callback(staff_portal: StaffPortal) -> None:  # noqa: F811
    async with staff_portal.browser() as browser:
        start = await browser.get("/auth/staff/login?provider=dev")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        denied = await browser.get(
            "/auth/staff/callback?" + urlencode({"error": "access_denied", "state": state})
        )
        assert denied.status_code == 400
        callback = await staff_portal.press(
            browser, await staff_portal.to_provider(browser), ICBC_OFFICER.subject
        )
        assert (await browser.get(callback)).status_code == 303
        replay = await browser.get(callback)
        assert replay.status_code == 400
    assert len(await _rows(staff_portal)) == 1


async def test_refresh_authenticates_as_the_portal_and_logout_ends_the_gateway_session(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    app = staff_portal.gw.platform.fastapi["portal"]
    async with staff_portal.browser() as browser:
        await staff_portal.staff_login(browser, BANK_VIEWER.subject)
        [before] = await _rows(staff_portal)
        assert before.role == "viewer"
        async with app.state.sessionmaker() as db, db.begin():
            await db.execute(
                update(PortalSession).values(access_expires_at=datetime.now(UTC) - timedelta(1))
            )
        assert (await browser.get("/bank/")).status_code == 200
        [after] = await _rows(staff_portal)
        assert after.access_token != before.access_token
        tokens = app.state.sessions.tokens_of(after)
        csrf = await staff_portal.staff_csrf(browser, "/bank/")
        out = await browser.post("/auth/logout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/?logout=1"
    assert await _rows(staff_portal) == []
    client = staff_portal.gw.credentials["portal"]
    async with staff_portal.gw.client() as gateway:
        r = await gateway.post(
            "/v1/auth/refresh",
            json={"refresh_token": tokens.refresh_token},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert r.status_code == 401


async def test_abandoned_sign_ins_are_cleared(staff_portal: StaffPortal) -> None:  # noqa: F811
    app = staff_portal.gw.platform.fastapi["portal"]
    async with staff_portal.browser() as browser:
        await browser.get("/auth/staff/login?provider=dev")
        async with app.state.sessionmaker() as db, db.begin():
            await db.execute(
                update(StaffLoginAttempt).values(expires_at=datetime.now(UTC) - timedelta(1))
            )
        await browser.get("/auth/staff/login?provider=dev")
    async with app.state.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(StaffLoginAttempt)) == 1


async def test_id_token_checks(staff_portal: StaffPortal) -> None:  # noqa: F811
    """What the portal checks of the ID token before it goes anywhere: the provider's key
    (not a key of the attacker's under the same key id, never `none`), and the nonce and
    audience of this sign-in."""
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from portal.oidc import SignInRefused

    app = staff_portal.gw.platform.fastapi["portal"]
    oidc = app.state.oidc
    provider = app.state.settings.staff_provider("dev")
    async with staff_portal.gw.staff_login() as login:
        auth = login.authorization()
        back = await login.choose(await login.staff_page(auth), ICBC_OFFICER.subject)
        token = await login.fetch_token(back.headers["location"], auth.verifier)
    id_token = token["id_token"]
    claims = await oidc.verify(provider, id_token, auth.nonce)
    assert claims["name"] == ICBC_OFFICER.name

    async def refused(token: str, nonce: str = auth.nonce) -> bool:
        try:
            await oidc.verify(provider, token, nonce)
        except SignInRefused:
            return True
        return False

    assert await refused(id_token, nonce="another-sign-in-nonce")
    header = jwt.decode(id_token, (await oidc._key_set(provider, refetch=False))).header
    mine = ECKey.generate_key("P-256", parameters={"kid": header["kid"]})
    assert await refused(jwt.encode({"alg": "ES256", "kid": header["kid"]}, claims, mine))
    other_aud = {**claims, "aud": "another-application"}
    assert await refused(jwt.encode({"alg": "ES256", "kid": header["kid"]}, other_aud, mine))
    head, body, _ = id_token.split(".")
    assert await refused(f"{head}.{body}.")  # the signature stripped
    none = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
    assert await refused(f"{none}.{body}.")
