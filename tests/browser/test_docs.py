"""`/docs` and `/redoc` of the gateway and a service render in a browser that may reach
nothing but this machine: every request they make stays on 127.0.0.1."""

from __future__ import annotations

import pytest
from playwright.sync_api import Route

from tests.browser.conftest import Console, Web


@pytest.mark.parametrize("component", ["gateway", "credit"])
def test_api_docs_work_offline(web: Web, component: str) -> None:
    base = web.platform.launcher.url(component)
    ctx = web.context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    page = ctx.new_page()
    console = Console(base)
    console.attach(page)
    page.goto(base + "/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 3
    page.goto(base + "/redoc")
    page.locator("[role=menuitem]").first.wait_for()
    assert outside == []
    assert console.errors == []
    ctx.close()
