"""Loan outcomes: only the lending bank reports, idempotently, append-only; who reads what."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import text

from tests.credit.conftest import HZUB, ICBC, CreditWorld


async def _loan(world: CreditWorld, uscc: str, bank: str = ICBC) -> dict[str, Any]:
    """A disbursed loan of `bank` to `uscc`: the application's JSON."""
    app = await world.submit(uscc, bank, amount=200_000)
    async with world.bank(bank) as b:
        r = await b.post(
            f"/v1/applications/{app['id']}/decision",
            json={"decision": "approve", "amount": 200_000, "rate": 3.2, "term_months": 12},
        )
        assert r.status_code == 200, r.text
        r = await b.post(f"/v1/applications/{app['id']}/disburse")
        assert r.status_code == 200, r.text
    return dict(r.json())


def _when(app: dict[str, Any], month: int, day: int = 28) -> str:
    return date(app["evidence"]["period"] + 1, month, day).isoformat()


async def _rows(world: CreditWorld) -> int:
    async with world.app.state.engine.connect() as conn:
        n = await conn.execute(text("SELECT count(*) FROM credit.loan_outcomes"))
        return int(n.scalar_one())


async def test_report_history_and_idempotency(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    loan = await _loan(world, e["uscc"])
    url = f"/v1/loans/{loan['id']}/outcomes"
    first = {"state": "current", "as_of": _when(loan, 3), "outstanding": 200_000}
    async with world.bank(ICBC) as bank:
        r = await bank.post(url, json=first, headers={"Idempotency-Key": "k-1"})
        assert r.status_code == 201, r.text
        assert r.json()["period"] == loan["evidence"]["period"]
        assert r.json()["reported_by"] and r.json()["synthetic"] is False
        # The same report again: by key, then by natural key without one.
        again = await bank.post(url, json=first, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == r.json()["id"]
        natural = await bank.post(url, json=first)
        assert natural.status_code == 200 and natural.json()["id"] == r.json()["id"]
        # The same key for another report: 422; another amount for the same key: 409.
        reused = await bank.post(
            url, json={**first, "as_of": _when(loan, 4)}, headers={"Idempotency-Key": "k-1"}
        )
        assert reused.status_code == 422
        assert reused.json()["type"].endswith("idempotency-key-reused")
        clash = await bank.post(url, json={**first, "outstanding": 150_000})
        assert clash.status_code == 409 and clash.json()["type"].endswith("conflicting-outcome")
        later = {"state": "overdue_90_plus", "as_of": _when(loan, 9), "outstanding": 180_000}
        assert (await bank.post(url, json=later)).status_code == 201
        history = (await bank.get(url)).json()
    assert [h["state"] for h in history["history"]] == ["current", "overdue_90_plus"]
    assert history["latest"]["state"] == "overdue_90_plus"
    assert await _rows(world) == 2
    async with world.enterprise(e["uscc"]) as c:
        own = await c.get(url)
        assert own.status_code == 200 and len(own.json()["history"]) == 2
        listed = (await c.get("/v1/outcomes")).json()
        assert [i["state"] for i in listed["items"]] == ["overdue_90_plus"]
        # The state filter is on the latest report: "current" is history, not the state now.
        none = (await c.get("/v1/outcomes", params={"state": "current"})).json()
        assert none["items"] == [] and none["total"] == 0


async def test_authorization_matrix(world: CreditWorld) -> None:
    a, b = (await world.eligible(2))[:2]
    loan = await _loan(world, a["uscc"])
    url = f"/v1/loans/{loan['id']}/outcomes"
    body = {"state": "current", "as_of": _when(loan, 2), "outstanding": 1}
    async with world.bank(HZUB) as other:
        assert (await other.post(url, json=body)).status_code == 404
        assert (await other.get(url)).status_code == 404
    async with world.enterprise(a["uscc"]) as ent:
        assert (await ent.post(url, json=body)).status_code == 403
    async with world.enterprise(b["uscc"]) as stranger:
        assert (await stranger.get(url)).status_code == 404
        assert (await stranger.get("/v1/outcomes")).json()["items"] == []
        assert (await stranger.get("/v1/outcomes/summary")).status_code == 403
    async with world.government() as gov:
        assert (await gov.post(url, json=body)).status_code == 403
        assert (await gov.get(url)).status_code == 403
        assert (await gov.get("/v1/outcomes")).status_code == 403
        assert (await gov.get("/v1/outcomes/performance?period=2025")).status_code == 403
    assert await _rows(world) == 0


async def test_bad_input_is_problem_json_and_writes_nothing(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    loan = await _loan(world, e["uscc"])
    url = f"/v1/loans/{loan['id']}/outcomes"
    period = loan["evidence"]["period"]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"state": "late", "as_of": _when(loan, 2), "outstanding": 1}, 422, "validation"),
        ({"state": "current", "as_of": "2999-01-01", "outstanding": 1}, 422, "outcome-in-future"),
        (
            {"state": "current", "as_of": f"{period}-06-30", "outstanding": 1},
            422,
            "outcome-before-loan",
        ),
        (
            {"state": "current", "as_of": _when(loan, 2), "outstanding": 10**9},
            422,
            "outstanding-above-disbursed",
        ),
        (
            {"state": "repaid", "as_of": _when(loan, 2), "outstanding": 5},
            422,
            "repaid-with-outstanding",
        ),
        ({"state": "current", "as_of": _when(loan, 2), "outstanding": -1}, 422, "validation"),
        ({"state": "current", "as_of": _when(loan, 2), "outstanding": 1, "x": 1}, 422, ""),
    ]
    async with world.bank(ICBC) as bank:
        for body, status, slug in cases:
            r = await bank.post(url, json=body)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert slug in r.json()["type"] or slug == "validation"
        assert (
            await bank.post(f"/v1/loans/{uuid.uuid4()}/outcomes", json=cases[0][0])
        ).status_code in (404, 422)
        # An application not disbursed is no loan.
        pending = await world.submit((await world.eligible(2))[1]["uscc"], ICBC)
        r = await bank.post(
            f"/v1/loans/{pending['id']}/outcomes",
            json={"state": "current", "as_of": _when(loan, 2), "outstanding": 1},
        )
        assert r.status_code == 409 and r.json()["type"].endswith("not-a-loan")
    assert await _rows(world) == 0


