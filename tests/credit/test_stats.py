"""Government statistics: applications, enterprises, amounts by bank and stage."""

from __future__ import annotations

import uuid

from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS, CreditWorld


async def test_figures_by_bank_and_stage(world: CreditWorld) -> None:
    firms = await world.eligible(4)
    plan = [  # (firm, bank, amount, outcome)
        (0, ICBC, 400_000, "disbursed"),
        (1, ICBC, 300_000, "approved"),
        (2, HZUB, 200_000, "rejected"),
        (3, HZBANK, 100_000, "submitted"),
        (0, HZUB, 500_000, "disbursed"),
    ]
    for i, bank_id, amount, outcome in plan:
        uscc = firms[i]["uscc"]
        async with world.enterprise(uscc) as c:
            r = await c.post(
                "/v1/applications",
                json={"product_id": SEEDED_PRODUCTS[bank_id], "amount": amount},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            aid = r.json()["id"]
        async with world.bank(bank_id) as bank:
            if outcome in ("approved", "disbursed"):
                await bank.post(
                    f"/v1/applications/{aid}/decision",
                    json={"decision": "approve", "amount": amount, "rate": 3.5},
                )
            if outcome == "disbursed":
                await bank.post(f"/v1/applications/{aid}/disburse")
            if outcome == "rejected":
                await bank.post(
                    f"/v1/applications/{aid}/decision",
                    json={"decision": "reject", "reason_codes": ["other"]},
                )
    async with world.government() as gov:
        stats = (await gov.get("/v1/stats")).json()
    t = stats["totals"]
    assert (t["applications"], t["enterprises_applied"]) == (5, 4)
    assert (t["approved"], t["amount_approved"]) == (3, 1_200_000)
    assert (t["granted"], t["enterprises_granted"], t["amount_granted"]) == (2, 1, 900_000)
    assert (t["rejected"], t["pending"]) == (1, 1)
    banks = {b["bank_id"]: b for b in stats["by_bank"]}
    assert banks[ICBC]["amount_approved"] == 700_000 and banks[ICBC]["amount_granted"] == 400_000
    assert banks[HZUB]["applications"] == 2 and banks[HZUB]["amount_granted"] == 500_000
    assert banks[HZBANK]["pending"] == 1
    assert stats["reason_codes"] == {"other": 1}
    by_stage = {s["stage"]: s for s in stats["by_stage"]}
    assert sum(s["applications"] for s in by_stage.values()) == 5
    stage0 = firms[0]["stage"]
    assert by_stage[stage0]["amount_granted"] >= 900_000
    assert by_stage[stage0]["coverage"]["ratio"] >= 0.95
    assert stats["evaluation"]["run_id"] == world.run_id
    async with world.platform.client("credit", "service") as svc:
        assert (await svc.get("/v1/stats")).status_code == 200
