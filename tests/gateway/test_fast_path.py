"""`ProxyFastPath` picks the proxy route (and its path parameter) exactly as the router's
own matching would, for the paths and methods that matter: the rest goes down the stack."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import Match

from gateway.proxy.router import ProxyFastPath

PATHS = [
    "/v1/scoring/enterprises/91330108MA27XK0A1M/score",
    "/v1/scoring/",
    "/v1/credit/a%2Fb",
    "/v1/credit/applications/7/",
    "/v1/policy/a\nb",
    "/v1/policy/a\n",
    "/v1/scoringx/a",
    "/v1/scoring",
    "/v1/policy//x",
    "/v1/auth/token",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("root_path", ["", "/api"])
def test_the_route_is_the_routers(path: str, method: str, root_path: str) -> None:
    fast = ProxyFastPath(FastAPI(), FastAPI(), "gateway", 10, 10)
    ours: dict[str, Any] = {"type": "http", "path": root_path + path, "method": method}
    theirs = {**ours, "root_path": root_path}
    ours["root_path"] = root_path
    route = fast._match(ours)
    expected = None
    for candidate in fast.routes:
        match, child = candidate.matches(theirs)
        if match is Match.FULL:
            expected = (candidate.path, child["path_params"], child["endpoint"])
            break
    got = (route.path, ours["path_params"], ours["endpoint"]) if route else None
    assert got == expected
