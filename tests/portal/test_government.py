"""The government console and the enterprise's notice pages, in one process against the real
gateway and services: every page renders, who may see and change what, CSRF, the CSV export
neutralised, the operator's journey (import, evaluate, compare, publish; draft, try and publish
a policy; notice, objection, decision).

Staff sessions are made the way the portal's staff sign-in makes them: real gateway tokens from
the OpenID Connect flow (tests/staff_login.py), stored in the portal's session table.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import date, timedelta

import httpx
import pytest

from devtools.idp.staff import StaffAccount
from portal.gateway import tokens_from
from portal.sessions import Principal
from shared.csvsafe import BOM
from tests.gateway.conftest import ENTERPRISE_A, GOV_OPERATOR, GOV_VIEWER
from tests.gateway.helpers import HEADER, code
from tests.portal.conftest import Portal

HOSTILE = '=HYPERLINK("http://evil.example","点此")'
PERIOD = 2026
READ_PAGES = (
    "/gov/",
    "/gov/rankings?stage=growth",
    "/gov/champions",
    "/gov/pools",
    "/gov/imports",
    "/gov/evaluations",
    "/gov/policies",
    "/gov/objections",
    f"/gov/enterprises/{ENTERPRISE_A['uscc']}",
)


async def staff_browser(portal: Portal, account: StaffAccount) -> tuple[httpx.AsyncClient, str]:
    """A browser signed in to the portal as the staff account; returns it and its CSRF token."""
    body = await portal.gw.staff(account)
    store = portal.gw.platform.fastapi["portal"].state.sessions
    principal = Principal(
        kind="government", display_name=account.name, role=account.role, actor=account.name
    )
    session_id, session = await store.create(principal, tokens_from(body))
    browser = portal.browser()
    browser.cookies.set("portal_session", session_id)
    return browser, session.csrf_token


def facts_file(period: int = PERIOD, hostile: str = HOSTILE) -> bytes:
    """The demo cohort for another period, one enterprise named with formula text."""
    rows = [
        f"{ENTERPRISE_A['uscc']},{ENTERPRISE_A['name']},{period},1500,200,13,3,0,hnte",
        f'{code(1)},"{hostile.replace(chr(34), chr(34) * 2)}",{period},1200,170,12,2,0,',
    ]
    rows += [
        f"{code(i)},杭州测试{i}号科技有限公司,{period},{950 + 37 * i},{70 + 9 * i},"
        f"{5 + i % 20},{i % 7},0,"
        for i in range(2, 40)
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def confirm_form(page: str) -> dict[str, str]:
    """The hidden fields of the confirmation page's form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


async def test_every_page_renders_for_a_viewer_without_a_way_to_change(portal: Portal) -> None:
    browser, _ = await staff_browser(portal, GOV_VIEWER)
    async with browser:
        for path in READ_PAGES:
            r = await browser.get(path)
            assert r.status_code == 200, (path, r.text[:500])
            assert "林晓雯" in r.text and "只读" in r.text
            assert "<script>" not in r.text  # no inline script (CSP)
            assert 'method="post" action="/gov/' not in r.text, path  # no change offered
        overview = (await browser.get("/gov/")).text
        for name in ("funnel", "stages", "distribution", "tiers", "coverage"):
            assert f'data-chart="{name}"' in overview
        assert 'data-testid="funnel-scored"' in overview
        pools = (await browser.get("/gov/pools")).text
        first = re.search(r'href="/gov/pools/([a-z0-9_-]+)"', pools)
        assert first
        for which in ("members", "reserve"):
            r = await browser.get(f"/gov/pools/{first.group(1)}?list={which}")
            assert r.status_code == 200 and 'data-testid="members"' in r.text
        detail = (await browser.get(f"/gov/enterprises/{ENTERPRISE_A['uscc']}")).text
        assert 'data-chart="radar"' in detail and ENTERPRISE_A["name"] in detail
        assert (await browser.get("/gov/enterprises/not-a-uscc")).status_code == 422


async def test_enterprise_session_is_refused_everywhere_under_gov(portal: Portal) -> None:
    async with portal.browser() as browser:
        csrf = await portal.login(browser)
        for path in (*READ_PAGES, "/gov/rankings.csv", "/gov/policies/new"):
            r = await browser.get(path)
            assert r.status_code == 403, path
        r = await browser.post(
            "/gov/evaluations",
            data={"csrf_token": csrf, "period": "2025", "model_version": "1.0", "confirm": "yes"},
        )
        assert r.status_code == 403


