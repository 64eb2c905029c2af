"""The legal person's journey in a real browser: sign in through the enterprise code, read
一图清, apply for credit through the consent step, follow the application, read pushes,
withdraw a consent; and what must hold on every page (CSP, no console errors, accessibility,
375 px)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Web, canvas_ink, screenshot

MAIN_PAGES = ("/e/", "/e/credit", "/e/policy", "/e/consents")


def test_landing_offers_both_ways_in(web: Web) -> None:
    ctx, page, console = web.page()
    response = page.goto(web.portal + "/")
    assert response is not None and response.status == 200
    expect(page.get_by_role("link", name=re.compile("企业码"))).to_be_visible()
    staff = page.get_by_role("link", name=re.compile("工作人员"))
    expect(staff).to_be_visible()
    screenshot(page, "landing")
    staff.click()
    expect(page.get_by_role("heading", name="工作人员登录")).to_be_visible()
    assert console.errors == []
    ctx.close()


def test_yitu_qing_shows_the_apis_total_and_draws_the_radar(web: Web) -> None:
    uscc = web.enterprise(best=True)
    ctx, page, console = web.page()
    web.sign_in(page, uscc)
    with web.api(web.platform.enterprise_token(uscc)) as api:
        score = api.get(f"/v1/scoring/enterprises/{uscc}/score").json()
        history = api.get(f"/v1/scoring/enterprises/{uscc}/history").json()["items"]
    expect(page.get_by_test_id("total")).to_have_text(f"{score['total']:.2f}")
    radar = page.locator('[data-chart="radar"] canvas')
    expect(radar).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('[data-chart=\"radar\"]').getAttribute('aria-label')"
    )
    assert canvas_ink(page, "radar") > 2000, "the radar canvas is blank"
    assert canvas_ink(page, "trend") > 500, "the trend canvas is blank"
    # ECharts' aria module describes the chart for screen readers.
    assert page.locator('[data-chart="radar"]').get_attribute("aria-label")
    expect(page.locator(".indicator")).to_have_count(24)
    screenshot(page, "yitu-qing")

    # Another published period: HTMX swaps the scorecard; the old charts are disposed of
    # and the new ones drawn.
    older = min(h["period"] for h in history)
    assert older != score["period"]
    page.evaluate("window.__oldRadar = document.querySelector('[data-chart=\"radar\"]')")
    assert page.evaluate("echarts.getInstanceByDom(window.__oldRadar) !== undefined")
    page.get_by_role("link", name=f"{older}年度").first.click()
    expect(page.locator('.periods a[aria-current="true"]')).to_have_text(f"{older}年度")
    page.wait_for_url(re.compile(rf"period={older}"))
    page.wait_for_function(
        "() => { const el = document.querySelector('[data-chart=\"radar\"]');"
        " return el !== window.__oldRadar && !!echarts.getInstanceByDom(el); }"
    )
    assert page.evaluate("window.__oldRadar.isConnected") is False
    assert page.evaluate("echarts.getInstanceByDom(window.__oldRadar) === undefined")
    assert page.evaluate("window.__oldRadar.getAttribute('_echarts_instance_')") in (None, "")
    assert canvas_ink(page, "radar") > 2000, "the swapped-in radar is blank"
    # htmx keeps no copy of the page (personal data) in the browser's storage.
    assert page.evaluate("sessionStorage.getItem('htmx-history-cache')") is None
    old_total = next(h["total"] for h in history if h["period"] == older)
    expect(page.get_by_test_id("total")).to_have_text(f"{old_total:.2f}")
    assert console.errors == []
    ctx.close()


def _applications(web: Web, uscc: str, product_id: str) -> list[dict[str, Any]]:
    with web.api(web.platform.enterprise_token(uscc)) as api:
        r = api.get("/v1/credit/applications", params={"product_id": product_id})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def _offers_sort_in_place(page: Page) -> None:
    # Sorting swaps the list in place (HTMX) and keeps the URL shareable.
    page.get_by_role("link", name="利率从低到高").click()
    page.wait_for_url(re.compile(r"sort=rate"))
    rates = [
        float(t.split("%")[0])
        for t in page.locator("#offers .offer dd:nth-of-type(1)").all_inner_texts()
        if "%" in t
    ]
    assert rates == sorted(rates) and len(rates) >= 2


def _apply_once_through_the_consent_step(web: Web, page: Page, uscc: str) -> tuple[str, str]:
    """Apply for the first offer as a person does (double click included): (application, bank)."""
    card = page.locator("#offers .offer").first
    product_id = card.get_attribute("data-product")
    assert product_id
    card.get_by_role("link", name=re.compile("在线申请")).click()
    expect(page.get_by_role("heading", name=re.compile("在线申请"))).to_be_visible()
    form = page.locator("form.form")
    fields = {
        name: form.locator(f'[name="{name}"]').input_value()
        for name in ("csrf_token", "idempotency_key", "amount", "term_months")
    }
    # The consent step: without it the browser does not send the form.
    page.get_by_role("button", name="提交申请").click()
    assert page.url.endswith(f"/e/credit/apply/{product_id}")
    # The server holds the consent step too: the same form without it applies for nothing.
    refused = page.request.post(
        f"{web.portal}/e/credit/apply/{product_id}", form=fields, max_redirects=0
    )
    assert refused.status == 422 and "授权" in refused.text()
    assert _applications(web, uscc, product_id) == []
    page.get_by_label("我已阅读并同意上述授权").check()
    # A double click sends the form twice: one application.
    page.get_by_role("button", name="提交申请").dblclick()
    page.wait_for_url(re.compile(r"/e/credit/applications/[0-9a-f-]{36}$"))
    application_id = page.url.rsplit("/", 1)[-1]
    expect(page.get_by_test_id("application-status")).to_have_text("已提交")

    # The same form sent once more (a resubmission) gives back the same application.
    again = page.request.post(
        f"{web.portal}/e/credit/apply/{product_id}",
        form={**fields, "consent": "yes"},
        max_redirects=0,
    )
    assert again.status == 303
    assert again.headers["location"] == f"/e/credit/applications/{application_id}"
    apps = _applications(web, uscc, product_id)
    assert [a["id"] for a in apps] == [application_id]
    return application_id, str(apps[0]["bank_id"])


def _the_review_shows_on_the_timeline(
    web: Web, page: Page, application_id: str, bank_id: str
) -> None:
    # The bank starts its review: the timeline shows it.
    with web.api(web.platform.bank_token(bank_id)) as bank:
        r = bank.post(f"/v1/credit/applications/{application_id}/review", json={"note": "受理"})
        assert r.status_code == 200, r.text
    page.reload()
    expect(page.get_by_test_id("application-status")).to_have_text("审核中")
    expect(page.locator(".timeline li")).to_have_count(2)
    screenshot(page, "application")


def _the_application_consent_ends_with_it(web: Web, page: Page, application_id: str) -> None:
    # The consent given by applying belongs to the application: the page says how it ends
    # and offers no withdrawal of its own.
    page.get_by_role("link", name="授权管理").click()
    given = page.get_by_test_id("consent-in-force")
    expect(given).to_have_count(1)
    expect(given).to_contain_text("申请贷款时授权")
    expect(given.get_by_role("link", name="撤回该申请")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("撤回对.*的授权"))).to_have_count(0)

    # Withdrawing the application ends that consent; the page keeps it as a record.
    page.goto(f"{web.portal}/e/credit/applications/{application_id}")
    page.locator("details.confirm summary").click()
    page.get_by_role("button", name="确认撤回").click()
    expect(page.get_by_test_id("application-status")).to_have_text("已撤回")
    page.get_by_role("link", name="授权管理").click()
    expect(page.get_by_test_id("consent-in-force")).to_have_count(0)
    expect(page.get_by_test_id("consent-ended").first).to_contain_text("申请已撤回")


def _an_explicit_consent_is_withdrawn_on_the_page(
    web: Web, page: Page, uscc: str, bank_id: str
) -> None:
    # A consent given on its own is withdrawn on the page.
    with web.api(web.platform.enterprise_token(uscc)) as api:
        r = api.post("/v1/credit/consents", json={"bank_id": bank_id})
        assert r.status_code in (200, 201), r.text
    page.reload()
    page.get_by_role("link", name=re.compile("撤回对.*的授权")).click()
    page.get_by_role("button", name="确认撤回").click()
    expect(page.get_by_role("status")).to_have_text("已撤回对该银行的授权。")
    with web.api(web.platform.enterprise_token(uscc)) as api:
        consents = api.get("/v1/credit/consents").json()["items"]
    assert bank_id not in [c["bank_id"] for c in consents if c["status"] == "in_force"]


def test_apply_once_follow_the_status_and_withdraw(web: Web) -> None:
    uscc = web.enterprise()
    ctx, page, console = web.page()
    web.sign_in(page, uscc)
    page.get_by_role("link", name="金融超市").click()
    offers = page.locator("#offers .offer")
    expect(offers.first).to_be_visible()
    screenshot(page, "credit")
    _offers_sort_in_place(page)
    application_id, bank_id = _apply_once_through_the_consent_step(web, page, uscc)
    _the_review_shows_on_the_timeline(web, page, application_id, bank_id)
    _the_application_consent_ends_with_it(web, page, application_id)
    _an_explicit_consent_is_withdrawn_on_the_page(web, page, uscc, bank_id)
    assert console.errors == []
    ctx.close()


def test_pushes_are_read_in_place(web: Web) -> None:
    uscc = web.enterprise()
    ctx, page, console = web.page()
    web.sign_in(page, uscc)
    page.get_by_role("link", name=re.compile("政策一键配")).click()
    expect(page.get_by_role("heading", name=re.compile("推送消息"))).to_be_visible()
    # Each match carries its checklist: met, not met with the gap, or unknown.
    page.locator(".match summary").first.click()
    expect(page.locator(".match .criterion").first).to_be_visible()
    screenshot(page, "policy")
    with web.api(web.platform.enterprise_token(uscc)) as api:
        before = api.get(f"/v1/policy/enterprises/{uscc}/pushes").json()
    assert before["unread"] > 0, "the demo population gives every scored firm some pushes"
    expect(page.locator("#inbox-count")).to_contain_text(f"未读 {before['unread']} 条")
    page.locator(".push.unread").first.get_by_role("button", name=re.compile("标为已读")).click()
    expect(page.locator("#inbox-count")).to_contain_text(f"未读 {before['unread'] - 1} 条")
    expect(page.locator("#unread-badge")).to_contain_text(str(before["unread"] - 1))
    with web.api(web.platform.enterprise_token(uscc)) as api:
        after = api.get(f"/v1/policy/enterprises/{uscc}/pushes").json()
    assert after["unread"] == before["unread"] - 1
    assert console.errors == []
    ctx.close()


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(web: Web) -> None:
    uscc = web.enterprise()
    ctx, page, _ = web.page()
    web.sign_in(page, uscc)
    with web.api(web.platform.enterprise_token(uscc)) as api:
        pushes = api.get(f"/v1/policy/enterprises/{uscc}/pushes", params={"unread": "true"}).json()
    push_id = pushes["items"][0]["id"]
    url = f"{web.portal}/e/policy/pushes/{push_id}/read"
    refused = page.request.post(url, form={}, max_redirects=0)
    assert refused.status == 403
    refused = page.request.post(url, headers={"HX-Request": "true"}, max_redirects=0)
    assert refused.status == 403
    assert refused.headers["content-type"] == "application/problem+json"
    forged = page.request.post(url, form={"csrf_token": "forged-" + "x" * 36}, max_redirects=0)
    assert forged.status == 403
    with web.api(web.platform.enterprise_token(uscc)) as api:
        now = api.get(f"/v1/policy/enterprises/{uscc}/pushes", params={"unread": "true"}).json()
    assert now["unread"] == pushes["unread"]
    assert push_id in [p["id"] for p in now["items"]]
    ctx.close()


def test_session_cookie_flags(web: Web) -> None:
    ctx, page, _ = web.page()
    web.sign_in(page, web.enterprise())
    cookies = {c["name"]: c for c in ctx.cookies(web.portal)}
    # Development over plain http: the bare name (the __Host- prefix needs Secure).
    session = cookies["portal_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["secure"] is False
    assert session["path"] == "/"
    assert len(session["value"]) >= 43
    assert "portal_esso_state" not in cookies  # used once, then cleared
    assert page.evaluate("document.cookie") == ""  # nothing readable by scripts
    ctx.close()


def test_staff_pages_refuse_an_enterprise_session(web: Web) -> None:
    ctx, page, _ = web.page()
    web.sign_in(page, web.enterprise())
    for path in ("/gov/", "/bank/"):
        response = page.goto(web.portal + path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="无权访问")).to_be_visible()
    ctx.close()


def _pages(web: Web, page: Page) -> list[str]:
    page.goto(web.portal + "/e/credit")
    apply = page.locator("#offers a.button").first.get_attribute("href")
    assert apply
    return ["/", "/auth/staff", *MAIN_PAGES, apply]


def test_every_page_has_a_csp_no_console_errors_and_fits_375px(web: Web) -> None:
    ctx, page, console = web.page()
    web.sign_in(page, web.enterprise())
    for path in _pages(web, page):
        response = page.goto(web.portal + path)
        assert response is not None and response.status == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert response.headers["x-content-type-options"] == "nosniff"
        title = page.title()
        assert title.endswith("企业创新积分门户") and "<" not in title, (path, title)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways at 375 px by {overflow}px"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(web.portal + "/e/")
    page.wait_for_load_state("networkidle")
    assert console.errors == []
    ctx.close()


def test_no_serious_accessibility_violations(web: Web) -> None:
    ctx, page, _ = web.page()
    web.sign_in(page, web.enterprise())
    axe = "/static/vendor/axe.min.js"
    problems: dict[str, list[str]] = {}
    for path in _pages(web, page):
        page.goto(web.portal + path)
        page.wait_for_load_state("networkidle")
        # Served by the portal itself, so the CSP (script-src 'self') lets it in.
        page.add_script_tag(url=web.portal + axe)
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
        # axe really looked: contrast, names and labels were among the rules that passed.
        assert "color-contrast" in result["passes"] or path == "/auth/staff", path
        assert {"document-title", "html-has-lang"} <= set(result["passes"]), path
        serious = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
        if serious:
            problems[path] = [f"{v['id']}: {v['nodes'][:3]}" for v in serious]
    assert problems == {}
    ctx.close()
