"""Who may see and do what: enterprise A vs B, bank X vs Y, consent, government."""

from __future__ import annotations

from typing import Any

from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS, CreditWorld


async def _submitted(world: CreditWorld, uscc: str, bank: str = ICBC) -> str:
    return str((await world.submit(uscc, bank))["id"])


async def test_anonymous_is_refused_everywhere(world: CreditWorld) -> None:
    async with world.platform.client("credit") as anon:
        for method, path in [
            ("GET", "/v1/banks"),
            ("GET", "/v1/products"),
            ("POST", "/v1/products"),
            ("GET", "/v1/applications"),
            ("POST", "/v1/applications"),
            ("GET", "/v1/stats"),
            ("GET", "/v1/feed"),
            ("GET", "/v1/enterprises/x/offers"),
        ]:
            r = await anon.request(method, path)
            assert r.status_code == 401, (method, path)
            assert r.headers["content-type"] == "application/problem+json"


async def test_enterprise_sees_only_itself(world: CreditWorld) -> None:
    a, b = await world.eligible(2)
    app_a = await _submitted(world, a["uscc"])
    async with world.enterprise(b["uscc"]) as eb:
        assert (await eb.get(f"/v1/enterprises/{a['uscc']}/offers")).status_code == 403
        assert (await eb.get(f"/v1/enterprises/{a['uscc']}/approved-amounts")).status_code == 403
        assert (await eb.get(f"/v1/applications/{app_a}")).status_code == 404
        assert (await eb.post(f"/v1/applications/{app_a}/withdraw")).status_code == 404
        listed = (await eb.get("/v1/applications")).json()
        assert listed["total"] == 0
        # Enterprises do not decide, and do not read statistics or the bank feed.
        assert (await eb.get("/v1/stats")).status_code == 403
        assert (await eb.get("/v1/feed")).status_code == 403
        assert (await eb.post("/v1/products", json={})).status_code in (403, 422)
    async with world.enterprise(a["uscc"]) as ea:
        assert (await ea.get(f"/v1/applications/{app_a}")).status_code == 200
        r = await ea.post(
            f"/v1/applications/{app_a}/decision",
            json={"decision": "approve", "amount": 1, "rate": 3.0},
        )
        assert r.status_code == 403
        assert (await ea.get("/v1/applications")).json()["total"] == 1


