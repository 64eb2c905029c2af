"""`shared.app.ServiceMiddleware`: request id, metrics, relative redirects and hot routes in
one layer, on a small app of its own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.responses import Response
from starlette.types import Scope

from shared.app import HotRoute, ServiceMiddleware, check_hot_routes
from shared.metrics import REQUESTS

COMPONENT = "middleware-test"


async def _hot_item(scope: Scope, params: dict[str, str]) -> Response | None:
    if params["item"] != "hot":
        return None  # the route answers
    return Response(b'{"item":"hot"}', media_type="application/json")


HOT = [HotRoute("GET", "/v1/items/{item}", _hot_item)]


def _app(hot: list[HotRoute]) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/items/{item}")
    async def item(item: str) -> JSONResponse:
        return JSONResponse({"item": item, "by": "route"})

    @router.get("/here")
    async def here(request: Request) -> RedirectResponse:
        return RedirectResponse(f"http://{request.headers['host']}/v1/items/1")

    @router.get("/away")
    async def away() -> RedirectResponse:
        return RedirectResponse("https://login.example/authorize")

    app.include_router(router)
    check_hot_routes(app, hot)
    app.add_middleware(ServiceMiddleware, component=COMPONENT, root=app, hot_routes=hot)
    return app


def _count(route: str, status: str) -> float:
    value: float = REQUESTS.labels(COMPONENT, "GET", route, status)._value.get()
    return value


async def test_hot_routes_answer_or_fall_through_with_id_and_metrics() -> None:
    app = _app(HOT)
    before = _count("/v1/items/{item}", "200")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        hot = await c.get("/v1/items/hot", headers={"X-Request-ID": "abc-12345678"})
        assert hot.json() == {"item": "hot"}
        assert hot.headers["x-request-id"] == "abc-12345678"
        routed = await c.get("/v1/items/cold", headers={"X-Request-ID": "bad id"})
        assert routed.json() == {"item": "cold", "by": "route"}
        assert len(routed.headers["x-request-id"]) == 32
        # Only GET: a HEAD of the same path is the route's.
        assert (await c.head("/v1/items/hot")).status_code in (200, 405)
    assert _count("/v1/items/{item}", "200") == before + 2


async def test_redirects_to_this_site_say_only_the_path() -> None:
    app = _app([])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/v1/here", headers={"Host": "evil.example"})
        assert r.status_code == 307 and r.headers["location"] == "/v1/items/1"
        assert len(r.headers["x-request-id"]) == 32
        r = await c.get("/v1/away")
        assert r.headers["location"] == "https://login.example/authorize"


def test_a_hot_route_must_be_the_route_routing_chooses() -> None:
    _app(HOT)  # the documented route of that path: accepted
    with pytest.raises(RuntimeError, match="not the route"):
        _app([HotRoute("GET", "/v1/nowhere/{item}", _hot_item)])
    shadowing = FastAPI()

    @shadowing.get("/v1/items/{anything}")
    async def first(anything: str) -> dict[str, Any]:
        return {}

    @shadowing.get("/v1/items/{item}")
    async def second(item: str) -> dict[str, Any]:
        return {}

    with pytest.raises(RuntimeError, match="not the route"):
        check_hot_routes(shadowing, HOT)
