"""How long a consent lasts (issue 10 item 6), on the platform as real processes: a consent
given by applying ends with the application (withdrawn, rejected) or its loan (closed); one
given on its own lasts until withdrawn. A bank reads an enterprise's approved amounts and
current score only while a consent to it is in force; the enterprise sees why it ended."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from scripts.assembled import Assembled
from tests.reliability.conftest import BANK_X, BANK_Y, PROBLEM, client

PRODUCT_OF = {
    BANK_X: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f01",
    BANK_Y: "6f1c3a52-6a43-5a0e-9a4e-1c2b3d4e5f03",
}
# Far from the enterprises the other reliability tests use (the first twenty).
FIRST = 40


@dataclass
class Applicant:
    uscc: str
    token: str


@pytest.fixture(scope="module")
def applicants(assembled: Assembled) -> list[Applicant]:
    usccs = assembled.scored_enterprises(FIRST + 3)[FIRST:]
    assert len(usccs) == 3, "the reliability population has too few scored enterprises"
    people = [Applicant(u, assembled.enterprise_token(u)) for u in usccs]
    for p in people:
        with client(assembled, p.token) as c:
            r = c.get("/v1/credit/consents", params={"include_ended": True})
            assert r.status_code == 200, r.text
            assert r.json()["items"] == [], "another test already used this enterprise"
    return people


@pytest.fixture(scope="module")
def banks(assembled: Assembled) -> Iterator[dict[str, httpx.Client]]:
    clients = {b: client(assembled, assembled.bank_token(b)) for b in (BANK_X, BANK_Y)}
    yield clients
    for c in clients.values():
        c.close()


def _bank_reads(bank: httpx.Client, uscc: str) -> int:
    r = bank.get(f"/v1/credit/enterprises/{uscc}/approved-amounts")
    if r.status_code == 200:
        assert r.json()["score"]["total"] is not None
    else:
        assert r.headers["content-type"].startswith(PROBLEM), r.text
        assert r.json()["type"].endswith("/no-consent"), r.json()
    return r.status_code


def _apply(c: httpx.Client, bank: str) -> str:
    r = c.post(
        "/v1/credit/applications",
        json={"product_id": PRODUCT_OF[bank], "amount": 100_000},
        headers={"Idempotency-Key": f"consent-{uuid.uuid4()}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _consents(c: httpx.Client, *, ended: bool = False) -> list[dict[str, Any]]:
    r = c.get("/v1/credit/consents", params={"include_ended": ended})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _act(bank: httpx.Client, application: str, verb: str, body: Any = None) -> None:
    r = bank.post(f"/v1/credit/applications/{application}/{verb}", json=body)
    assert r.status_code == 200, r.text


def test_withdrawing_the_application_ends_the_banks_access(
    assembled: Assembled, applicants: list[Applicant], banks: dict[str, httpx.Client]
) -> None:
    d = applicants[0]
    y = banks[BANK_Y]
    assert _bank_reads(y, d.uscc) == 403
    with client(assembled, d.token) as c:
        application = _apply(c, BANK_Y)
        assert _bank_reads(y, d.uscc) == 200
        [consent] = _consents(c)
        assert (consent["basis"], consent["application_id"]) == ("application", application)
        assert consent["bank_id"] == BANK_Y and consent["status"] == "in_force"
        assert "杭州银行" in consent["summary_zh"]

        r = c.post(f"/v1/credit/applications/{application}/withdraw")
        assert r.status_code == 200, r.text
        assert _bank_reads(y, d.uscc) == 403
        assert _consents(c) == []
        [ended] = _consents(c, ended=True)
        assert ended["id"] == consent["id"]
        assert (ended["status"], ended["end_reason"]) == ("ended", "application_withdrawn")
        # Nothing is left for the enterprise to withdraw.
        r = c.delete(f"/v1/credit/consents/{BANK_Y}")
        assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    # The bank still has the application it decided nothing on: its own record.
    assert y.get(f"/v1/credit/applications/{application}").status_code == 200


def test_rejection_and_a_closed_loan_end_it_an_explicit_consent_does_not(
    assembled: Assembled, applicants: list[Applicant], banks: dict[str, httpx.Client]
) -> None:
    e, f = applicants[1], applicants[2]
    x = banks[BANK_X]
    with client(assembled, e.token) as c:
        assert c.post("/v1/credit/consents", json={"bank_id": BANK_X}).status_code == 201
        application = _apply(c, BANK_X)
        _act(x, application, "decision", {"decision": "reject", "reason_codes": ["other"]})
        # The application's consent ended with the rejection; the explicit one stands.
        assert _bank_reads(x, e.uscc) == 200
        assert {i["basis"] for i in _consents(c)} == {"explicit"}
        assert c.delete(f"/v1/credit/consents/{BANK_X}").status_code == 204
        assert _bank_reads(x, e.uscc) == 403
        reasons = {i["end_reason"] for i in _consents(c, ended=True)}
        assert reasons == {"application_rejected", "withdrawn"}

    with client(assembled, f.token) as c:
        application = _apply(c, BANK_X)
        _act(x, application, "decision", {"decision": "approve", "amount": 100_000, "rate": 3.0})
        _act(x, application, "disburse")
        # The loan runs: the bank monitors it, the enterprise cannot take the consent back.
        assert _bank_reads(x, f.uscc) == 200
        r = c.delete(f"/v1/credit/consents/{BANK_X}")
        assert r.status_code == 409 and r.json()["application_id"] == application
        [loan] = _consents(c)
        assert loan["expires_at"] is not None
        _act(x, application, "close")
        assert _bank_reads(x, f.uscc) == 403
        [closed] = _consents(c, ended=True)
        assert closed["end_reason"] == "loan_closed"