async def test_bank_sees_only_its_own(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    to_icbc = await _submitted(world, e["uscc"], ICBC)
    async with world.bank(HZUB) as other:
        assert (await other.get(f"/v1/applications/{to_icbc}")).status_code == 404
        for verb, body in [
            ("review", None),
            ("decision", {"decision": "reject", "reason_codes": ["other"]}),
            ("disburse", None),
            ("close", None),
        ]:
            r = await other.post(f"/v1/applications/{to_icbc}/{verb}", json=body)
            assert r.status_code == 404, verb
        assert (await other.get("/v1/applications")).json()["total"] == 0
        products = (await other.get("/v1/products")).json()
        assert {p["bank_id"] for p in products["items"]} == {HZUB}
        assert (await other.get(f"/v1/products/{SEEDED_PRODUCTS[ICBC]}")).status_code == 404
        assert (
            await other.post(f"/v1/products/{SEEDED_PRODUCTS[ICBC]}/withdraw")
        ).status_code == 404
        # An enterprise that did not apply or consent: no score, no amounts.
        r = await other.get(f"/v1/enterprises/{e['uscc']}/approved-amounts")
        assert r.status_code == 403
        assert (await other.get(f"/v1/enterprises/{e['uscc']}/offers")).status_code == 403
        assert (await other.get("/v1/stats")).status_code == 403
        feed = (await other.get("/v1/feed")).json()
        assert feed["items"] == []
    async with world.bank(ICBC) as own:
        r = await own.get(f"/v1/enterprises/{e['uscc']}/approved-amounts")
        assert r.status_code == 200, r.text
        body = r.json()
        assert {ln["bank_id"] for ln in body["lines"]} == {ICBC}
        assert [a["id"] for a in body["applications"]] == [to_icbc]
        assert body["score"]["tier"] == e["tier"]
        # A bank may not withdraw for the enterprise.
        assert (await own.post(f"/v1/applications/{to_icbc}/withdraw")).status_code == 403


async def test_explicit_consent_opens_approved_amounts_to_that_bank_only(
    world: CreditWorld,
) -> None:
    e = (await world.eligible())[0]
    async with world.bank(HZBANK) as bank:
        assert (await bank.get(f"/v1/enterprises/{e['uscc']}/approved-amounts")).status_code == 403
    async with world.enterprise(e["uscc"]) as c:
        r = await c.post("/v1/consents", json={"bank_id": HZBANK})
        assert r.status_code == 201 and r.json()["basis"] == "explicit"
        assert (await c.post("/v1/consents", json={"bank_id": "nope"})).status_code == 404
        consents = (await c.get("/v1/consents")).json()
        assert [x["bank_id"] for x in consents["items"]] == [HZBANK]
    async with world.bank(HZBANK) as bank:
        r = await bank.get(f"/v1/enterprises/{e['uscc']}/approved-amounts")
        assert r.status_code == 200
        assert r.json()["applications"] == []
        assert r.json()["pre_approved_total"] >= 500_000
    async with world.bank(HZUB) as bank:
        assert (await bank.get(f"/v1/enterprises/{e['uscc']}/approved-amounts")).status_code == 403


async def test_government_reads_everything_and_changes_nothing(world: CreditWorld) -> None:
    e = (await world.eligible())[0]
    aid = await _submitted(world, e["uscc"])
    async with world.government() as gov:
        assert (await gov.get(f"/v1/applications/{aid}")).status_code == 200
        assert (await gov.get("/v1/applications")).json()["total"] == 1
        assert (await gov.get(f"/v1/enterprises/{e['uscc']}/offers")).status_code == 200
        r = await gov.get(f"/v1/enterprises/{e['uscc']}/approved-amounts")
        assert r.status_code == 200
        assert {ln["bank_id"] for ln in r.json()["lines"]} == {ICBC, HZUB, HZBANK}
        assert (await gov.get("/v1/stats")).status_code == 200
        for verb, body in [
            ("review", None),
            ("withdraw", None),
            ("disburse", None),
            ("decision", {"decision": "reject", "reason_codes": ["other"]}),
        ]:
            assert (await gov.post(f"/v1/applications/{aid}/{verb}", json=body)).status_code == 403
        application: dict[str, Any] = {"product_id": SEEDED_PRODUCTS[ICBC], "amount": 1}
        r = await gov.post("/v1/applications", json=application, headers={"Idempotency-Key": "k1"})
        assert r.status_code == 403
        r = await gov.post(f"/v1/products/{SEEDED_PRODUCTS[ICBC]}/withdraw")
        assert r.status_code == 403


async def test_explicit_consent_can_be_withdrawn_an_applications_ends_with_it(
    world: CreditWorld,
) -> None:
    e = (await world.eligible())[0]
    url = f"/v1/enterprises/{e['uscc']}/approved-amounts"
    async with world.enterprise(e["uscc"]) as c:
        assert (await c.post("/v1/consents", json={"bank_id": HZBANK})).status_code == 201
    async with world.bank(HZBANK) as bank:
        assert (await bank.get(url)).status_code == 200
    async with world.enterprise(e["uscc"]) as c:
        assert (await c.delete(f"/v1/consents/{HZBANK}")).status_code == 204
        assert (await c.delete(f"/v1/consents/{HZBANK}")).status_code == 404
        assert (await c.get("/v1/consents")).json()["items"] == []
    async with world.bank(HZBANK) as bank:
        assert (await bank.get(url)).status_code == 403
    # Applying consents again, for that application: it cannot be withdrawn on its own...
    aid = await _submitted(world, e["uscc"], HZBANK)
    async with world.bank(HZBANK) as bank:
        assert (await bank.get(url)).status_code == 200
    async with world.enterprise(e["uscc"]) as c:
        r = await c.delete(f"/v1/consents/{HZBANK}")
        assert r.status_code == 409
        assert r.json()["type"].endswith("/consent-in-use")
        assert r.json()["application_id"] == aid
        # ...it ends with the application.
        assert (await c.post(f"/v1/applications/{aid}/withdraw")).status_code == 200
        assert (await c.delete(f"/v1/consents/{HZBANK}")).status_code == 404
    async with world.bank(HZBANK) as bank:
        r = await bank.get(url)
        assert r.status_code == 403 and r.json()["type"].endswith("/no-consent")
    # Nobody else can withdraw it for the enterprise.
    async with world.bank(HZBANK) as bank:
        assert (await bank.delete(f"/v1/consents/{HZBANK}")).status_code == 403
