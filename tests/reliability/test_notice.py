"""Public notice and objections (issue 12) on the platform as real processes: the scoring
service's own clock, service tokens from the gateway for its calls to credit and policy, and
every request through the gateway's public port.

It works on an earlier period (2023) than the published one, so what it publishes changes
nothing the other reliability tests read: credit and policy keep serving 2025."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from scripts.assembled import Assembled
from tests.reliability.conftest import PROBLEM, Principals, client

PERIOD = 2023
NOTICE_SECONDS = 6
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def import_period(gov: httpx.Client, assembled: Assembled, a: str, b: str) -> None:
    """Forty enterprises (A and B among them) with the facts of 2023."""
    people = [e for e in assembled.enterprises if e["uscc"] not in (a, b)][:38]
    names = {e["uscc"]: e["name"] for e in assembled.enterprises}
    rows = [
        f"{u},{names[u]},{PERIOD},{700 + 40 * k},{50 + 9 * k},{k % 6}"
        for k, u in enumerate([a, b, *(e["uscc"] for e in people)])
    ]
    content = "uscc,name,period,operating_revenue,rd_expense,invention_patents\n" + "\n".join(rows)
    r = gov.post(
        "/v1/scoring/imports", files={"file": ("facts-2023.csv", content.encode(), "text/csv")}
    )
    assert r.status_code == 201, r.text


def evaluate(gov: httpx.Client, **extra: Any) -> str:
    r = gov.post(
        "/v1/scoring/evaluations", json={"period": PERIOD, "wait": True, **extra}, timeout=120
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_notice_objection_correction_and_publication(
    assembled: Assembled, principals: Principals
) -> None:
    a, b = principals.uscc_a, principals.uscc_b
    with (
        client(assembled, principals.government) as gov,
        client(assembled, principals.bank_x) as bank,
        client(assembled, principals.enterprise_a) as ent_a,
        client(assembled, principals.enterprise_b) as ent_b,
    ):
        import_period(gov, assembled, a, b)
        noticed = evaluate(gov)
        ends = datetime.now(UTC) + timedelta(seconds=NOTICE_SECONDS)
        r = gov.post(
            f"/v1/scoring/evaluations/{noticed}/notice", json={"ends_at": ends.isoformat()}
        )
        assert r.status_code == 200, r.text
        assert r.json()["notice_ends_at"].endswith("+08:00")

        # A bank reaches neither the run nor any notice or objection endpoint.
        for path in (
            f"/v1/scoring/enterprises/{a}/score?run_id={noticed}",
            "/v1/scoring/notices",
            "/v1/scoring/objections",
        ):
            r = bank.get(path)
            assert r.status_code in (403, 404), (path, r.status_code)
            assert r.headers["content-type"].startswith(PROBLEM)

        # Enterprise A objects to its own value, with evidence; never for B.
        r = ent_a.get(f"/v1/scoring/enterprises/{a}/score", params={"run_id": noticed})
        assert r.status_code == 200, r.text
        assert r.json()["run_status"] == "in_notice"
        assert (
            ent_a.get(f"/v1/scoring/enterprises/{b}/score", params={"run_id": noticed}).status_code
            == 403
        )
        body = {
            "run_id": noticed,
            "uscc": a,
            "indicator": "invention_patents",
            "claimed_value": 40,
            "reason": "漏报了专利",
        }
        assert ent_a.post("/v1/scoring/objections", json={**body, "uscc": b}).status_code == 403
        r = ent_a.post("/v1/scoring/objections", json=body)
        assert r.status_code == 201, r.text
        objection = r.json()["id"]
        r = ent_a.post(
            f"/v1/scoring/objections/{objection}/evidence",
            files={"file": ("proof.pdf", PDF, "application/pdf")},
        )
        assert r.status_code == 201, r.text
        assert ent_b.get(f"/v1/scoring/objections/{objection}").status_code == 404

        # Once the notice has ended: decide, re-run, compare, publish.
        time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.5)
        r = gov.post(f"/v1/scoring/evaluations/{noticed}/publish")
        assert r.status_code == 409 and r.json()["type"].endswith("/objections-open"), r.text
        r = gov.post(
            f"/v1/scoring/objections/{objection}/decision",
            json={"decision": "accepted", "note": "核实无误"},
        )
        assert r.status_code == 200, r.text
        r = gov.post(f"/v1/scoring/evaluations/{noticed}/publish")
        assert r.status_code == 409 and r.json()["type"].endswith("/correction-required")
        fixed = evaluate(gov, corrects_run_id=noticed)
        r = gov.get(
            f"/v1/scoring/evaluations/{fixed}/comparison",
            params={"against": noticed},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        comparison = r.json()
        assert a in [m["uscc"] for m in comparison["movers_up"]["items"]]
        # Scoring called credit and policy with its own service token, from the gateway.
        assert comparison["credit"]["status"] == "ok", comparison["credit"]
        assert comparison["policy"]["status"] == "ok", comparison["policy"]
        r = gov.post(f"/v1/scoring/evaluations/{fixed}/publish")
        assert r.status_code == 200, r.text

        score = ent_a.get(f"/v1/scoring/enterprises/{a}/score", params={"period": PERIOD}).json()
        patents = next(i for i in score["indicators"] if i["code"] == "invention_patents")
        assert score["run_id"] == fixed and patents["value"] == 40
        assert patents["source"]["kind"] == "correction"
        # The newer period is still what everyone is served.
        latest = ent_a.get(f"/v1/scoring/enterprises/{a}/score").json()
        assert latest["period"] == 2025
