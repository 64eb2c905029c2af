"""The government operator's journey in a real browser against the assembled platform: the
programme overview's funnel follows an application approved and disbursed, a malformed file
shows its error table, the pages raise no console error and have no serious accessibility
violation, and a viewer is offered no change.

Staff sessions: the staff account signs in at the development OpenID Connect provider and the
gateway exchanges its ID token (tests/staff_login.py, over real sockets); the session is then
stored by the portal's own SessionStore and its cookie handed to the browser.
"""

from __future__ import annotations

import asyncio
import csv
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from portal.gateway import tokens_from
from portal.sessions import Principal, SessionStore, token_cipher
from portal.settings import PortalSettings
from shared.db import create_engine, create_sessionmaker
from tests.browser.conftest import SCREENSHOT_DIR, SCREENSHOTS, Web, canvas_ink
from tests.staff_login import StaffLogin

DESKTOP = {"width": 1366, "height": 900}
OPERATOR = ("gov-0001", "陈思远", "operator")
VIEWER = ("gov-0002", "林晓雯", "viewer")
GOV_PAGES = (
    "/gov/",
    "/gov/rankings",
    "/gov/champions",
    "/gov/pools",
    "/gov/imports",
    "/gov/evaluations",
    "/gov/policies",
    "/gov/objections",
)


async def _staff_session(web: Web, subject: str, name: str, role: str) -> str:
    rp = web.platform.staff_relying_party()
    async with StaffLogin(
        issuer=rp["issuer"],
        gateway=web.gateway,
        client_id=rp["client_id"],
        client_secret=rp["client_secret"],
        redirect_uri=rp["redirect_uri"],
        gateway_client=(rp["gateway_client_id"], rp["gateway_client_secret"]),
    ) as login:
        body = await login.sign_in(subject)
    settings = PortalSettings(
        session_key_file=Path(web.platform.launcher.var) / "keys" / "portal-session.key"
    )
    engine = create_engine(web.platform.database_url)
    try:
        store = SessionStore(create_sessionmaker(engine), token_cipher(settings), settings)
        principal = Principal(kind="government", display_name=name, role=role, actor=name)
        session_id, _ = await store.create(principal, tokens_from(body))
    finally:
        await engine.dispose()
    return session_id


def staff_page(web: Web, account: tuple[str, str, str]) -> tuple[Any, Page, Any]:
    ctx, page, console = web.page(viewport=DESKTOP)
    # Playwright's sync API runs an event loop in this thread: the async part gets its own.
    with ThreadPoolExecutor(1) as pool:
        session_id = pool.submit(asyncio.run, _staff_session(web, *account)).result()
    ctx.add_cookies([{"name": "portal_session", "value": session_id, "url": web.portal}])
    return ctx, page, console


def desktop_screenshot(page: Page, name: str) -> None:
    """Staff pages at a desktop width, the whole page."""
    if SCREENSHOTS:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(300)
        page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


def funnel(page: Page) -> dict[str, int]:
    return {
        key: int(page.get_by_test_id(f"funnel-{key}").inner_text())
        for key in ("scored", "covered", "applied", "approved", "disbursed")
    }


