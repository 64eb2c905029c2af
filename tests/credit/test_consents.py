"""How long a consent lasts (issue 10 item 6): one given by applying ends with the
application (withdrawn, rejected) or its loan (closed, or its term over); an explicit one
lasts until withdrawn or its expiry. A bank reads only under a consent in force, and the
enterprise sees each consent, and why and when it ended, in plain words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from tests.credit.conftest import HZBANK, ICBC, CreditWorld
from tests.scoring_fixtures import evaluate_and_publish

APPROVE = {"decision": "approve", "amount": 100_000, "rate": 3.0, "term_months": 6}


async def _apply(world: CreditWorld, uscc: str, bank: str = ICBC) -> str:
    return str((await world.submit(uscc, bank))["id"])


async def _bank_reads(world: CreditWorld, bank: str, uscc: str) -> int:
    async with world.bank(bank) as b:
        r = await b.get(f"/v1/enterprises/{uscc}/approved-amounts")
    if r.status_code == 403:
        assert r.json()["type"].endswith("/no-consent"), r.json()
    return r.status_code


async def _consents(world: CreditWorld, uscc: str, *, ended: bool = False) -> list[dict[str, Any]]:
    async with world.enterprise(uscc) as c:
        r = await c.get("/v1/consents", params={"include_ended": ended})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _bank_acts(world: CreditWorld, bank: str, aid: str, verb: str, body: Any = None) -> None:
    async with world.bank(bank) as b:
        r = await b.post(f"/v1/applications/{aid}/{verb}", json=body)
    assert r.status_code == 200, r.text


async def test_withdrawing_the_application_ends_its_consent_for_later_periods_too(
    world: CreditWorld,
) -> None:
    e = (await world.eligible())[0]
    aid = await _apply(world, e["uscc"], HZBANK)
    assert await _bank_reads(world, HZBANK, e["uscc"]) == 200
    [consent] = await _consents(world, e["uscc"])
    assert consent["basis"] == "application" and consent["application_id"] == aid
    assert consent["status"] == "in_force" and consent["expires_at"] is None
    assert consent["scope"] == ["score", "pre_approved_amounts"]
    assert "Bank of Hangzhou" in consent["summary"] and aid in consent["summary"]
    assert "杭州银行" in consent["summary_zh"]

    async with world.enterprise(e["uscc"]) as c:
        assert (await c.post(f"/v1/applications/{aid}/withdraw")).status_code == 200
    assert await _bank_reads(world, HZBANK, e["uscc"]) == 403
    # A later evaluation changes nothing: the consent has ended, not merely the period.
    world.run_id = await evaluate_and_publish(world.platform, 2025)
    assert (await world.sync()).imported == [world.run_id]
    assert await _bank_reads(world, HZBANK, e["uscc"]) == 403

    assert await _consents(world, e["uscc"]) == []
    [ended] = await _consents(world, e["uscc"], ended=True)
    assert ended["id"] == consent["id"]
    assert ended["status"] == "ended" and ended["end_reason"] == "application_withdrawn"
    assert ended["ended_at"] is not None
    assert "you withdrew the application" in ended["summary"]
    # The bank keeps the application it was sent (its record), not the enterprise's data.
    async with world.bank(HZBANK) as b:
        assert (await b.get(f"/v1/applications/{aid}")).status_code == 200


async def test_a_rejection_ends_the_consent(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    aid = await _apply(world, e["uscc"])
    await _bank_acts(
        world, ICBC, aid, "decision", {"decision": "reject", "reason_codes": ["other"]}
    )
    assert await _bank_reads(world, ICBC, e["uscc"]) == 403
    [ended] = await _consents(world, e["uscc"], ended=True)
    assert ended["end_reason"] == "application_rejected"


async def test_a_loan_keeps_the_consent_until_closed_and_at_most_its_term(
    world: CreditWorld,
) -> None:
    e = (await world.eligible())[0]
    aid = await _apply(world, e["uscc"])
    await _bank_acts(world, ICBC, aid, "decision", APPROVE)
    assert await _bank_reads(world, ICBC, e["uscc"]) == 200
    await _bank_acts(world, ICBC, aid, "disburse")
    assert await _bank_reads(world, ICBC, e["uscc"]) == 200
    [consent] = await _consents(world, e["uscc"])
    async with world.enterprise(e["uscc"]) as c:
        disbursed_at = datetime.fromisoformat(
            (await c.get(f"/v1/applications/{aid}")).json()["disbursed_at"]
        )
        # While the loan runs the enterprise cannot take the consent back.
        r = await c.delete(f"/v1/consents/{ICBC}")
        assert r.status_code == 409 and r.json()["application_id"] == aid
    expires = datetime.fromisoformat(consent["expires_at"])
    # The approved term: six calendar months after disbursement.
    assert timedelta(days=180) <= expires - disbursed_at <= timedelta(days=185)
    assert "at the latest on" in consent["summary"]

    # The term is over (the clock moved on) and the bank has not closed the loan: it ends.
    async with world.app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE credit.consents SET expires_at = now() - interval '1 day' WHERE id = :id"),
            {"id": consent["id"]},
        )
    assert await _bank_reads(world, ICBC, e["uscc"]) == 403
    [expired] = await _consents(world, e["uscc"], ended=True)
    assert expired["status"] == "expired" and expired["end_reason"] is None
    assert "it expired" in expired["summary"]

    await _bank_acts(world, ICBC, aid, "close")
    [closed] = await _consents(world, e["uscc"], ended=True)
    assert closed["status"] == "ended" and closed["end_reason"] == "loan_closed"


async def test_closing_the_loan_ends_the_consent(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    aid = await _apply(world, e["uscc"])
    for verb, body in [("decision", APPROVE), ("disburse", None), ("close", None)]:
        await _bank_acts(world, ICBC, aid, verb, body)
    assert await _bank_reads(world, ICBC, e["uscc"]) == 403
    [ended] = await _consents(world, e["uscc"], ended=True)
    assert ended["end_reason"] == "loan_closed"


async def test_an_explicit_consent_outlives_applications_until_withdrawn(
    world: CreditWorld,
) -> None:
    e = (await world.eligible())[0]
    async with world.enterprise(e["uscc"]) as c:
        r = await c.post("/v1/consents", json={"bank_id": ICBC})
        assert r.status_code == 201 and r.json()["basis"] == "explicit"
        assert r.json()["application_id"] is None and r.json()["expires_at"] is None
        assert "until you withdraw it" in r.json()["summary"]
    aid = await _apply(world, e["uscc"])
    assert {c["basis"] for c in await _consents(world, e["uscc"])} == {"application", "explicit"}
    async with world.enterprise(e["uscc"]) as c:
        assert (await c.post(f"/v1/applications/{aid}/withdraw")).status_code == 200
    # The application's consent ended; the one given on its own did not.
    assert await _bank_reads(world, ICBC, e["uscc"]) == 200
    [explicit] = await _consents(world, e["uscc"])
    assert explicit["basis"] == "explicit"
    async with world.enterprise(e["uscc"]) as c:
        assert (await c.delete(f"/v1/consents/{ICBC}")).status_code == 204
        assert (await c.delete(f"/v1/consents/{ICBC}")).status_code == 404
    assert await _bank_reads(world, ICBC, e["uscc"]) == 403
    reasons = {c["end_reason"] for c in await _consents(world, e["uscc"], ended=True)}
    assert reasons == {"withdrawn", "application_withdrawn"}


async def test_an_explicit_consent_can_expire_and_be_given_again(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    soon = datetime.now(UTC) + timedelta(days=30)
    later = datetime.now(UTC) + timedelta(days=90)
    async with world.enterprise(e["uscc"]) as c:
        r = await c.post("/v1/consents", json={"bank_id": HZBANK, "expires_at": soon.isoformat()})
        assert r.status_code == 201, r.text
        first = r.json()
        assert datetime.fromisoformat(first["expires_at"]) == soon
        assert "ends by itself on" in first["summary"]
        # Granting again while it is in force replaces the expiry of the same consent.
        r = await c.post("/v1/consents", json={"bank_id": HZBANK, "expires_at": later.isoformat()})
        assert r.status_code == 200 and r.json()["id"] == first["id"]
        assert datetime.fromisoformat(r.json()["expires_at"]) == later
    assert await _bank_reads(world, HZBANK, e["uscc"]) == 200

    async with world.app.state.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE credit.consents SET expires_at = now() - interval '1 hour' WHERE id = :id"
            ),
            {"id": first["id"]},
        )
    assert await _bank_reads(world, HZBANK, e["uscc"]) == 403
    assert await _consents(world, e["uscc"]) == []
    async with world.enterprise(e["uscc"]) as c:
        # Nothing in force to withdraw.
        assert (await c.delete(f"/v1/consents/{HZBANK}")).status_code == 404
        r = await c.post("/v1/consents", json={"bank_id": HZBANK})
        assert r.status_code == 201 and r.json()["id"] != first["id"]
    assert await _bank_reads(world, HZBANK, e["uscc"]) == 200
    history = await _consents(world, e["uscc"], ended=True)
    assert [(c["status"], c["end_reason"]) for c in history] == [
        ("in_force", None),
        ("ended", "expired"),
    ]


async def test_bad_consent_input_is_a_problem_and_changes_nothing(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases = [
        ({"bank_id": ICBC, "expires_at": past}, 422, "expiry-in-the-past"),
        ({"bank_id": ICBC, "expires_at": "2027-01-01T00:00:00"}, 422, "validation-error"),
        ({"bank_id": ICBC, "expires_at": "9999-12-31T23:59:59-14:00"}, 422, "expiry-too-far"),
        ({"bank_id": ICBC, "expires_at": "0001-01-01T00:00:00+14:00"}, 422, "expiry-in-the-past"),
        ({"bank_id": ICBC, "expires_at": "tomorrow"}, 422, "validation-error"),
        ({"bank_id": ICBC, "scope": ["everything"]}, 422, "validation-error"),
        ({"bank_id": "x" * 65}, 422, "validation-error"),
        ({"bank_id": "nope"}, 404, "not-found"),
    ]
    async with world.enterprise(e["uscc"]) as c:
        for body, status, slug in cases:
            r = await c.post("/v1/consents", json=body)
            assert r.status_code == status, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"].endswith("/" + slug), (body, r.json())
        assert (await c.delete("/v1/consents/" + "x" * 65)).status_code == 422
        assert (await c.get("/v1/consents", params={"include_ended": "maybe"})).status_code == 422
    assert await _consents(world, e["uscc"], ended=True) == []


async def test_consents_are_the_enterprises_own(world: CreditWorld) -> None:
    a, b = await world.eligible(2)
    await _apply(world, a["uscc"])
    assert await _consents(world, b["uscc"], ended=True) == []
    async with world.bank(ICBC) as bank:
        # A bank reads only the consents in force to itself (test_bank_views.py).
        mine = (await bank.get("/v1/consents")).json()["items"]
        assert [(i["uscc"], i["bank_id"]) for i in mine] == [(a["uscc"], ICBC)]
        assert (await bank.post("/v1/consents", json={"bank_id": ICBC})).status_code == 403
    async with world.government() as gov:
        assert (await gov.get("/v1/consents")).status_code == 403
    # B's consent to ICBC does not open A's data, nor A's B's.
    async with world.enterprise(b["uscc"]) as c:
        assert (await c.post("/v1/consents", json={"bank_id": HZBANK})).status_code == 201
    assert await _bank_reads(world, HZBANK, a["uscc"]) == 403
    assert await _bank_reads(world, ICBC, b["uscc"]) == 403
