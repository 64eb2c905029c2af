"""The portal's web behaviour against the real gateway and services: signing in through the
enterprise code, the session cookie, CSRF, guards, token refresh, logout, headers and what a
person sees when a service is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select, update

from portal.models import PortalSession
from tests.gateway.conftest import ENTERPRISE_A, Gateway
from tests.gateway.helpers import publish_scores
from tests.portal.conftest import PORTAL, Portal, portal_settings


async def _sessions(portal: Portal) -> list[PortalSession]:
    app = portal.gw.platform.fastapi["portal"]
    async with app.state.sessionmaker() as db:
        return list(await db.scalars(select(PortalSession)))


async def test_enterprise_code_login_lands_on_the_score(portal: Portal) -> None:
    async with portal.browser() as browser:
        start = await browser.get("/auth/esso/login")
        cookie = start.headers["set-cookie"]
        assert "portal_esso_state=" in cookie and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower() and "Path=/" in cookie
        await portal.login(browser)
        set_cookie = [c for c in browser.cookies.jar if c.name == "portal_session"]
        assert len(set_cookie) == 1
        home = await browser.get("/e/")
        assert home.status_code == 200
        assert ENTERPRISE_A["name"] in home.text
        token = await portal.gw.login(ENTERPRISE_A["uscc"])
        async with portal.gw.client(token["access_token"]) as api:
            score = (await api.get(f"/v1/scoring/enterprises/{ENTERPRISE_A['uscc']}/score")).json()
        assert f'data-testid="total">{score["total"]:.2f}<' in home.text
        assert 'data-chart="radar"' in home.text and 'data-chart="trend"' in home.text
        assert home.headers["cache-control"] == "no-store"


async def test_session_cookie_flags(portal: Portal) -> None:
    async with portal.browser() as browser:
        start = await browser.get("/auth/esso/login")
        state = parse_qs(
            urlsplit(parse_qs(urlsplit(start.headers["location"]).query)["spappurl"][0]).query
        )["state"][0]
        sso = await portal.gw.ssotoken(ENTERPRISE_A["uscc"])
        back = await browser.get("/auth/esso/callback", params={"state": state, "ssotoken": sso})
        header = next(
            h for h in back.headers.get_list("set-cookie") if h.startswith("portal_session=")
        )
        assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
        assert "Secure" not in header  # cookie_secure=False in this test: plain http


async def test_login_not_started_here_is_refused(portal: Portal) -> None:
    sso = await portal.gw.ssotoken(ENTERPRISE_A["uscc"])
    async with portal.browser() as browser:
        # An attacker's ssotoken planted through a link: this browser holds no state cookie.
        r = await browser.get("/auth/esso/callback", params={"state": "x" * 43, "ssotoken": sso})
        assert r.status_code == 400
        assert "重新登录" in r.text
        assert "portal_session" not in r.headers.get("set-cookie", "")
    assert await _sessions(portal) == []


async def test_unsafe_requests_need_the_csrf_token(portal: Portal) -> None:
    uscc = ENTERPRISE_A["uscc"]
    ent = await portal.gw.login(uscc)
    async with portal.gw.client(ent["access_token"]) as api:
        r = await api.post("/v1/credit/consents", json={"bank_id": "icbc-binjiang"})
        assert r.status_code == 201, r.text

    async def consents() -> list[str]:
        async with portal.gw.client(ent["access_token"]) as api:
            return [c["bank_id"] for c in (await api.get("/v1/credit/consents")).json()["items"]]

    async with portal.browser() as browser:
        csrf = await portal.login(browser)
        url = "/e/consents/icbc-binjiang/withdraw"
        missing = await browser.post(url, data={})
        assert missing.status_code == 403 and "操作未执行" in missing.text
        wrong = await browser.post(url, data={"csrf_token": csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        htmx = await browser.post(url, headers={"HX-Request": "true"})
        assert htmx.status_code == 403
        assert htmx.headers["content-type"] == "application/problem+json"
        cross = await browser.post(
            url, data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        site = await browser.post(
            url, data={"csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert site.status_code == 403
        assert await consents() == ["icbc-binjiang"]
        ok = await browser.post(url, data={"csrf_token": csrf}, headers={"Origin": PORTAL})
        assert ok.status_code == 303, ok.text
        assert ok.headers["location"] == "/e/consents?notice=consent-withdrawn"
        header = await browser.post(
            "/e/consents/icbc-binjiang/withdraw", headers={"X-CSRF-Token": csrf}
        )
        assert header.status_code == 404  # accepted by the check; the consent is gone now
    assert await consents() == []


async def test_guards(portal: Portal) -> None:
    async with portal.browser() as anonymous:
        r = await anonymous.get("/e/")
        assert r.status_code == 303 and r.headers["location"] == "/?login=1"
        r = await anonymous.get("/gov/")
        assert r.status_code == 303 and r.headers["location"] == "/auth/staff"
        r = await anonymous.get("/e/credit", headers={"HX-Request": "true"})
        assert r.headers["hx-redirect"] == "/?login=1"
        landing = await anonymous.get("/")
        assert "企业码" in landing.text and "工作人员" in landing.text
        staff = await anonymous.get("/auth/staff")
        assert staff.status_code == 200 and "工作人员登录" in staff.text
    async with portal.browser() as browser:
        await portal.login(browser)
        for path in ("/gov/", "/bank/"):
            r = await browser.get(path)
            assert r.status_code == 403, path
            assert "无权访问" in r.text


async def test_expired_access_token_is_refreshed_then_a_refused_refresh_ends_the_session(
    portal: Portal,
) -> None:
    async with portal.browser() as browser:
        await portal.login(browser)
        [before] = await _sessions(portal)
        app = portal.gw.platform.fastapi["portal"]
        async with app.state.sessionmaker() as db, db.begin():
            await db.execute(
                update(PortalSession).values(access_expires_at=datetime.now(UTC) - timedelta(1))
            )
        r = await browser.get("/e/")
        assert r.status_code == 200
        [after] = await _sessions(portal)
        assert after.access_token != before.access_token
        assert after.refresh_token != before.refresh_token
        assert after.access_expires_at > datetime.now(UTC)

        # The gateway session ends elsewhere (e.g. revoked): the refresh is refused, and the
        # portal session ends with it.
        old_refresh = app.state.sessions.tokens_of(after).refresh_token
        async with portal.gw.client() as gateway:
            out = await gateway.post("/v1/auth/logout", json={"refresh_token": old_refresh})
            assert out.status_code == 204
        async with app.state.sessionmaker() as db, db.begin():
            await db.execute(
                update(PortalSession).values(access_expires_at=datetime.now(UTC) - timedelta(1))
            )
        r = await browser.get("/e/")
        assert r.status_code == 303 and r.headers["location"] == "/?expired=1"
        assert await _sessions(portal) == []


async def test_logout_ends_the_gateway_session_too(portal: Portal) -> None:
    async with portal.browser() as browser:
        csrf = await portal.login(browser)
        [row] = await _sessions(portal)
        app = portal.gw.platform.fastapi["portal"]
        tokens = app.state.sessions.tokens_of(row)
        r = await browser.post("/auth/logout", data={"csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/?logout=1"
        assert await _sessions(portal) == []
        assert (await browser.get("/e/")).status_code == 303
        # Logging out again (a stale page, an expired session) just lands on the home page.
        again = await browser.post("/auth/logout", data={"csrf_token": csrf})
        assert again.status_code == 303 and again.headers["location"] == "/?logout=1"
    async with portal.gw.client() as gateway:
        refresh = await gateway.post(
            "/v1/auth/refresh", json={"refresh_token": tokens.refresh_token}
        )
        assert refresh.status_code == 401


async def test_security_headers_and_static_files(portal: Portal) -> None:
    async with portal.browser() as browser:
        page = await browser.get("/")
        csp = page.headers["content-security-policy"]
        for part in (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self' http://idp",
        ):
            assert part in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in page.text and " style=" not in page.text
        src = next(s for s in page.text.split('"') if s.startswith("/static/vendor/htmx.min.js?v="))
        js = await browser.get(src, headers={"Accept-Encoding": "gzip"})
        assert js.status_code == 200
        assert js.headers["content-encoding"] == "gzip"
        assert "immutable" in js.headers["cache-control"]
        stale = await browser.get("/static/vendor/htmx.min.js?v=000000000000")
        assert stale.headers["cache-control"] == "no-cache"


async def test_a_service_down_is_a_friendly_503(portal: Portal) -> None:
    async with portal.browser() as browser:
        await portal.login(browser)
        await portal.gw.platform.stop("scoring")
        r = await browser.get("/e/")
        assert r.status_code == 503
        assert "服务暂不可用" in r.text
        assert r.headers["x-request-id"] in r.text
        await portal.gw.platform.stop("gateway")
        r = await browser.get("/e/credit")
        assert r.status_code == 503 and "服务暂不可用" in r.text
        r = await browser.get("/e/credit", headers={"HX-Request": "true"})
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["title"] == "服务暂不可用"


async def test_healthz_and_readyz(portal: Portal) -> None:
    async with httpx.AsyncClient(transport=portal.gw.platform.transport, base_url=PORTAL) as c:
        assert (await c.get("/healthz")).status_code == 200
        ready = await c.get("/readyz")
        assert ready.status_code == 200, ready.text
        # Metrics live on an internal port only, as for every component.
        assert (await c.get("/metrics")).status_code == 404


async def test_outside_development_the_cookies_are_secure_host_cookies(gw: Gateway) -> None:
    await publish_scores(gw)
    gw.platform.settings_overrides["portal"] = portal_settings(cookie_secure=True)
    await gw.platform.start("portal")
    portal = Portal(gw)
    async with portal.browser() as browser:
        start = await browser.get("/auth/esso/login")
        state_header = start.headers["set-cookie"]
        assert state_header.startswith("__Host-portal_esso_state=")
        assert "Secure" in state_header and "Path=/" in state_header
        assert "Domain" not in state_header  # __Host- forbids it
        spappurl = parse_qs(urlsplit(start.headers["location"]).query)["spappurl"][0]
        state = parse_qs(urlsplit(spappurl).query)["state"][0]
        sso = await gw.ssotoken(ENTERPRISE_A["uscc"])
        # The browser sends the state cookie back (over https in real life).
        back = await browser.get(
            "/auth/esso/callback",
            params={"state": state, "ssotoken": sso},
            headers={"Cookie": f"__Host-portal_esso_state={state}"},
        )
        assert back.status_code == 303, back.text
        session_header = next(
            h for h in back.headers.get_list("set-cookie") if h.startswith("__Host-portal_session=")
        )
        assert "Secure" in session_header and "HttpOnly" in session_header
        assert "SameSite=lax" in session_header and "Path=/" in session_header
        assert "Domain" not in session_header
