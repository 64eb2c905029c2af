"""Products: drafts, versions, publish and withdraw, validation, visibility."""

from __future__ import annotations

from typing import Any

from tests.credit.conftest import HZUB, ICBC, CreditWorld

TERMS: dict[str, Any] = {
    "name": "科创成长贷",
    "description": "For growth-stage firms in the top 40% of their stage",
    "eligible_stages": ["growth", "expansion"],
    "min_percentile": 0.6,
    "line_rule": {
        "basis": "percentile",
        "base_amount": 1_000_000,
        "bands": [{"min": 0.9, "amount": 5_000_000}],
    },
    "max_amount": 5_000_000,
    "rate_min": 3.1,
    "rate_max": 3.9,
    "term_months": 12,
    "valid_from": "2025-01-01",
}


async def test_draft_publish_revise_withdraw(world: CreditWorld) -> None:
    e = (await world.eligible(1, stage="growth"))[0]
    async with world.bank(HZUB) as bank:
        r = await bank.post("/v1/products", json=TERMS)
        assert r.status_code == 201, r.text
        p = r.json()
        assert (p["status"], p["version"], p["published_version"]) == ("draft", 1, None)
        pid = p["id"]
        # A draft is the bank's: enterprises do not see it.
        async with world.enterprise(e["uscc"]) as c:
            assert (await c.get(f"/v1/products/{pid}")).status_code == 404
            assert pid not in {x["id"] for x in (await c.get("/v1/products")).json()["items"]}
        # Editing a draft keeps its version.
        r = await bank.put(f"/v1/products/{pid}", json={**TERMS, "rate_min": 3.0})
        assert r.json()["version"] == 1 and r.json()["rate_min"] == 3.0
        r = await bank.post(f"/v1/products/{pid}/publish")
        assert r.status_code == 200 and r.json()["status"] == "published"
        assert (await bank.post(f"/v1/products/{pid}/publish")).status_code == 409
        r = await bank.put(f"/v1/products/{pid}", json={**TERMS, "rate_max": 4.2})
        assert (r.json()["version"], r.json()["published_version"]) == (2, 1)
        versions = (await bank.get(f"/v1/products/{pid}/versions")).json()
        assert [v["version"] for v in versions] == [1, 2]
        async with world.enterprise(e["uscc"]) as c:
            seen = (await c.get(f"/v1/products/{pid}")).json()
            assert (seen["version"], seen["rate_max"]) == (1, 3.9)
            assert (await c.get(f"/v1/products/{pid}", params={"version": 2})).status_code == 404
            assert [v["version"] for v in (await c.get(f"/v1/products/{pid}/versions")).json()] == [
                1
            ]
        assert (await bank.post(f"/v1/products/{pid}/publish")).json()["published_version"] == 2
        assert (await bank.post(f"/v1/products/{pid}/withdraw")).json()["status"] == "withdrawn"
        assert (await bank.put(f"/v1/products/{pid}", json=TERMS)).status_code == 409
        assert (await bank.post(f"/v1/products/{pid}/publish")).status_code == 409
        listed = (await bank.get("/v1/products", params={"status": "withdrawn"})).json()
        assert [x["id"] for x in listed["items"]] == [pid]


async def test_eligibility_minimums_shape_the_lines(world: CreditWorld) -> None:
    async with world.bank(HZUB) as bank:
        pid = (await bank.post("/v1/products", json=TERMS)).json()["id"]
        await bank.post(f"/v1/products/{pid}/publish")
    for s in await world.eligible(100):
        async with world.enterprise(s["uscc"]) as c:
            offers = (await c.get(f"/v1/enterprises/{s['uscc']}/offers")).json()["items"]
        mine = [o for o in offers if o["product_id"] == pid]
        fits = s["stage"] in ("growth", "expansion") and s["percentile"] >= 0.6
        assert bool(mine) == fits, s
        if mine:
            assert mine[0]["amount"] == (5_000_000 if s["percentile"] >= 0.9 else 1_000_000)


async def test_bad_terms_are_422(world: CreditWorld) -> None:
    bad = [
        {**TERMS, "rate_min": 5.0},  # above rate_max
        {**TERMS, "eligible_stages": []},
        {**TERMS, "eligible_stages": ["toddler"]},
        {**TERMS, "eligible_stages": ["growth", "growth"]},
        {**TERMS, "valid_from": "2026-01-01", "valid_to": "2025-01-01"},
        {**TERMS, "max_amount": 100},  # below the base amount
        {**TERMS, "min_tier": 9},
        {**TERMS, "line_rule": {"base_amount": 1, "bands": [{"min": 2, "amount": 5}]}},
        {**TERMS, "term_months": 0},
        {**TERMS, "unknown": True},
        {k: v for k, v in TERMS.items() if k != "name"},
    ]
    async with world.bank(ICBC) as bank:
        for body in bad:
            r = await bank.post("/v1/products", json=body)
            assert r.status_code == 422, body
            assert r.headers["content-type"] == "application/problem+json"
        assert (await bank.get("/v1/products")).json()["total"] == 1
        r = await bank.get("/v1/products/not-a-uuid")
        assert r.status_code == 422


async def test_banks_are_seeded_with_hotlines(world: CreditWorld) -> None:
    async with world.enterprise((await world.eligible())[0]["uscc"]) as c:
        banks = (await c.get("/v1/banks")).json()["items"]
    assert {b["id"]: b["hotline"] for b in banks} == {
        "icbc-binjiang": "95588",
        "hzub-binjiang": "96592",
        "hzbank-binjiang": "95398",
    }
    assert all(b["published_products"] == 1 for b in banks)