async def test_viewer_is_refused_by_the_portal_and_by_the_service(portal: Portal) -> None:
    browser, csrf = await staff_browser(portal, GOV_VIEWER)
    async with browser:
        runs = (await browser.get("/gov/evaluations")).text
        run_id = re.search(r'href="/gov/evaluations/([0-9a-f-]{36})"', runs)
        assert run_id
        attempts: list[tuple[str, dict[str, str]]] = [
            ("/gov/evaluations", {"period": "2025", "model_version": "1.0"}),
            (f"/gov/evaluations/{run_id.group(1)}/publish", {}),
            ("/gov/policies", {"code": "x1", "title_zh": "x"}),
        ]
        for path, form in attempts:
            r = await browser.post(path, data={"csrf_token": csrf, "confirm": "yes", **form})
            assert r.status_code == 403, path
        r = await browser.post(
            "/gov/imports",
            data={"csrf_token": csrf, "confirm": "yes"},
            files={"file": ("f.csv", facts_file(), "text/csv")},
        )
        assert r.status_code == 403
    # The platform refuses the viewer's own gateway token just the same (the gateway holds a
    # viewer to read scopes; each service refuses a read-only token's changes on its own,
    # tests/shared/test_staff_roles.py).
    body = await portal.gw.staff(GOV_VIEWER)
    async with portal.gw.client(body["access_token"]) as api:
        r = await api.post(f"/v1/scoring/evaluations/{run_id.group(1)}/publish")
        assert r.status_code == 403
        assert r.json()["type"].rsplit("/", 1)[1] in ("insufficient-scope", "read-only-role")


async def test_a_change_without_the_csrf_token_is_refused(portal: Portal) -> None:
    browser, _ = await staff_browser(portal, GOV_OPERATOR)
    async with browser:
        for path, form in (
            ("/gov/evaluations", {"period": "2025", "model_version": "1.0", "confirm": "yes"}),
            ("/gov/policies/00000000-0000-0000-0000-000000000000/publish", {"confirm": "yes"}),
        ):
            r = await browser.post(path, data=form)
            assert r.status_code == 403 and "页面已过期" in r.text, path
            r = await browser.post(path, data={**form, "csrf_token": "forged"})
            assert r.status_code == 403, path


async def test_a_malformed_file_shows_its_error_table(portal: Portal) -> None:
    browser, csrf = await staff_browser(portal, GOV_OPERATOR)
    bad = (
        HEADER + "\n"
        f"{ENTERPRISE_A['uscc']},{HOSTILE.replace(',', ' ')},{PERIOD},-5,abc,12,1,0,\n"
        f"123,短码,{PERIOD},100,10,12,1,0,\n"
    ).encode()
    async with browser:
        form = {"csrf_token": csrf, "period": str(PERIOD)}
        unconfirmed = await browser.post(
            "/gov/imports", data=form, files={"file": ("bad.csv", bad, "text/csv")}
        )
        assert unconfirmed.status_code == 422 and "请勾选确认" in unconfirmed.text
        r = await browser.post(
            "/gov/imports",
            data={**form, "confirm": "yes"},
            files={"file": ("bad.csv", bad, "text/csv")},
        )
        assert r.status_code == 422
        assert 'data-testid="import-errors"' in r.text and "文件未导入" in r.text
        table = r.text.split('data-testid="import-errors"')[1].split("</table>")[0]
        assert table.count("<tr>") >= 3  # header + at least the two bad rows' problems
        assert "operating_revenue" in table and "uscc" in table
        link = re.search(r'href="(/gov/imports/[0-9a-f-]{36}/errors\.csv)"', r.text)
        assert link
        errors_csv = await browser.get(link.group(1))
        assert errors_csv.status_code == 200
        assert errors_csv.headers["content-type"].startswith("text/csv")
        assert errors_csv.headers["content-disposition"].startswith("attachment")
        for row in csv.reader(io.StringIO(errors_csv.text.removeprefix(BOM))):
            assert not any(cell[:1] in "=+-@\t\r" and cell[:1] for cell in row), row
        # The rejection is in the history, with the person who tried.
        history = (await browser.get("/gov/imports")).text
        assert "bad.csv" in history and "已拒绝" in history and "陈思远" in history


async def _run_until_done(browser: httpx.AsyncClient, run_path: str) -> str:
    for _ in range(120):
        page = (await browser.get(run_path)).text
        if "评价中" not in page.split('data-testid="run-status"')[1][:200]:
            return page
        await asyncio.sleep(0.25)
    raise AssertionError("the evaluation did not finish")


async def _confirmed(
    browser: httpx.AsyncClient, path: str, form: dict[str, str], csrf: str
) -> httpx.Response:
    """The two steps of a change: the confirmation page, then its button."""
    first = await browser.post(path, data={"csrf_token": csrf, **form})
    assert first.status_code == 200 and "请确认" in first.text, first.text[:500]
    fields = confirm_form(first.text)
    assert fields.pop("csrf_token") == csrf and fields.pop("confirm") == "yes"
    return await browser.post(path, data={"csrf_token": csrf, "confirm": "yes", **fields})


