"""The model-governance pages (`/gov/models`, `/bank/models`) against the real gateway and
services: loans reported through the gateway, the validation drawn as charts (ROC, KS, bad rate
by tier, PSI, migration), who may see the page, no inline script."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from devtools.idp.staff import StaffAccount
from portal.gateway import tokens_from
from portal.sessions import Principal
from services.credit.evaluations.sync import sync_evaluations
from tests.gateway.conftest import (
    ENTERPRISE_A,
    ENTERPRISE_B,
    ENTERPRISE_C,
    GOV_VIEWER,
    ICBC_OFFICER,
)
from tests.portal.conftest import Portal

PERIOD = 2025


async def _browser(portal: Portal, account: StaffAccount, kind: str) -> Any:
    body = await portal.gw.staff(account)
    store = portal.gw.platform.fastapi["portal"].state.sessions
    principal = Principal(
        kind=kind,
        display_name=account.name,
        role=account.role,
        actor=account.name,
        bank_id=account.org if kind == "bank" else None,
    )
    session_id, _ = await store.create(principal, tokens_from(body))
    browser = portal.browser()
    browser.cookies.set("portal_session", session_id)
    return browser


async def _loan(portal: Portal, uscc: str, state: str) -> None:
    """The enterprise borrows from its first offer; the bank reports the loan's state."""
    me = (await portal.gw.login(uscc))["access_token"]
    async with portal.gw.client(me) as ent:
        for _ in range(40):  # until credit has taken in the published evaluation
            # (the background feed loop may hold the sync lock when the test asks)
            await sync_evaluations(portal.gw.platform.fastapi["credit"])
            r = await ent.get(f"/v1/credit/enterprises/{uscc}/offers")
            if r.status_code != 409:
                break
            await asyncio.sleep(0.25)
        assert r.status_code == 200, r.text
        offers = r.json()["items"]
        assert offers, uscc
        r = await ent.post(
            "/v1/credit/applications",
            json={"product_id": offers[0]["product_id"], "amount": 100_000},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        app = r.json()
    bank = await portal.gw.bank(app["bank_id"])
    async with portal.gw.client(bank) as b:
        base = f"/v1/credit/applications/{app['id']}"
        r = await b.post(
            f"{base}/decision",
            json={"decision": "approve", "amount": 100_000, "rate": 3.5, "term_months": 12},
        )
        assert r.status_code == 200, r.text
        assert (await b.post(f"{base}/disburse")).status_code == 200
        r = await b.post(
            f"/v1/credit/loans/{app['id']}/outcomes",
            json={
                "state": state,
                "as_of": f"{PERIOD + 1}-06-30",
                "outstanding": 0 if state == "repaid" else 90_000,
            },
        )
        assert r.status_code == 201, r.text


async def test_pages_draw_the_validation_for_government_and_banks(portal: Portal) -> None:
    await sync_evaluations(portal.gw.platform.fastapi["credit"])
    for uscc, state in (
        (ENTERPRISE_A["uscc"], "repaid"),
        (ENTERPRISE_B["uscc"], "default"),
        (ENTERPRISE_C["uscc"], "current"),
    ):
        await _loan(portal, uscc, state)
    async with await _browser(portal, GOV_VIEWER, "government") as gov:
        r = await gov.get(f"/gov/models?period={PERIOD}")
        assert r.status_code == 200, r.text[:500]
        page = r.text
    for name in ("roc", "ks", "tiers", "psi"):
        assert f'data-chart="{name}"' in page, name
    assert 'data-testid="auc"' in page and 'data-testid="tiers"' in page
    assert "<script>" not in page  # the options are application/json blocks only (CSP)
    assert "js/charts.js" in page
    assert 'data-testid="synthetic"' not in page  # these outcomes are not synthetic
    async with await _browser(portal, ICBC_OFFICER, "bank") as bank:
        r = await bank.get(f"/bank/models?period={PERIOD}")
        assert r.status_code == 200, r.text[:500]
        assert 'data-chart="roc"' in r.text and 'href="/bank/models" aria-current="page"' in r.text
        assert "vendor/echarts.min.js" in r.text
        assert (await bank.get("/gov/models")).status_code == 403
        assert (await bank.get("/bank/models?period=1999")).status_code == 422


async def test_a_period_without_scores_says_so_and_enterprises_are_refused(portal: Portal) -> None:
    async with await _browser(portal, GOV_VIEWER, "government") as gov:
        r = await gov.get("/gov/models?period=2019")
        assert r.status_code == 200 and 'data-testid="problem"' in r.text
    async with portal.browser() as browser:
        await portal.login(browser)
        assert (await browser.get("/gov/models")).status_code == 403
        assert (await browser.get("/bank/models")).status_code == 403
