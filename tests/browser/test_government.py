"""The government operator's journey in a real browser against the assembled platform: the
programme overview's funnel follows an application approved and disbursed, a malformed file
shows its error table, the pages raise no console error and have no serious accessibility
violation, and a viewer is offered no change.

Staff sign in as a person does: the portal's 工作人员 link, the development OpenID Connect
provider's staff page and its 登录 button (`Web.staff_sign_in`).
"""

from __future__ import annotations

import csv
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.browser.conftest import SCREENSHOT_DIR, SCREENSHOTS, Web, canvas_ink

OPERATOR = "陈思远"
VIEWER = "林晓雯"
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


def staff_page(web: Web, name: str) -> tuple[Any, Page, Any]:
    """A desktop profile signed in as the demo staff account, through the portal's 工作人员
    link and the development provider's 登录 button."""
    ctx, page, console = web.staff_page()
    web.staff_sign_in(page, name)
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


AXE = """async () => {
    const r = await axe.run(document, {
        runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
    });
    return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
        .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", "));
}"""


def test_enterprise_reads_the_notice_and_objects_at_375px(web: Web, tmp_path: Path) -> None:
    """A run of the period in notice: the legal person sees the proposed score on a phone,
    objects to one value with a file, and follows its status; the government sees it."""
    with web.api(web.platform.government_token()) as gov:
        r = gov.post("/v1/scoring/evaluations", json={"period": 2025, "wait": True})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        ends = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        r = gov.post(f"/v1/scoring/evaluations/{run_id}/notice", json={"ends_at": ends})
        assert r.status_code == 200, r.text
    evidence = tmp_path / "证明.png"
    evidence.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    ctx, page, console = web.page()
    web.sign_in(page, web.enterprise())
    page.get_by_test_id("notice-link").click()
    page.wait_for_url(web.portal + "/e/notice")
    assert page.get_by_test_id("proposed-total").inner_text()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"/e/notice scrolls sideways at 375 px by {overflow}px"
    page.add_script_tag(url=web.portal + "/static/vendor/axe.min.js")
    assert page.evaluate(AXE) == []
    page.get_by_test_id("object-rd_expense").click()
    page.get_by_label("正确的数值").fill("999")
    page.get_by_label("理由").fill("以审计报告为准")
    page.get_by_label("证明材料（PDF、PNG 或 JPEG，不超过 10 MB，可不传）").set_input_files(
        str(evidence)
    )
    page.get_by_label("我确认所填内容与材料真实").check()
    page.get_by_test_id("submit-objection").click()
    page.wait_for_url(re.compile(r".*/e/notice/objections/[0-9a-f-]{36}\?notice=.*"))
    assert "处理中" in page.get_by_test_id("objection-status").inner_text()
    assert page.get_by_text("证明.png").count() == 1
    page.add_script_tag(url=web.portal + "/static/vendor/axe.min.js")
    assert page.evaluate(AXE) == []
    assert console.errors == []
    ctx.close()
    ctx, page, console = staff_page(web, OPERATOR)
    page.goto(web.portal + "/gov/objections")
    assert page.get_by_test_id("objections").get_by_text("以审计报告为准").count() == 0
    assert page.get_by_test_id("objections").locator("tbody tr").count() >= 1
    assert console.errors == []
    ctx.close()
