"""Issue 12 end to end through the gateway, every component real: a run in public notice,
an enterprise's objection with evidence, the decision, the correcting run compared with the
noticed one (credit's and policy's what-ifs included), and its publication, which is when
credit and policy first hear of anything. Enterprise A can neither see nor object for B; a
bank sees no run in notice and reaches no notice or objection endpoint."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from services.credit.evaluations.sync import sync_evaluations as sync_credit
from services.policy.matching.sync import sync_evaluations as sync_policy
from tests.gateway.conftest import ENTERPRISE_A, ENTERPRISE_B, Gateway, gw, var_dir
from tests.gateway.helpers import publish_scores
from tests.scoring.notice_support import Clock, pdf_bytes

__all__ = ["gw", "var_dir"]  # the gateway's fixtures, used here as they are

A, B = ENTERPRISE_A["uscc"], ENTERPRISE_B["uscc"]


async def start_with_clock(gw: Gateway) -> Clock:
    """Scoring restarted with a clock the test moves; credit and policy with no polling."""
    clock = Clock()
    await gw.platform.stop("scoring")
    gw.platform.extra["scoring"] = {"clock": clock}
    await gw.platform.start("scoring")
    await gw.platform.start("credit", sync_interval=0, outbox_interval=0)
    await gw.platform.start("policy", sync_interval=0)
    return clock


async def sync(gw: Gateway) -> tuple[list[str], list[str]]:
    credit = await sync_credit(gw.platform.fastapi["credit"])
    policy = await sync_policy(gw.platform.fastapi["policy"])
    return credit.imported, policy.imported


def _objection_of_a(noticed: str) -> dict[str, Any]:
    return {
        "run_id": noticed,
        "uscc": A,
        "indicator": "invention_patents",
        "claimed_value": 25,
        "reason": "专利数据漏报",
    }


async def _banks_see_nothing_in_notice(bk: httpx.AsyncClient, noticed: str) -> None:
    # Banks: no run in notice, no notice or objection endpoint.
    for path in (
        f"/v1/scoring/enterprises/{A}/score?run_id={noticed}",
        f"/v1/scoring/evaluations/{noticed}",
        f"/v1/scoring/evaluations/{noticed}/comparison",
        "/v1/scoring/notices",
        "/v1/scoring/objections",
    ):
        r = await bk.get(path)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
    objection = _objection_of_a(noticed)
    assert (await bk.post("/v1/scoring/objections", json=objection)).status_code == 403


async def _a_objects_with_evidence(
    a: httpx.AsyncClient, b: httpx.AsyncClient, noticed: str, objection_body: dict[str, Any]
) -> Any:
    # Enterprise A: its proposed score with the values' sources; never B's.
    r = await a.get(f"/v1/scoring/enterprises/{A}/score", params={"run_id": noticed})
    assert r.status_code == 200, r.text
    assert r.json()["run_status"] == "in_notice"
    assert {i["source"]["kind"] for i in r.json()["indicators"] if i["source"]} == {"import"}
    r = await a.get(f"/v1/scoring/enterprises/{B}/score", params={"run_id": noticed})
    assert r.status_code == 403
    notices = (await a.get("/v1/scoring/notices")).json()["items"]
    assert [n["run_id"] for n in notices] == [noticed]
    assert notices[0]["accepting_objections"] is True
    for_b = {**objection_body, "uscc": B}
    assert (await a.post("/v1/scoring/objections", json=for_b)).status_code == 403
    r = await a.post("/v1/scoring/objections", json=objection_body)
    assert r.status_code == 201, r.text
    objection = r.json()
    # Audited as the person acting: the legal representative who logged in.
    assert objection["run_value"] == 0
    assert objection["created_by"] == ENTERPRISE_A["legal_rep"]
    r = await a.post(
        f"/v1/scoring/objections/{objection['id']}/evidence",
        files={"file": ("专利证书.pdf", pdf_bytes(), "application/pdf")},
    )
    assert r.status_code == 201, r.text
    evidence = r.json()
    r = await a.get(f"/v1/scoring/objections/{objection['id']}/evidence/{evidence['id']}")
    assert r.status_code == 200 and r.content == pdf_bytes()
    assert r.headers["content-disposition"].startswith("attachment;")
    assert (await b.get(f"/v1/scoring/objections/{objection['id']}")).status_code == 404
    r = await b.get(f"/v1/scoring/objections/{objection['id']}/evidence/{evidence['id']}")
    assert r.status_code == 404
    mine = (await a.get("/v1/scoring/objections")).json()["items"]
    assert [(o["id"], o["status"]) for o in mine] == [(objection["id"], "open")]
    return objection


async def _decided_rerun_and_compared(
    gw: Gateway, gov: httpx.AsyncClient, clock: Clock, ids: tuple[str, str], objection: Any
) -> str:
    published, noticed = ids
    # The government decides once the notice has ended; then re-runs and compares.
    r = await gov.post(f"/v1/scoring/evaluations/{noticed}/publish")
    assert r.status_code == 409 and r.json()["type"].endswith("/notice-running")
    clock.advance(days=8)
    r = await gov.post(f"/v1/scoring/evaluations/{noticed}/publish")
    assert r.status_code == 409 and r.json()["type"].endswith("/objections-open")
    r = await gov.post(
        f"/v1/scoring/objections/{objection['id']}/decision",
        json={"decision": "accepted", "note": "专利证书核实无误"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"] == "gov-portal"
    r = await gov.post(
        "/v1/scoring/evaluations",
        json={"period": 2025, "wait": True, "corrects_run_id": noticed},
    )
    assert r.status_code == 201, r.text
    fixed = r.json()["id"]
    assert r.json()["corrects_run_id"] == noticed
    r = await gov.get(f"/v1/scoring/evaluations/{fixed}/comparison", params={"against": noticed})
    assert r.status_code == 200, r.text
    comparison = r.json()
    assert A in [m["uscc"] for m in comparison["movers_up"]["items"]]
    assert comparison["credit"]["status"] == "ok", comparison["credit"]
    assert comparison["policy"]["status"] == "ok", comparison["policy"]
    assert comparison["credit"]["data"]["current_run_id"] == published
    assert comparison["credit"]["data"]["counts"]["enterprises"] == 42
    # The default baseline is the period's published run.
    r = await gov.get(f"/v1/scoring/evaluations/{fixed}/comparison")
    assert r.json()["basis"] == "published_same_period"
    assert r.json()["against"]["run_id"] == published
    # With credit down, its part says so and the comparison still answers.
    await gw.platform.stop("credit")
    r = await gov.get(f"/v1/scoring/evaluations/{fixed}/comparison", params={"against": noticed})
    assert r.status_code == 200, r.text
    assert r.json()["credit"]["status"] == "unavailable"
    assert r.json()["policy"]["status"] == "ok"
    await gw.platform.start("credit", sync_interval=0, outbox_interval=0)
    return fixed


async def _published_and_taken_in(
    gw: Gateway, clients: tuple[httpx.AsyncClient, ...], fixed: str, objection: Any
) -> None:
    gov, a, b = clients
    # Publication, and only now do credit and policy take the run in.
    r = await gov.post(f"/v1/scoring/evaluations/{fixed}/publish")
    assert r.status_code == 200, r.text
    assert await sync(gw) == ([fixed], [fixed])
    score = (await a.get(f"/v1/scoring/enterprises/{A}/score")).json()
    patents = next(i for i in score["indicators"] if i["code"] == "invention_patents")
    assert score["run_id"] == fixed and patents["value"] == 25
    assert patents["source"]["kind"] == "correction"
    assert patents["source"]["objection_id"] == objection["id"]
    offers = (await a.get(f"/v1/credit/enterprises/{A}/offers")).json()
    assert offers["score"]["run_id"] == fixed
    mine = (await a.get("/v1/scoring/objections")).json()["items"]
    assert mine[0]["status"] == "accepted" and mine[0]["decision_note"] == "专利证书核实无误"
    history = await a.get(
        f"/v1/scoring/enterprises/{A}/facts/2025/history",
        params={"indicator": "invention_patents"},
    )
    assert history.status_code == 200 and history.json()["changes"][0]["new_value"] == 25
    r = await b.get(
        f"/v1/scoring/enterprises/{A}/facts/2025/history",
        params={"indicator": "invention_patents"},
    )
    assert r.status_code == 403


async def test_notice_objection_correction_rerun_publish(gw: Gateway) -> None:
    clock = await start_with_clock(gw)
    await publish_scores(gw)
    (published,), _ = await sync(gw)
    government = await gw.government()
    bank = await gw.bank("icbc-binjiang")
    token_a = (await gw.login(A))["access_token"]
    token_b = (await gw.login(B))["access_token"]
    async with (
        gw.client(government) as gov,
        gw.client(bank) as bk,
        gw.client(token_a) as a,
        gw.client(token_b) as b,
    ):
        r = await gov.post("/v1/scoring/evaluations", json={"period": 2025, "wait": True})
        noticed = r.json()["id"]
        ends = (clock.now + timedelta(days=7)).isoformat()
        r = await gov.post(f"/v1/scoring/evaluations/{noticed}/notice", json={"ends_at": ends})
        assert r.status_code == 200, r.text
        # Nothing is published: credit and policy hear nothing.
        assert await sync(gw) == ([], [])
        await _banks_see_nothing_in_notice(bk, noticed)
        objection = await _a_objects_with_evidence(a, b, noticed, _objection_of_a(noticed))
        fixed = await _decided_rerun_and_compared(gw, gov, clock, (published, noticed), objection)
        await _published_and_taken_in(gw, (gov, a, b), fixed, objection)


async def test_banks_never_see_a_run_through_the_gateway(gw: Gateway) -> None:
    await publish_scores(gw)
    bank = await gw.bank("hzbank-binjiang")
    async with gw.client(bank) as bk:
        r = await bk.get(f"/v1/scoring/enterprises/{A}/score")
        assert r.status_code == 403
        r = await bk.post(
            "/v1/scoring/objections/00000000-0000-4000-8000-000000000000/decision",
            json={"decision": "accepted", "note": "x"},
        )
        assert r.status_code == 403
