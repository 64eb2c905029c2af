"""Real-browser tests: Playwright for Python driving Debian's chromium against the assembled
platform started as processes (gateway, services, identity provider, portal) on its own
embedded PostgreSQL, at a port offset of its own.

The platform is started once for this package and stopped after its last test, before the
reliability suite starts its own. Screenshots of the main pages go to docs/screenshots/ when
PORTAL_SCREENSHOTS=1 (`make screenshots`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from scripts.assembled import PORT_OFFSET, Assembled, start_assembled

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Beside the reliability suite's platform (its offset + 1000), never on `make run`'s ports.
OFFSET = int(os.environ.get("IP_BROWSER_PORT_OFFSET", str(PORT_OFFSET + 1000)))
SIZE = 300
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
# The development provider's demo staff accounts (devtools/idp/staff.py), by name.
STAFF_ACCOUNTS = {
    "陈思远": ("government", None, "operator"),
    "林晓雯": ("government", None, "viewer"),
    "王建国": ("bank", "icbc-binjiang", "operator"),
    "赵敏": ("bank", "hzub-binjiang", "operator"),
    "周立诚": ("bank", "hzbank-binjiang", "operator"),
}
SCREENSHOTS = os.environ.get("PORTAL_SCREENSHOTS") == "1"
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"


@dataclass
class Console:
    """Console errors and uncaught exceptions of the portal's pages (the identity provider's
    pages are someone else's)."""

    origin: str
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_console(msg: ConsoleMessage) -> None:
            if msg.type != "error" or not page.url.startswith(self.origin):
                return
            if msg.text.startswith("Failed to load resource") and msg.location["url"] == page.url:
                # The document's own 4xx (a refusal the test asked for and checks itself);
                # a script, style or request that fails still counts.
                return
            self.errors.append(f"{page.url}: {msg.text}")

        page.on("console", on_console)
        page.on(
            "pageerror",
            lambda exc: (
                self.errors.append(f"{page.url}: {exc}")
                if page.url.startswith(self.origin)
                else None
            ),
        )


@dataclass
class Web:
    platform: Assembled
    browser: Browser
    scored: list[str]

    @property
    def portal(self) -> str:
        return self.platform.launcher.url("portal")

    @property
    def gateway(self) -> str:
        return self.platform.gateway

    def enterprise(self, *, best: bool = False) -> str:
        """A scored enterprise no other test has used (`best`: the one with the highest
        total, so a screenshot shows a full picture)."""
        if best:
            with self.api(self.platform.government_token()) as gov:
                totals = {
                    u: gov.get(f"/v1/scoring/enterprises/{u}/score").json()["total"]
                    for u in self.scored
                }
            uscc = max(self.scored, key=lambda u: totals[u])
            self.scored.remove(uscc)
            return uscc
        return self.scored.pop(0)

    def context(self, **options: Any) -> BrowserContext:
        ctx = self.browser.new_context(**{"locale": "zh-CN", "viewport": PHONE, **options})
        ctx.set_default_timeout(20_000)
        return ctx

    def page(self, **options: Any) -> tuple[BrowserContext, Page, Console]:
        """A fresh browser profile (no cookies, empty cache) with one page watched for
        console errors."""
        ctx = self.context(**options)
        page = ctx.new_page()
        console = Console(self.portal)
        console.attach(page)
        return ctx, page, console

    def sign_in(self, page: Page, uscc: str) -> None:
        """As a legal person does it: the portal's 企业码 link, the provider's page, the face
        check, and back on the portal's 一图清."""
        page.goto(self.portal + "/")
        page.get_by_role("link", name=re.compile("企业码")).click()
        page.locator("li", has_text=uscc).get_by_role("button", name=re.compile("登录")).click()
        page.get_by_role("button", name="Face check passes").click()
        page.wait_for_url(self.portal + "/e/")

    def staff_page(self, **options: Any) -> tuple[BrowserContext, Page, Console]:
        """A fresh desktop profile for staff pages (they are made for a desktop)."""
        return self.page(**{"viewport": DESKTOP, **options})

    def staff_sign_in(self, page: Page, name: str) -> None:
        """Sign `page` in as the named demo staff account (陈思远 government operator, 林晓雯
        government viewer, 王建国 / 赵敏 / 周立诚 the officers of ICBC, Hangzhou United Bank and
        Bank of Hangzhou; `STAFF_ACCOUNTS`) as a person does it: the portal's 工作人员 link,
        the provider's button, then the development provider's staff page and its 登录 button;
        returns on the portal's staff home (/gov/ or /bank/). Any earlier session of the
        profile is replaced."""
        page.goto(self.portal + "/")
        page.get_by_role("link", name=re.compile("工作人员")).click()
        page.locator(".provider-list a").first.click()
        page.locator("li", has_text=name).get_by_role("button", name=re.compile("登录")).click()
        page.wait_for_url(re.compile(re.escape(self.portal) + r"/(gov|bank)/$"))

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


def canvas_ink(page: Page, chart: str) -> int:
    """How many pixels of a chart's canvas are drawn (not transparent)."""
    count: int = page.evaluate(
        """(name) => {
            const canvas = document.querySelector(`[data-chart="${name}"] canvas`);
            if (!canvas) return 0;
            const ctx = canvas.getContext("2d");
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
            return n;
        }""",
        chart,
    )
    return count


def screenshot(page: Page, name: str, size: dict[str, int] = PHONE) -> None:
    """The whole page at phone width (`size`: DESKTOP for staff pages), with the viewport as
    tall as the page so the fixed tab bar sits at the bottom, where a person sees it."""
    if not SCREENSHOTS:
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(300)  # charts follow the resize
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"))
    page.set_viewport_size(size)


@pytest.fixture(scope="package")
def web() -> Iterator[Web]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    platform = start_assembled(ROOT / "var" / "browser", size=SIZE, port_offset=OFFSET)
    try:
        scored = platform.scored_enterprises(12)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield Web(platform, browser, scored)
            finally:
                browser.close()
    finally:
        platform.close()


def serious_axe_violations(web: Web, page: Page) -> list[str]:
    """axe-core (vendored, served by the portal so the CSP lets it in) on the page as it is
    now: the serious and critical WCAG 2.1 A/AA violations, as `rule: [targets]`."""
    page.wait_for_load_state("networkidle")
    page.add_script_tag(url=web.portal + "/static/vendor/axe.min.js")
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
            });
            return r.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => v.id + ": " +
                     v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "));
        }"""
    )
    return list(result)
