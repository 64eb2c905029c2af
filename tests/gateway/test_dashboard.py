"""The mini-app dashboard: concurrent parts, each with its own status, within a deadline."""

from __future__ import annotations

import time

import pytest

from tests.gateway.conftest import ENTERPRISE_A, Gateway, gateway_settings
from tests.gateway.helpers import publish_scores
from tests.gateway.test_routing import probe_upstream
from tests.platform import available


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


async def test_dashboard_with_every_available_service(gw: Gateway) -> None:
    others = [n for n in ("credit", "policy") if available(n)]
    if not others:
        pytest.skip("credit and policy are not written yet")
    try:
        await gw.platform.start(*others)
    except Exception as exc:  # a service still being written elsewhere
        pytest.skip(f"could not start {others}: {exc!r}")
    await publish_scores(gw)
    token = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    body = await _dashboard(gw, token)
    parts = {"credit": ["offers"], "policy": ["matches", "pushes"]}
    for name in others:
        for part in parts[name]:
            p = body[part]
            assert isinstance(p, dict)
            # Reached the service, which answered (with data, or its own problem).
            assert p["status"] in ("ok", "error"), (part, p)
            assert p["http_status"] not in (401, 403), (part, p)
