"""Model governance through the gateway, on the platform as real processes (issue 13): banks
report loan outcomes to credit, only on their own loans; an enterprise reads its own; the
government reads aggregates; scoring validates the model on the outcomes it reads from credit
with its own service token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from scripts.assembled import Assembled
from tests.reliability.conftest import BANK_X, BANK_Y, PROBLEM, Principals, client

PRODUCT_OF = {
    BANK_X: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01",
    BANK_Y: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f03",
}
# Away from the enterprises the other reliability tests use.
FIRST = 60


@dataclass
class Loan:
    id: str
    uscc: str
    token: str
    bank: str
    period: int


def _loan(assembled: Assembled, uscc: str, bank: str) -> Loan:
    token = assembled.enterprise_token(uscc)
    with client(assembled, token) as ent:
        r = ent.post(
            "/v1/credit/applications",
            json={"product_id": PRODUCT_OF[bank], "amount": 120_000},
            headers={"Idempotency-Key": f"governance-{uuid.uuid4()}"},
        )
        assert r.status_code == 201, r.text
        app = r.json()
    with client(assembled, assembled.bank_token(bank)) as b:
        r = b.post(
            f"/v1/credit/applications/{app['id']}/decision",
            json={"decision": "approve", "amount": 120_000, "rate": 3.4, "term_months": 12},
        )
        assert r.status_code == 200, r.text
        r = b.post(f"/v1/credit/applications/{app['id']}/disburse")
        assert r.status_code == 200, r.text
    return Loan(app["id"], uscc, token, bank, app["evidence"]["period"])


@pytest.fixture(scope="module")
def loans(assembled: Assembled) -> tuple[Loan, Loan]:
    a, b = assembled.scored_enterprises(FIRST + 2)[FIRST:]
    return _loan(assembled, a, BANK_X), _loan(assembled, b, BANK_Y)


def _report(c: httpx.Client, loan: Loan, state: str, month: int, left: int) -> httpx.Response:
    return c.post(
        f"/v1/credit/loans/{loan.id}/outcomes",
        json={"state": state, "as_of": f"{loan.period + 1}-{month:02d}-15", "outstanding": left},
        headers={"Idempotency-Key": f"{loan.id}-{state}-{month}"},
    )


def test_only_the_lending_bank_reports(
    assembled: Assembled, principals: Principals, loans: tuple[Loan, Loan]
) -> None:
    x_loan, y_loan = loans
    with client(assembled, principals.bank_x) as x, client(assembled, principals.bank_y) as y:
        r = _report(x, x_loan, "current", 2, 120_000)
        assert r.status_code == 201, r.text
        replay = _report(x, x_loan, "current", 2, 120_000)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        # Bank Y on bank X's loan: no such loan, for it.
        stolen = _report(y, x_loan, "default", 5, 120_000)
        assert stolen.status_code == 404 and stolen.headers["content-type"].startswith(PROBLEM)
        assert y.get(f"/v1/credit/loans/{x_loan.id}/outcomes").status_code == 404
        assert _report(x, y_loan, "default", 5, 1).status_code == 404
        assert _report(y, y_loan, "overdue_90_plus", 6, 100_000).status_code == 201
        bad = x.post(
            f"/v1/credit/loans/{x_loan.id}/outcomes",
            json={"state": "paid?", "as_of": "not a date", "outstanding": -5},
        )
        assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
        history = x.get(f"/v1/credit/loans/{x_loan.id}/outcomes").json()
    assert [h["state"] for h in history["history"]] == ["current"]


def test_who_reads_what(
    assembled: Assembled, principals: Principals, loans: tuple[Loan, Loan]
) -> None:
    x_loan, y_loan = loans
    with client(assembled, x_loan.token) as ent:
        own = ent.get(f"/v1/credit/loans/{x_loan.id}/outcomes")
        assert own.status_code == 200, own.text
        assert ent.get(f"/v1/credit/loans/{y_loan.id}/outcomes").status_code == 404
        assert _report(ent, x_loan, "repaid", 9, 0).status_code == 403
        assert ent.get("/v1/credit/outcomes/summary").status_code == 403
    with client(assembled, principals.government) as gov:
        assert gov.get(f"/v1/credit/loans/{x_loan.id}/outcomes").status_code == 403
        assert gov.get("/v1/credit/outcomes/performance?period=2025").status_code == 403
        total = gov.get("/v1/credit/outcomes/summary", params={"period": x_loan.period})
        assert total.status_code == 200, total.text
    banks = {b["bank_id"] for b in total.json()["by_bank"]}
    assert {BANK_X, BANK_Y} <= banks
    with client(assembled, principals.bank_x) as x:
        mine = x.get("/v1/credit/outcomes/summary", params={"period": x_loan.period}).json()
        listed = x.get("/v1/credit/outcomes").json()["items"]
    assert mine["by_bank"] is None
    assert {i["bank_id"] for i in listed} == {BANK_X}


def test_validation_through_the_gateway(
    assembled: Assembled, principals: Principals, loans: tuple[Loan, Loan]
) -> None:
    period = loans[0].period
    # The model of the period's published run: other tests on this platform may have
    # published the period again under another model version.
    with client(assembled, principals.government) as gov:
        runs = gov.get(
            "/v1/scoring/evaluations", params={"period": period, "status": "published"}
        ).json()["items"]
    assert runs, period
    version = runs[0]["model_version"]
    for token in (principals.government, principals.bank_x):
        with client(assembled, token, timeout=60) as c:
            r = c.get(f"/v1/scoring/models/{version}/validation", params={"period": period})
            assert r.status_code == 200, r.text
            v = r.json()
            assert {"auc", "ks", "gini", "psi", "tiers"} <= set(v)
            assert v["psi"] is not None and v["reference_run_id"]
            assert v["outcomes"]["enterprises"] >= 1
    with client(assembled, principals.enterprise_a) as ent:
        r = ent.get("/v1/scoring/models/1.0/validation", params={"period": period})
        assert r.status_code == 403 and r.headers["content-type"].startswith(PROBLEM)