async def test_operator_imports_evaluates_compares_publishes_and_exports(portal: Portal) -> None:
    browser, csrf = await staff_browser(portal, GOV_OPERATOR)
    async with browser:
        r = await browser.post(
            "/gov/imports",
            data={"csrf_token": csrf, "confirm": "yes"},
            files={"file": ("facts-2026.csv", facts_file(), "text/csv")},
        )
        assert r.status_code == 303, r.text
        record = await browser.get(r.headers["location"])
        assert "成功" in record.text and "陈思远" in record.text

        r = await _confirmed(
            browser, "/gov/evaluations", {"period": str(PERIOD), "model_version": "1.0"}, csrf
        )
        assert r.status_code == 303
        run_path = r.headers["location"].split("?")[0]
        page = await _run_until_done(browser, run_path)
        assert "已完成" in page and 'data-testid="tier-compare"' in page
        assert "2025年度" in page  # compared with the previous period's published run

        r = await _confirmed(browser, f"{run_path}/publish", {}, csrf)
        assert r.status_code == 303 and r.headers["location"].endswith("notice=published")
        page = (await browser.get(run_path)).text
        assert "已发布" in page and "陈思远" in page

        overview = (await browser.get("/gov/")).text
        assert f"{PERIOD}年度" in overview and "较2025年度" in overview

        found = (await browser.get("/gov/rankings", params={"stage": "growth", "q": "号科技"})).text
        assert 'data-testid="rankings"' in found
        stage_of_hostile = None
        for stage in ("seed", "seedling", "growth", "expansion", "mature"):
            r = await browser.get("/gov/rankings", params={"stage": stage, "q": code(1)})
            if f"<code>{code(1)}</code>" in r.text:
                stage_of_hostile = stage
                assert "=HYPERLINK" in r.text  # escaped HTML text, shown as it was sent
        assert stage_of_hostile is not None
        r = await browser.get("/gov/rankings.csv", params={"stage": stage_of_hostile})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert r.text.startswith(BOM)
        rows = list(csv.reader(io.StringIO(r.text.removeprefix(BOM))))
        assert rows[0][:3] == ["排名", "统一社会信用代码", "企业名称"]
        names = {row[1]: row[2] for row in rows[1:]}
        assert names[code(1)] == "'" + HOSTILE  # shown as text, the value itself kept
    # What was stored is what was sent.
    token = await portal.gw.government()
    async with portal.gw.client(token) as api:
        stored = (await api.get(f"/v1/scoring/enterprises/{code(1)}")).json()
        assert stored["name"] == HOSTILE


async def test_operator_drafts_tries_and_publishes_a_policy(portal: Portal) -> None:
    browser, csrf = await staff_browser(portal, GOV_OPERATOR)
    async with browser:
        form = (await browser.get("/gov/policies/new")).text
        assert 'name="criteria"' in form
        draft = {
            "csrf_token": csrf,
            "code": "portal_test_policy",
            "title_zh": "门户测试政策",
            "department_zh": "科技局",
            "summary_zh": "测试用",
            "valid_from": date.today().isoformat(),
            "pools": "",
            "criteria": json.dumps(
                {
                    "id": "portal_test.score",
                    "fact": "score",
                    "op": ">=",
                    "threshold": 10,
                    "label_zh": "创新积分不低于10分",
                    "clause": "第一条",
                },
                ensure_ascii=False,
            ),
        }
        bad = await browser.post("/gov/policies", data={**draft, "criteria": "{not json"})
        assert bad.status_code == 422 and "JSON" in bad.text
        r = await browser.post("/gov/policies", data=draft)
        assert r.status_code == 303, r.text
        policy_path = r.headers["location"].split("?")[0]
        # The policy service learns of the published evaluation from scoring's feed, in the
        # background: until then a what-if is refused (409), and the page says so.
        for _ in range(80):
            tried = await browser.post(f"{policy_path}/what-if", data={"csrf_token": csrf})
            if 'data-chart="whatif"' in tried.text:
                break
            await asyncio.sleep(0.25)
        error = re.search(r'<p class="error" role="alert">([^<]*)</p>', tried.text)
        assert tried.status_code == 200 and 'data-chart="whatif"' in tried.text, error
        r = await _confirmed(browser, f"{policy_path}/publish", {}, csrf)
        assert r.status_code == 303
        page = (await browser.get(policy_path)).text
        assert "已发布" in page and "陈思远" in page  # who published it
        listing = (await browser.get("/gov/policies")).text
        assert "门户测试政策" in listing


