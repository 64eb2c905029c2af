"""The mini-app dashboard: concurrent parts, each with its own status, within a deadline."""

from __future__ import annotations

import time

from tests.gateway.conftest import ENTERPRISE_A, Gateway, gateway_settings
from tests.gateway.helpers import publish_scores
from tests.gateway.test_routing import probe_upstream


async def _dashboard(gw: Gateway, token: str) -> dict[str, object]:
    async with gw.client(token) as c:
        started = time.monotonic()
        r = await c.get("/v1/me/dashboard")
        elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert elapsed < 3.0
    body: dict[str, object] = r.json()
    return body


async def test_dashboard_degrades_when_services_are_down(gw: Gateway) -> None:
    await publish_scores(gw)
    token = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    # Only scoring runs: credit and policy are down.
    body = await _dashboard(gw, token)
    assert body["uscc"] == ENTERPRISE_A["uscc"]
    assert body["company_name"] == ENTERPRISE_A["name"]
    score = body["score"]
    assert isinstance(score, dict)
    assert score["status"] == "ok", score
    assert score["data"]["uscc"] == ENTERPRISE_A["uscc"]
    for part in ("offers", "matches", "pushes"):
        p = body[part]
        assert isinstance(p, dict)
        assert p["status"] == "unavailable", (part, p)
        assert p["http_status"] == 503

    await gw.platform.stop("scoring")
    body = await _dashboard(gw, token)
    assert isinstance(body["score"], dict)
    assert body["score"]["status"] == "unavailable"


async def test_dashboard_deadline_bounds_a_slow_service(gw: Gateway) -> None:
    await gw.platform.stop("gateway")
    gw.platform.settings_overrides["gateway"] = gateway_settings(gw.var_dir, dashboard_deadline=0.3)
    await gw.platform.start("gateway")
    token = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    slow = probe_upstream("policy", gw.platform.issuer.jwks(), slow=("/matches",))
    gw.platform.apps["policy"] = slow
    started = time.monotonic()
    body = await _dashboard(gw, token)
    assert time.monotonic() - started < 1.5
    matches, pushes = body["matches"], body["pushes"]
    assert isinstance(matches, dict)
    assert isinstance(pushes, dict)
    assert matches["status"] == "timeout"
    assert pushes["status"] == "ok"  # the same service's other part was quick


async def test_dashboard_is_for_enterprises(gw: Gateway) -> None:
    gov = await gw.government()
    async with gw.client(gov) as c:
        r = await c.get("/v1/me/dashboard")
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


async def test_dashboard_with_every_service(gw: Gateway) -> None:
    from services.credit.evaluations.sync import sync_evaluations as sync_credit
    from services.policy.matching.sync import sync_evaluations as sync_policy

    # What every part says is checked here, not the deadline (tested above): a busy machine
    # must not turn a slow first read into a timeout.
    await gw.platform.stop("gateway")
    gw.platform.settings_overrides["gateway"] = gateway_settings(gw.var_dir, dashboard_deadline=30)
    await gw.platform.start("gateway", "credit", "policy")
    await publish_scores(gw)
    # The consumers read the publication from the feed (deterministically, not by polling).
    await sync_credit(gw.platform.fastapi["credit"])
    await sync_policy(gw.platform.fastapi["policy"])
    token = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    body = await _dashboard(gw, token)
    for part in ("score", "offers", "matches", "pushes"):
        assert body[part]["status"] == "ok", (part, body[part])
    assert body["score"]["data"]["uscc"] == ENTERPRISE_A["uscc"]
    offers = body["offers"]["data"]["items"]
    assert 1 <= len(offers) <= 3
    amounts = [o["amount"] for o in offers]
    assert amounts == sorted(amounts, reverse=True)
    pools = body["matches"]["data"]["items"]
    assert all(m["kind"] == "pool" and m["status"] in ("eligible", "near") for m in pools)
    for m in pools:
        assert m["criteria"], m
