"""Browsers behind the portal, as real processes: the gateway's per-address login limit counts
each browser, not the portal every sign-in comes from (docs/gateway.md).

One more gateway and portal are started beside the platform, on its database and keys: the
gateway with a low login limit and trusting no one's X-Forwarded-For by its network (so only
the portal's client authentication can make it count a browser's address), the portal behind
a pretend ingress at 127.0.0.1 that tells it the browser's address.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from scripts.assembled import PORT_OFFSET, Assembled
from scripts.launcher import Launcher
from tests.reliability.test_hardening import shared_keys

SLOT = 850
LIMIT = 3


@pytest.fixture(scope="module")
def portal(assembled: Assembled) -> Iterator[str]:
    idp = assembled.launcher.url("idp")
    esso = {
        "ESSO_LOGIN_URL": f"{idp}/opensso/spsaehandler/metaAlias/sp",
        "ESSO_QUERY_URL": f"{idp}/rest/user/query",
    }
    env = {
        "gateway": {**shared_keys(assembled), **esso, "RATE_LIMIT_AUTH": f"{LIMIT}/minute"},
        "portal": {"ESSO_LOGIN_URL": esso["ESSO_LOGIN_URL"]},
    }

    def launcher(**kw: str) -> Launcher:
        made = Launcher(
            database_url=assembled.database_url,
            var=assembled.var / f"extra-{SLOT}",
            port_offset=PORT_OFFSET + SLOT,
            extra_env=env,
            **kw,
        )
        made.creds = assembled.launcher.creds  # the portal's gateway client among them
        return made

    gateway, front = launcher(), launcher(forwarded_allow_ips="127.0.0.1")
    try:
        gateway.start("gateway")
        front.start("portal")
        yield front.url("portal")
    finally:
        front.stop_all()
        gateway.stop_all()


def sign_in(assembled: Assembled, portal: str, address: str) -> int:
    """A browser at `address` signs in with the enterprise code through the portal; the
    status the portal's callback answers (303 to the enterprise pages when signed in)."""
    uscc = assembled.enterprises[0]["uscc"]
    headers = {"X-Forwarded-For": address}
    with httpx.Client(base_url=portal, headers=headers, timeout=30) as browser:
        start = browser.get("/auth/esso/login")
        assert start.status_code == 303, start.text
        callback = httpx.URL(start.headers["location"]).params["spappurl"]
        r = httpx.post(
            f"{assembled.launcher.url('idp')}/simulate-login", data={"uscc": uscc}, timeout=30
        )
        assert r.status_code == 200, r.text
        back = browser.get(f"{callback}&{urlencode({'ssotoken': r.json()['ssotoken']})}")
        return back.status_code


def test_each_browser_behind_the_portal_has_its_own_login_limit(
    assembled: Assembled, portal: str
) -> None:
    codes = [sign_in(assembled, portal, f"203.0.113.{n}") for n in range(LIMIT + 2)]
    assert codes == [303] * (LIMIT + 2)
    same = [sign_in(assembled, portal, "198.51.100.77") for _ in range(LIMIT + 1)]
    assert same == [303] * LIMIT + [429]