PNG_EVIDENCE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def _a_run_in_notice(portal: Portal) -> str:
    """Import, evaluate and put the run in notice, as the operator does; the run's page."""
    gov, csrf = await staff_browser(portal, GOV_OPERATOR)
    async with gov:
        r = await gov.post(
            "/gov/imports",
            data={"csrf_token": csrf, "confirm": "yes"},
            files={"file": ("facts-2026.csv", facts_file(hostile="杭州丁有限公司"), "text/csv")},
        )
        assert r.status_code == 303
        r = await _confirmed(
            gov, "/gov/evaluations", {"period": str(PERIOD), "model_version": "1.0"}, csrf
        )
        run_path = r.headers["location"].split("?")[0]
        await _run_until_done(gov, run_path)
        ends = (date.today() + timedelta(days=5)).isoformat()
        r = await _confirmed(gov, f"{run_path}/notice", {"ends_on": ends}, csrf)
        assert r.status_code == 303
        assert "公示中" in (await gov.get(run_path)).text
        # Publishing during the notice is refused, with the reason in words.
        r = await _confirmed(gov, f"{run_path}/publish", {}, csrf)
        assert r.status_code == 303 and "error=notice-running" in r.headers["location"]
        assert "公示期尚未结束" in (await gov.get(r.headers["location"])).text
    return run_path


async def _the_enterprise_objects(portal: Portal, run_path: str) -> tuple[str, str]:
    """The legal person objects with evidence: the objection's page and id."""
    async with portal.browser() as ent:
        ent_csrf = await portal.login(ent)
        home = (await ent.get("/e/")).text
        assert 'href="/e/notice"' in home
        page = await ent.get("/e/notice")
        assert page.status_code == 200 and 'data-testid="proposed-total"' in page.text
        run_id = run_path.rsplit("/", 1)[1]
        form = await ent.get(f"/e/notice/{run_id}/object", params={"indicator": "rd_expense"})
        assert form.status_code == 200 and 'name="claimed_value"' in form.text
        objection = {"indicator": "rd_expense", "claimed_value": "260", "reason": "审计报告为准"}
        r = await ent.post(f"/e/notice/{run_id}/object", data={"csrf_token": ent_csrf, **objection})
        assert r.status_code == 422 and "请勾选" in r.text  # the confirmation is required
        r = await ent.post(
            f"/e/notice/{run_id}/object",
            data={"csrf_token": ent_csrf, "confirm": "yes", **objection},
            files={"file": ("审计报告.png", PNG_EVIDENCE, "image/png")},
        )
        assert r.status_code == 303, r.text
        mine = await ent.get(r.headers["location"])
        assert "处理中" in mine.text and "审计报告.png" in mine.text
        objection_path = r.headers["location"].split("?")[0]
        objection_id = objection_path.rsplit("/", 1)[1]
    return objection_path, objection_id


async def _the_government_decides(portal: Portal, objection_id: str) -> None:
    gov, csrf = await staff_browser(portal, GOV_OPERATOR)
    async with gov:
        listing = (await gov.get("/gov/objections")).text
        assert objection_id in listing
        detail = (await gov.get(f"/gov/objections/{objection_id}")).text
        assert "审计报告为准" in detail
        evidence = re.search(r'href="(/gov/objections/[^"]+/evidence/[0-9a-f-]{36})"', detail)
        assert evidence
        file = await gov.get(evidence.group(1))
        assert file.status_code == 200 and file.content == PNG_EVIDENCE
        assert file.headers["content-disposition"].startswith("attachment")
        empty = await gov.post(
            f"/gov/objections/{objection_id}/decision",
            data={"csrf_token": csrf, "decision": "accepted", "note": " "},
        )
        assert empty.status_code == 422 and "处理意见" in empty.text
        r = await _confirmed(
            gov,
            f"/gov/objections/{objection_id}/decision",
            {"decision": "accepted", "note": "材料属实", "corrected_value": ""},
            csrf,
        )
        assert r.status_code == 303, r.text
        assert "已采纳" in (await gov.get(f"/gov/objections/{objection_id}")).text


async def test_notice_objection_and_decision(portal: Portal) -> None:
    run_path = await _a_run_in_notice(portal)
    objection_path, objection_id = await _the_enterprise_objects(portal, run_path)
    await _the_government_decides(portal, objection_id)
    async with portal.browser() as ent:
        await portal.login(ent)
        mine = await ent.get(objection_path)
        assert "已采纳" in mine.text and "材料属实" in mine.text


@pytest.mark.parametrize("path", ["/e/notice"])
async def test_staff_session_is_refused_on_the_enterprise_notice(portal: Portal, path: str) -> None:
    browser, _ = await staff_browser(portal, GOV_VIEWER)
    async with browser:
        assert (await browser.get(path)).status_code == 403