async def test_aggregates_and_the_services_performance(world: CreditWorld) -> None:
    a, b = (await world.eligible(2))[:2]
    good, bad = await _loan(world, a["uscc"]), await _loan(world, b["uscc"], HZUB)
    period = good["evidence"]["period"]
    async with world.bank(ICBC) as bank:
        r = await bank.post(
            f"/v1/loans/{good['id']}/outcomes",
            json={"state": "repaid", "as_of": _when(good, 11), "outstanding": 0},
        )
        assert r.status_code == 201
    async with world.bank(HZUB) as bank:
        for state, month in (("overdue_30", 4), ("default", 8)):
            r = await bank.post(
                f"/v1/loans/{bad['id']}/outcomes",
                json={
                    "state": state,
                    "as_of": _when(bad, month),
                    "outstanding": 150_000,
                    "synthetic": True,
                },
            )
            assert r.status_code == 201, r.text
        own = (await bank.get("/v1/outcomes/summary", params={"period": period})).json()
    assert (own["loans"], own["bad"], own["observed"], own["by_bank"]) == (1, 1, 1, None)
    async with world.government() as gov:
        total = (await gov.get("/v1/outcomes/summary", params={"period": period})).json()
    assert (total["loans"], total["bad"], total["observed"], total["bad_rate"]) == (2, 1, 2, 0.5)
    assert total["synthetic_loans"] == 1
    assert {s["state"]: s["loans"] for s in total["states"]} == {"repaid": 1, "default": 1}
    assert [(x["bank_id"], x["bad"]) for x in total["by_bank"]] == [(HZUB, 1), (ICBC, 0)]
    async with world.platform.client("credit", "service") as svc:
        perf = (await svc.get("/v1/outcomes/performance", params={"period": period})).json()
        empty = (await svc.get("/v1/outcomes/performance", params={"period": period - 1})).json()
    flags = {p["uscc"]: p["bad"] for p in perf["items"]}
    assert flags == {a["uscc"]: False, b["uscc"]: True}
    assert perf["synthetic"] is True and len(perf["snapshot"]) == 64
    assert empty["items"] == [] and empty["snapshot"] != perf["snapshot"]
    # Both loans were approved on the period's scores; credit's lines are of this period.
    assert set(perf["approved"]) == {a["uscc"], b["uscc"]} and perf["rejected"] == []
    assert perf["lines_run_id"] == world.run_id and a["uscc"] in perf["with_line"]
    assert empty["lines_run_id"] is None and empty["with_line"] == []
