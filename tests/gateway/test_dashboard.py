"""The mini-app dashboard: concurrent parts, each with its own status, within a deadline."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway.dashboard.router import Dashboard
from shared.auth.tokens import JwksCache, TokenVerifier
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


def _odd_upstream(audience: str, jwks: dict[str, Any]) -> FastAPI:
    """A stand-in service whose answers the dashboard must pass on exactly or refuse to."""
    app = FastAPI()
    verifier = TokenVerifier(JwksCache.static(jwks), "innovation-points-gateway", audience)

    @app.get("/v1/enterprises/{uscc}/{part}")
    async def part(request: Request, uscc: str, part: str) -> Response:
        await verifier.verify(request.headers["authorization"].removeprefix("Bearer "))
        if part == "offers":  # more than the card shows, with what JSON can say
            items = [{"amount": 1_000_000 - i, "name": "银行 ü \u2028", "x": 0.1} for i in range(7)]
            return JSONResponse({"items": items, "total": 7, "deep": {"a": [1, None, True]}})
        if part == "matches":  # not JSON at all, said to be fine
            return Response(b"\xff<html>", media_type="application/json")
        # pushes: the service's own refusal
        return JSONResponse({"title": "Nope", "status": 409}, status_code=409)

    return app


async def test_dashboard_passes_bodies_on_exactly_and_refuses_broken_ones(gw: Gateway) -> None:
    await gw.platform.stop("gateway")
    gw.platform.settings_overrides["gateway"] = gateway_settings(gw.var_dir, dashboard_deadline=30)
    await gw.platform.start("gateway")
    gw.platform.apps["credit"] = _odd_upstream("credit", gw.platform.issuer.jwks())
    gw.platform.apps["policy"] = _odd_upstream("policy", gw.platform.issuer.jwks())
    token = (await gw.login(ENTERPRISE_A["uscc"]))["access_token"]
    first = await _dashboard(gw, token)
    offers = first["offers"]
    assert isinstance(offers, dict)
    assert offers["status"] == "ok"
    assert offers["data"] == {
        "items": [{"amount": 1_000_000 - i, "name": "银行 ü \u2028", "x": 0.1} for i in range(3)],
        "total": 7,
        "deep": {"a": [1, None, True]},
    }
    assert first["matches"] == {"status": "ok", "http_status": 200, "data": None, "problem": None}
    assert first["pushes"] == {
        "status": "error",
        "http_status": 409,
        "data": None,
        "problem": {"title": "Nope", "status": 409},
    }
    # The company name comes from the session, the second time as the first.
    second = await _dashboard(gw, token)
    assert second["company_name"] == first["company_name"] == ENTERPRISE_A["name"]
    assert set(second) == set(Dashboard.model_fields)
    Dashboard.model_validate(second)
