"""Staff sign-in through the portal, as a browser goes through it, for the in-process tests:
the portal's link, the development provider's staff page and its 登录 button, the portal's
callback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import IDP_ISSUER, PORTAL_RP, PORTAL_RP_SECRET, Gateway, gw  # noqa: F401
from tests.gateway.helpers import publish_scores
from tests.portal.conftest import CSRF_META, PORTAL, Portal, portal_settings
from tests.staff_login import staff_buttons


def staff_settings(gw: Gateway, **extra: Any) -> dict[str, Any]:  # noqa: F811
    client = gw.credentials["portal"]
    return portal_settings(
        staff_providers=[
            {
                "name": "dev",
                "label": "工作人员统一身份认证",
                "issuer": IDP_ISSUER,
                "client_id": PORTAL_RP,
                "client_secret": PORTAL_RP_SECRET,
            }
        ],
        gateway_client_id=client["client_id"],
        gateway_client_secret=client["client_secret"],
        **extra,
    )


@dataclass
class StaffPortal(Portal):
    async def to_provider(self, browser: httpx.AsyncClient) -> httpx.Response:
        """From the portal to the provider's staff page; the page."""
        start = await browser.get("/auth/staff/login?provider=dev")
        assert start.status_code == 303, start.text
        assert start.headers["location"].startswith(f"{IDP_ISSUER}/oidc/authorize?")
        page = await browser.get(start.headers["location"])
        assert page.status_code == 200, page.text
        return page

    async def press(self, browser: httpx.AsyncClient, page: httpx.Response, subject: str) -> str:
        """The account's 登录 button; returns the provider's redirect to the portal."""
        button = next(b for b in staff_buttons(page.text) if b.account == subject)
        assert "登录" in button.text
        back = await browser.post(
            httpx.URL(IDP_ISSUER).join(button.action),
            data={"request": button.request, "account": button.account},
        )
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        assert location.startswith(f"{PORTAL}/auth/staff/callback?")
        return location

    async def staff_login(self, browser: httpx.AsyncClient, subject: str) -> httpx.Response:
        """The whole sign-in; the portal's answer to the callback."""
        callback = await self.press(browser, await self.to_provider(browser), subject)
        return await browser.get(callback)

    async def staff_csrf(self, browser: httpx.AsyncClient, path: str) -> str:
        page = await browser.get(path)
        assert page.status_code == 200, page.text
        match = CSRF_META.search(page.text)
        assert match
        return match.group(1)


@pytest.fixture
async def staff_portal(gw: Gateway) -> StaffPortal:  # noqa: F811
    await publish_scores(gw)
    gw.platform.settings_overrides["portal"] = staff_settings(gw)
    await gw.platform.start("credit", "policy", "portal")
    return StaffPortal(gw)