def approve_and_disburse(web: Web, uscc: str) -> None:
    """The enterprise applies through the API; the offering bank reviews, approves and
    disburses with its client credentials (the bank officer's pages are another suite's)."""
    with web.api(web.platform.enterprise_token(uscc)) as me:
        offers = me.get(f"/v1/credit/enterprises/{uscc}/offers").json()["items"]
        offer = offers[0]
        r = me.post(
            "/v1/credit/applications",
            json={
                "product_id": offer["product_id"],
                "amount": offer["amount"],
                "term_months": offer["term_months"],
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        application = r.json()["id"]
    with web.api(web.platform.bank_token(offer["bank_id"])) as bank:
        base = f"/v1/credit/applications/{application}"
        assert bank.post(f"{base}/review", json={}).status_code == 200
        r = bank.post(
            f"{base}/decision",
            json={"decision": "approve", "amount": offer["amount"], "rate": 3.45},
        )
        assert r.status_code == 200, r.text
        assert bank.post(f"{base}/disburse", json={}).status_code == 200


def test_operator_sees_the_funnel_follow_an_approved_and_disbursed_application(web: Web) -> None:
    ctx, page, console = staff_page(web, OPERATOR)
    page.goto(web.portal + "/gov/")
    before = funnel(page)
    assert before["scored"] > 0 and before["covered"] <= before["scored"]
    assert canvas_ink(page, "funnel") > 500  # the funnel has actually drawn
    for chart in ("stages", "distribution", "tiers", "coverage"):
        assert canvas_ink(page, chart) > 500, chart
    approve_and_disburse(web, web.enterprise())
    page.reload()
    after = funnel(page)
    assert after["applied"] >= before["applied"] + 1
    assert after["approved"] == before["approved"] + 1
    assert after["disbursed"] == before["disbursed"] + 1
    assert canvas_ink(page, "funnel") > 500
    desktop_screenshot(page, "gov-overview")
    assert console.errors == []
    ctx.close()


def test_a_malformed_file_shows_its_error_table(web: Web, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "uscc,name,period,operating_revenue,rd_expense\n"
        "91330108MA27XK0A1M,=HYPERLINK(1),2025,-5,abc\n"
        "123,短码,2025,100,10\n",
        encoding="utf-8",
    )
    ctx, page, console = staff_page(web, OPERATOR)
    page.goto(web.portal + "/gov/imports")
    page.get_by_label("文件", exact=True).set_input_files(str(bad))
    page.get_by_label("我已核对文件，确认导入").check()
    page.get_by_test_id("upload").click()
    table = page.get_by_test_id("import-errors")
    table.wait_for()
    text = table.inner_text()
    assert "operating_revenue" in text and "uscc" in text
    assert len(table.locator("tbody tr").all()) >= 3
    assert "abc" in text and "-5" in text  # the offending values, echoed as text
    desktop_screenshot(page, "gov-import-errors")
    assert console.errors == []
    ctx.close()


def test_a_viewer_is_offered_no_change_and_is_refused_one(web: Web) -> None:
    ctx, page, console = staff_page(web, VIEWER)
    for path in GOV_PAGES:
        page.goto(web.portal + path)
        assert page.locator('form[action^="/gov/"][method="post"]').count() == 0, path
    page.goto(web.portal + "/gov/evaluations")
    run = page.locator('a[href^="/gov/evaluations/"]').first.get_attribute("href")
    assert run
    # The browser's own form post, with the page's CSRF token: refused all the same.
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    r = page.request.post(
        web.portal + run + "/publish", form={"csrf_token": csrf or "", "confirm": "yes"}
    )
    assert r.status == 403
    assert console.errors == []
    ctx.close()


def test_government_pages_have_no_serious_accessibility_violations(web: Web) -> None:
    ctx, page, console = staff_page(web, OPERATOR)
    problems: dict[str, list[str]] = {}
    for path in GOV_PAGES:
        page.goto(web.portal + path)
        page.wait_for_load_state("networkidle")
        page.add_script_tag(url=web.portal + "/static/vendor/axe.min.js")
        result = page.evaluate(
            """async () => {
                const r = await axe.run(document, {
                    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
                });
                return {
                    passes: r.passes.map(p => p.id),
                    violations: r.violations.map(v => ({
                        id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(" "))
                    }))
                };
            }"""
        )
        assert {"document-title", "html-has-lang"} <= set(result["passes"]), path
        serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
        if serious:
            problems[path] = [f"{v['id']}: {v['nodes'][:3]}" for v in serious]
    assert problems == {}
    assert console.errors == []
    ctx.close()


def test_csv_export_is_neutralised_in_the_browser_download(web: Web) -> None:
    ctx, page, _ = staff_page(web, OPERATOR)
    page.goto(web.portal + "/gov/rankings?stage=growth")
    with page.expect_download() as info:
        page.get_by_test_id("export").click()
    path = info.value.path()
    text = Path(path).read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    assert lines[0].startswith("排名,统一社会信用代码,企业名称")
    assert len(lines) > 1
    for line in lines[1:]:
        name = next(csv.reader([line]))[2]
        assert not re.match(r"[=+\-@\t\r]", name), name
    ctx.close()
