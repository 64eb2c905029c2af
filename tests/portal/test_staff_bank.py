"""The bank officer's pages in one process against the real gateway and credit service: the
queue, an application with its evidence, review / decide / disburse each behind a
confirmation step and recorded under the officer's name; another bank's application is not
there; a viewer changes nothing; products drafted, published and withdrawn by a person."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx

from services.credit.evaluations.sync import sync_evaluations
from tests.gateway.conftest import BANK_VIEWER, ENTERPRISE_A, ICBC_OFFICER, STAFF
from tests.portal.staff import StaffPortal, staff_portal  # noqa: F401

HZUB_OFFICER = next(a for a in STAFF if a.org == "hzub-binjiang")


async def _apply(portal: StaffPortal, bank_id: str = "icbc-binjiang") -> dict[str, Any]:
    ent = await portal.gw.login(ENTERPRISE_A["uscc"])
    async with portal.gw.client(ent["access_token"]) as api:
        offers_url = f"/v1/credit/enterprises/{ENTERPRISE_A['uscc']}/offers"
        for _ in range(40):  # until credit has taken in the published evaluation
            await sync_evaluations(portal.gw.platform.fastapi["credit"])
            r = await api.get(offers_url)
            if r.status_code != 409:
                break
            await asyncio.sleep(0.25)
        assert r.status_code == 200, r.text
        offers = r.json()
        offer = next(o for o in offers["items"] if o["bank_id"] == bank_id)
        r = await api.post(
            "/v1/credit/applications",
            json={"product_id": offer["product_id"], "amount": offer["amount"]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        return dict(r.json())


async def _signed_in(portal: StaffPortal, browser: httpx.AsyncClient, subject: str) -> str:
    done = await portal.staff_login(browser, subject)
    assert done.status_code == 303, done.text
    return await portal.staff_csrf(browser, "/bank/")


async def test_officer_reviews_decides_and_disburses_with_confirmation(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    app = await _apply(staff_portal)
    url = f"/bank/applications/{app['id']}"
    async with staff_portal.browser() as browser:
        csrf = await _signed_in(staff_portal, browser, ICBC_OFFICER.subject)
        queue = await browser.get("/bank/")
        assert f'data-application="{app["id"]}"' in queue.text
        assert ENTERPRISE_A["name"] in queue.text
        detail = await browser.get(url)
        assert detail.status_code == 200
        assert "评价依据" in detail.text and app["evidence"]["run_id"] in detail.text

        # Each action first shows what it will do; only the confirmation changes anything.
        ask = await browser.post(f"{url}/review", data={"csrf_token": csrf})
        assert ask.status_code == 200 and "请确认" in ask.text and "已提交" in ask.text
        done = await browser.post(f"{url}/review", data={"csrf_token": csrf, "confirmed": "yes"})
        assert done.status_code == 303 and done.headers["location"] == f"{url}?notice=reviewed"

        decision = {"decision": "approve", "amount": "400000", "rate": "3.45", "term_months": "12"}
        bad = await browser.post(
            f"{url}/decide", data={"csrf_token": csrf, "decision": "approve", "amount": "1"}
        )
        assert bad.status_code == 422 and "批准须填写" in bad.text
        ask = await browser.post(f"{url}/decide", data={"csrf_token": csrf, **decision})
        assert ask.status_code == 200 and "请确认" in ask.text and "3.45%" in ask.text
        assert "审核中" in ask.text  # nothing decided yet
        done = await browser.post(
            f"{url}/decide", data={"csrf_token": csrf, **decision, "confirmed": "yes"}
        )
        assert done.status_code == 303, done.text

        ask = await browser.post(f"{url}/disburse", data={"csrf_token": csrf})
        assert ask.status_code == 200 and "40万元" in ask.text
        done = await browser.post(
            f"{url}/disburse", data={"csrf_token": csrf, "amount": "400000", "confirmed": "yes"}
        )
        assert done.status_code == 303, done.text
        page = await browser.get(done.headers["location"])
        assert "已放款" in page.text
    token = await staff_portal.gw.bank("icbc-binjiang")
    async with staff_portal.gw.client(token) as api:
        history = (await api.get(f"/v1/credit/applications/{app['id']}")).json()["history"]
    assert [(h["to_status"], h["actor"]) for h in history if h["actor_kind"] == "bank"] == [
        ("under_review", ICBC_OFFICER.name),
        ("approved", ICBC_OFFICER.name),
        ("disbursed", ICBC_OFFICER.name),
    ]


async def test_a_rejection_needs_a_reason_and_conflicts_are_shown(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    app = await _apply(staff_portal)
    url = f"/bank/applications/{app['id']}"
    async with staff_portal.browser() as browser:
        csrf = await _signed_in(staff_portal, browser, ICBC_OFFICER.subject)
        bad = await browser.post(f"{url}/decide", data={"csrf_token": csrf, "decision": "reject"})
        assert bad.status_code == 422 and "至少选择一项原因" in bad.text
        form = {"csrf_token": csrf, "decision": "reject", "reason_codes": "existing_exposure"}
        done = await browser.post(f"{url}/decide", data={**form, "confirmed": "yes"})
        assert done.status_code == 303
        # Deciding again (a second tab): the service refuses, the page says so.
        again = await browser.post(f"{url}/decide", data={**form, "confirmed": "yes"})
        assert again.status_code == 409 and "未通过" in again.text


async def test_another_bank_and_a_viewer(staff_portal: StaffPortal) -> None:  # noqa: F811
    app = await _apply(staff_portal)
    url = f"/bank/applications/{app['id']}"
    async with staff_portal.browser() as other:
        csrf = await _signed_in(staff_portal, other, HZUB_OFFICER.subject)
        assert app["id"] not in (await other.get("/bank/?status=submitted")).text
        assert (await other.get(url)).status_code == 404
        refused = await other.post(f"{url}/review", data={"csrf_token": csrf, "confirmed": "yes"})
        assert refused.status_code == 404
    async with staff_portal.browser() as viewer:
        csrf = await _signed_in(staff_portal, viewer, BANK_VIEWER.subject)
        page = await viewer.get(url)
        assert page.status_code == 200 and "只读权限" in page.text
        assert f'action="{url}/decide"' not in page.text
        for action in ("review", "decide", "disburse"):
            r = await viewer.post(
                f"{url}/{action}",
                data={"csrf_token": csrf, "confirmed": "yes", "decision": "approve"},
            )
            assert r.status_code == 403, action
        assert (await viewer.get("/bank/products/new")).status_code == 403
    async with staff_portal.browser() as officer:
        csrf = await _signed_in(staff_portal, officer, ICBC_OFFICER.subject)
        missing = await officer.post(f"{url}/review", data={"confirmed": "yes"})
        assert missing.status_code == 403 and "操作未执行" in missing.text
    token = await staff_portal.gw.bank("icbc-binjiang")
    async with staff_portal.gw.client(token) as api:
        assert (await api.get(f"/v1/credit/applications/{app['id']}")).json()["status"] == (
            "submitted"
        )


async def test_products_drafted_published_and_withdrawn_by_the_officer(
    staff_portal: StaffPortal,  # noqa: F811
) -> None:
    name = f"科创积分贷 {uuid.uuid4().hex[:6]}"
    form = {
        "name": name,
        "eligible_stages": ["growth", "expansion"],
        "base_amount": "300000",
        "band_4": "800000",
        "max_amount": "1000000",
        "rate_min": "3.2",
        "rate_max": "4.5",
        "term_months": "12",
        "guarantee": "pure_credit",
    }
    async with staff_portal.browser() as browser:
        csrf = await _signed_in(staff_portal, browser, ICBC_OFFICER.subject)
        bad = await browser.post(
            "/bank/products/new", data={**form, "csrf_token": csrf, "rate_max": "1"}
        )
        assert bad.status_code == 422 and "产品条件不符合规则" in bad.text
        made = await browser.post("/bank/products/new", data={**form, "csrf_token": csrf})
        assert made.status_code == 303, made.text
        url = made.headers["location"].split("?")[0]
        page = await browser.get(made.headers["location"])
        assert "草稿已保存" in page.text and "草稿" in page.text
        ask = await browser.post(f"{url}/publish", data={"csrf_token": csrf})
        assert ask.status_code == 200 and "请确认" in ask.text
        done = await browser.post(f"{url}/publish", data={"csrf_token": csrf, "confirmed": "yes"})
        assert done.status_code == 303
        page = await browser.get(url)
        assert re.search(rf"{ICBC_OFFICER.name} · \d{{4}}-", page.text)
        done = await browser.post(f"{url}/withdraw", data={"csrf_token": csrf, "confirmed": "yes"})
        assert done.status_code == 303
        listing = await browser.get("/bank/products")
        assert name in listing.text and f"{ICBC_OFFICER.name} 下架" in listing.text
        again = await browser.post(f"{url}/withdraw", data={"csrf_token": csrf, "confirmed": "yes"})
        assert again.status_code == 409


async def test_approved_amounts_and_webhook_log(staff_portal: StaffPortal) -> None:  # noqa: F811
    await _apply(staff_portal)
    async with staff_portal.browser() as browser:
        await _signed_in(staff_portal, browser, ICBC_OFFICER.subject)
        listing = await browser.get("/bank/approved")
        assert listing.status_code == 200 and ENTERPRISE_A["name"] in listing.text
        detail = await browser.get(f"/bank/approved/{ENTERPRISE_A['uscc']}")
        assert detail.status_code == 200 and "预授信合计" in detail.text
        assert (await browser.get("/bank/approved/not-a-uscc")).status_code == 422
        log = await browser.get("/bank/webhooks")
        assert log.status_code == 200 and "推送记录" in log.text
    async with staff_portal.browser() as other:
        await _signed_in(staff_portal, other, HZUB_OFFICER.subject)
        assert ENTERPRISE_A["name"] not in (await other.get("/bank/approved")).text
        assert (await other.get(f"/bank/approved/{ENTERPRISE_A['uscc']}")).status_code == 403
