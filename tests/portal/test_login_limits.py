"""Many browsers sign in through the portal although the gateway's login endpoints limit each
address: the portal forwards the browser's address as a trusted forwarder (docs/gateway.md)."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from tests.gateway.conftest import ENTERPRISE_A, ENTERPRISE_B, Gateway, gateway_settings
from tests.portal.conftest import PORTAL, Portal, portal_settings

LIMIT = 3


def browser_at(gw: Gateway, address: str) -> httpx.AsyncClient:
    """A browser at its own address (the in-process transport makes every caller 127.0.0.1)."""
    app = gw.platform.apps["portal"]
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=PORTAL, timeout=30)


async def _restart(gw: Gateway, *, forwarder: bool) -> None:
    for name in ("portal", "gateway"):
        await gw.platform.stop(name)
    gw.platform.settings_overrides["gateway"] = gateway_settings(
        gw.var_dir, rate_limit_auth=f"{LIMIT}/minute"
    )
    client = gw.credentials["portal"]
    extra = (
        {"gateway_client_id": client["client_id"], "gateway_client_secret": client["client_secret"]}
        if forwarder
        else {}
    )
    gw.platform.settings_overrides["portal"] = portal_settings(**extra)
    await gw.platform.start("gateway", "portal")


async def test_more_browsers_sign_in_than_one_address_may(portal: Portal) -> None:
    gw = portal.gw
    await _restart(gw, forwarder=True)
    for n in range(LIMIT + 2):
        async with browser_at(gw, f"203.0.113.{n}") as browser:
            uscc = (ENTERPRISE_A, ENTERPRISE_B)[n % 2]["uscc"]
            await portal.login(browser, uscc)
    # One browser is still held to the limit.
    async with browser_at(gw, "198.51.100.9") as browser:
        for _ in range(LIMIT):
            await portal.login(browser)
        start = await browser.get("/auth/esso/login")
        spappurl = httpx.URL(start.headers["location"]).params["spappurl"]
        ssotoken = await gw.ssotoken(ENTERPRISE_A["uscc"])
        refused = await browser.get(f"{spappurl}&{urlencode({'ssotoken': ssotoken})}")
        assert refused.status_code == 429


async def test_without_its_gateway_client_the_portal_is_one_address(portal: Portal) -> None:
    gw = portal.gw
    await _restart(gw, forwarder=False)
    for n in range(LIMIT):
        async with browser_at(gw, f"203.0.113.{n}") as browser:
            await portal.login(browser)
    async with browser_at(gw, "203.0.113.200") as browser:
        start = await browser.get("/auth/esso/login")
        spappurl = httpx.URL(start.headers["location"]).params["spappurl"]
        ssotoken = await gw.ssotoken(ENTERPRISE_A["uscc"])
        refused = await browser.get(f"{spappurl}&{urlencode({'ssotoken': ssotoken})}")
        assert refused.status_code == 429
