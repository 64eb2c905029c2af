"""The bank officer's journey in a real browser: an enterprise applies through the portal
(enterprise code, consent step), the officer of that bank signs in as a person at the
development OpenID Connect provider, finds the application in the queue, reviews, decides
and disburses it, each through its confirmation step; and what must hold: another bank's
officer does not get the application, a viewer changes nothing, an enterprise is refused,
a change without the CSRF token is refused; no console errors, no serious axe violations."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, Web, screenshot, serious_axe_violations

BANK = "icbc-binjiang"
OFFICER = "王建国"  # ICBC's demo officer
OTHER_OFFICER = "赵敏"  # Hangzhou United Bank's
VIEWER = "林晓雯"  # the government viewer


def _apply_as_enterprise(web: Web, uscc: str) -> str:
    """The legal person applies to the bank's product through the portal; the application id."""
    with web.api(web.platform.enterprise_token(uscc)) as api:
        offers = api.get(f"/v1/credit/enterprises/{uscc}/offers").json()["items"]
    product = next(o["product_id"] for o in offers if o["bank_id"] == BANK)
    ctx, page, console = web.page()
    web.sign_in(page, uscc)
    page.goto(f"{web.portal}/e/credit/apply/{product}")
    page.get_by_label("我已阅读并同意上述授权").check()
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_url(re.compile(r"/e/credit/applications/[0-9a-f-]{36}$"))
    application_id = page.url.rsplit("/", 1)[-1]
    assert console.errors == []
    ctx.close()
    return application_id


def _confirm(page: Page, start: str, confirm: str) -> None:
    """An action's button shows the confirmation step; its button does it."""
    page.get_by_role("button", name=start).click()
    expect(page.get_by_role("heading", name=re.compile("请确认"))).to_be_visible()
    page.get_by_role("button", name=confirm).click()
    expect(page.get_by_role("status")).to_be_visible()


def test_officer_decides_and_disburses_an_application(web: Web) -> None:
    uscc = web.enterprise()
    application_id = _apply_as_enterprise(web, uscc)
    ctx, page, console = web.staff_page()
    web.staff_sign_in(page, OFFICER)
    expect(page.get_by_test_id("staff-name")).to_have_text(OFFICER)
    row = page.locator(f'tr[data-application="{application_id}"]')
    expect(row).to_be_visible()
    screenshot(page, "bank-queue", DESKTOP)
    assert serious_axe_violations(web, page) == []

    row.get_by_role("link", name=re.compile("查看")).click()
    page.wait_for_url(f"{web.portal}/bank/applications/{application_id}")
    expect(page.get_by_role("heading", name="评价依据（申请时的快照）")).to_be_visible()
    assert serious_axe_violations(web, page) == []

    _confirm(page, "开始审核…", "确认开始审核")
    expect(page.get_by_test_id("status")).to_have_text("审核中")

    page.get_by_label("批准金额（元）").fill("300000")
    page.get_by_label("年利率（%）").fill("3.6")
    page.get_by_role("button", name="提交决定…").click()
    expect(page.get_by_role("heading", name=re.compile("请确认"))).to_contain_text("审批决定")
    expect(page.get_by_test_id("status")).to_have_text("审核中")  # nothing decided yet
    screenshot(page, "bank-decision", DESKTOP)
    assert serious_axe_violations(web, page) == []
    page.get_by_role("button", name="确认审批决定").click()
    expect(page.get_by_test_id("status")).to_have_text("已批准")

    _confirm(page, "放款…", "确认放款")
    expect(page.get_by_test_id("status")).to_have_text("已放款")
    expect(page.get_by_test_id("actor").filter(has_text=OFFICER)).to_have_count(3)
    assert console.errors == []
    ctx.close()

    # The enterprise sees the outcome; the credit service recorded the person.
    with web.api(web.platform.enterprise_token(uscc)) as api:
        app = api.get(f"/v1/credit/applications/{application_id}").json()
    assert app["status"] == "disbursed" and app["approved_amount"] == 300_000
    assert [h["actor"] for h in app["history"] if h["actor_kind"] == "bank"] == [OFFICER] * 3


def test_bank_pages_have_no_console_errors_and_no_serious_axe_violations(web: Web) -> None:
    ctx, page, console = web.staff_page()
    web.staff_sign_in(page, OFFICER)
    problems: dict[str, list[str]] = {}
    for path in (
        "/bank/",
        "/bank/products",
        "/bank/products/new",
        "/bank/approved",
        "/bank/webhooks",
        "/bank/?status=disbursed",
    ):
        response = page.goto(web.portal + path)
        assert response is not None and response.status == 200, path
        found = serious_axe_violations(web, page)
        if found:
            problems[path] = found
    page.goto(web.portal + "/bank/products")
    page.locator("#products a").first.click()
    expect(page.get_by_role("heading", name=re.compile("版本记录"))).to_be_visible()
    if found := serious_axe_violations(web, page):
        problems[page.url] = found
    assert problems == {}
    assert console.errors == []
    ctx.close()


def test_authorization_on_bank_pages(web: Web) -> None:
    uscc = web.enterprise()
    application_id = _apply_as_enterprise(web, uscc)
    url = f"{web.portal}/bank/applications/{application_id}"

    # Another bank's officer: not in the queue, not by its id.
    ctx, page, _ = web.staff_page()
    web.staff_sign_in(page, OTHER_OFFICER)
    expect(page.locator(f'tr[data-application="{application_id}"]')).to_have_count(0)
    response = page.goto(url)
    assert response is not None and response.status == 404
    ctx.close()

    # A viewer (the government's) is no bank: refused on pages and on changes.
    ctx, page, _ = web.staff_page()
    web.staff_sign_in(page, VIEWER)
    response = page.goto(url)
    assert response is not None and response.status == 403
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = page.request.post(
        f"{url}/decide",
        form={"csrf_token": csrf or "", "decision": "approve", "confirmed": "yes"},
        max_redirects=0,
    )
    assert refused.status == 403
    ctx.close()

    # The officer of the bank, without the CSRF token: refused, nothing changes.
    ctx, page, _ = web.staff_page()
    web.staff_sign_in(page, OFFICER)
    page.goto(url)
    no_token = page.request.post(f"{url}/review", form={"confirmed": "yes"}, max_redirects=0)
    assert no_token.status == 403
    with web.api(web.platform.bank_token(BANK)) as bank:
        assert bank.get(f"/v1/credit/applications/{application_id}").json()["status"] == (
            "submitted"
        )
    ctx.close()

    # An enterprise session: 403 on every staff page.
    ctx, page, _ = web.page()
    web.sign_in(page, uscc)
    for path in ("/bank/", "/bank/products", f"/bank/applications/{application_id}", "/gov/"):
        response = page.goto(web.portal + path)
        assert response is not None and response.status == 403, path
    ctx.close()
