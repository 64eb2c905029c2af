"""The login endpoints' per-address limit behind the portal (docs/gateway.md).

Every browser sign-in through the portal reaches the gateway from the portal's address. The
portal authenticates as its gateway client (kind `portal`) and forwards the browser's
address; only then is that address the one counted.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.gateway.conftest import ENTERPRISE_A, GOV_OPERATOR, Gateway, gateway_settings
from tests.staff_login import ID_TOKEN_TYPE, TOKEN_EXCHANGE

LIMIT = 3


async def _limited(gw: Gateway) -> None:
    await gw.platform.stop("gateway")
    gw.platform.settings_overrides["gateway"] = gateway_settings(
        gw.var_dir, rate_limit_auth=f"{LIMIT}/minute"
    )
    await gw.platform.start("gateway")


def _portal(gw: Gateway) -> tuple[str, str]:
    portal = gw.credentials["portal"]
    return str(portal["client_id"]), str(portal["client_secret"])


async def _exchange(gw: Gateway, browser: str, **kw: Any) -> httpx.Response:
    ssotoken = await gw.ssotoken(ENTERPRISE_A["uscc"])
    async with gw.client() as c:
        return await c.post(
            "/v1/auth/esso/exchange",
            json={"ssotoken": ssotoken},
            headers={"X-Forwarded-For": browser},
            **kw,
        )


async def test_the_portal_signs_in_more_browsers_than_one_address_may(gw: Gateway) -> None:
    await _limited(gw)
    portal = _portal(gw)
    codes = [
        (await _exchange(gw, f"203.0.113.{n}", auth=portal)).status_code for n in range(LIMIT + 2)
    ]
    assert codes == [200] * (LIMIT + 2)
    # Each browser still has its own limit.
    codes = [(await _exchange(gw, "198.51.100.7", auth=portal)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # The session it opened refreshes through the portal under the browser's count too.
    body = (await _exchange(gw, "198.51.100.8", auth=portal)).json()
    async with gw.client() as c:
        r = await c.post(
            "/v1/auth/refresh",
            json={"refresh_token": body["refresh_token"]},
            headers={"X-Forwarded-For": "198.51.100.8"},
            auth=portal,
        )
        assert r.status_code == 200, r.text


async def test_staff_sign_ins_through_the_portal_count_per_browser(gw: Gateway) -> None:
    await _limited(gw)
    portal = _portal(gw)
    for n in range(LIMIT + 1):
        async with gw.staff_login() as login:
            id_token = await login.id_token(GOV_OPERATOR.subject)
        async with gw.client() as c:
            r = await c.post(
                "/v1/auth/token",
                data={
                    "grant_type": TOKEN_EXCHANGE,
                    "subject_token": id_token,
                    "subject_token_type": ID_TOKEN_TYPE,
                },
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
                auth=portal,
            )
        assert r.status_code == 200, (n, r.text)


async def test_nobody_else_chooses_the_counted_address(gw: Gateway) -> None:
    await _limited(gw)
    # Anonymous: X-Forwarded-For is not believed; the peer's address is counted.
    codes = [(await _exchange(gw, f"203.0.113.{n}")).status_code for n in range(LIMIT + 1)]
    assert codes == [200] * LIMIT + [429]


async def test_a_bank_is_no_forwarder_and_a_wrong_secret_counts(gw: Gateway) -> None:
    await _limited(gw)
    bank = gw.credentials["banks"][0]
    async with gw.client() as c:
        codes = [
            (
                await c.post(
                    "/v1/auth/token",
                    data={"grant_type": "client_credentials"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                    auth=(bank["client_id"], bank["client_secret"]),
                )
            ).status_code
            for n in range(LIMIT + 1)
        ]
    assert codes == [200] * LIMIT + [429]
    await _limited(gw)
    client_id, _ = _portal(gw)
    codes = [
        (await _exchange(gw, f"203.0.113.{n}", auth=(client_id, "wrong"))).status_code
        for n in range(LIMIT + 1)
    ]
    # Wrong secrets are counted against the caller's own address, then refused unchecked.
    assert codes == [401] * LIMIT + [429]
    r = await _exchange(gw, "203.0.113.99", auth=_portal(gw))
    assert r.status_code == 429


async def test_a_forwarded_value_that_is_no_address_is_not_believed(gw: Gateway) -> None:
    await _limited(gw)
    portal = _portal(gw)
    # IPv6 is an address like any other (the last entry is the one the portal added).
    for _ in range(LIMIT):
        assert (await _exchange(gw, "203.0.113.1, 2001:db8::1", auth=portal)).status_code == 200
    values = ["not-an-address", "203.0.113.1, junk", "", "203.0.113.1 ; 1"]
    codes = [(await _exchange(gw, v, auth=portal)).status_code for v in values]
    assert codes == [200] * LIMIT + [429]
    # The portal's own address is over its limit now: until the window passes, nothing from
    # it is verified, forwarded or not (only the portal itself can bring that about).
    assert (await _exchange(gw, "2001:db8::2", auth=portal)).status_code == 429
