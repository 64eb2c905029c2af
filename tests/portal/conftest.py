"""The portal in front of the real gateway and services, in one process, with the development
identity provider standing in for the enterprise-code service (nothing of ours is mocked)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.gateway.conftest import ENTERPRISE_A, Gateway, gw, var_dir  # noqa: F401
from tests.gateway.helpers import publish_scores

PORTAL = "http://portal"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def portal_settings(**extra: Any) -> dict[str, Any]:
    return {
        "public_url": PORTAL,
        "gateway_url": "http://gateway",
        "esso_login_url": "http://idp/opensso/spsaehandler/metaAlias/sp",
        "session_keys": Fernet.generate_key().decode(),
        "session_sweep_seconds": 0,
        "cookie_secure": False,
        **extra,
    }


@dataclass
class Portal:
    gw: Gateway

    def browser(self) -> httpx.AsyncClient:
        """A browser: keeps cookies, follows nothing by itself."""
        return httpx.AsyncClient(transport=self.gw.platform.transport, base_url=PORTAL, timeout=30)

    async def login(self, browser: httpx.AsyncClient, uscc: str = ENTERPRISE_A["uscc"]) -> str:
        """The enterprise-code login as the browser goes through it; returns the CSRF token."""
        start = await browser.get("/auth/esso/login")
        assert start.status_code == 303, start.text
        spappurl = parse_qs(urlsplit(start.headers["location"]).query)["spappurl"][0]
        assert spappurl.startswith(f"{PORTAL}/auth/esso/callback?state=")
        ssotoken = await self.gw.ssotoken(uscc)
        back = await browser.get(f"{spappurl}&{urlencode({'ssotoken': ssotoken})}")
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/e/"
        return await self.csrf(browser)

    async def csrf(self, browser: httpx.AsyncClient) -> str:
        page = await browser.get("/e/consents")
        assert page.status_code == 200, page.text
        match = CSRF_META.search(page.text)
        assert match
        return match.group(1)


@pytest.fixture
async def portal(gw: Gateway) -> Portal:  # noqa: F811
    await publish_scores(gw)
    gw.platform.settings_overrides["portal"] = portal_settings()
    await gw.platform.start("credit", "policy", "portal")
    return Portal(gw)
