"""The policy what-if of an unpublished scoring run predicts exactly the pool memberships that
publishing it gives, and writes nothing until then."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.policy.conftest import DEMO_SEED, DEMO_SIZE, PolicyWorld
from tests.scoring_fixtures import demo, unpublished_run, what_if_pages


async def eligible(world: PolicyWorld) -> set[tuple[str, str]]:
    """(pool, USCC) of every eligible pool member now."""
    async with world.app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT rule_key, uscc FROM policy.matches "
                "WHERE status = 0 AND rule_key LIKE 'pool:%'"
            )
        )
        return {(r[0].removeprefix("pool:"), r[1]) for r in rows}


async def changed_run(world: PolicyWorld) -> str:
    """An unpublished run of 2025 in which eighty firms hold every qualification and grew."""
    data = demo(DEMO_SIZE, DEMO_SEED)
    rows = [
        f"{u},{n},2025,hnte;srdi;st_sme,{20 + k % 60},45.5"
        for k, (u, n) in enumerate(zip(data.uscc[:80], data.name[:80], strict=True))
    ]
    content = (
        "uscc,name,period,qualifications,rd_intensity,revenue_growth\n" + "\n".join(rows)
    ).encode()
    return await unpublished_run(world.platform, content)


async def what_if(world: PolicyWorld, run_id: str) -> tuple[dict[str, Any], list[Any]]:
    async with world.government() as gov:
        return await what_if_pages(gov, run_id, limit=40)


async def test_what_if_predicts_pool_eligibility(world: PolicyWorld) -> None:
    before = await eligible(world)
    run_id = await changed_run(world)
    body, changes = await what_if(world, run_id)
    assert body["current_run_id"] == world.run_id and body["enterprises"] == DEMO_SIZE
    assert changes, "eighty firms with every qualification change some pool"
    for pool in body["pools"]:
        mine = {(pool["pool"], u) for p, u in before if p == pool["pool"]}
        assert pool["eligible_before"] == len(mine)
        assert (
            pool["eligible_after"] == pool["eligible_before"] + pool["entering"] - pool["leaving"]
        )
    assert sum(p["entering"] + p["leaving"] for p in body["pools"]) == len(changes)
    assert await eligible(world) == before  # nothing written

    predicted = set(before)
    for c in changes:
        key = (c["pool"], c["uscc"])
        if c["after"] == "eligible":
            assert c["before"] != "eligible" and key not in before
            predicted.add(key)
        else:
            assert c["before"] == "eligible" and key in before
            predicted.discard(key)
    async with world.platform.client("scoring", "government") as gov:
        assert (await gov.post(f"/v1/evaluations/{run_id}/publish")).status_code == 200
    assert (await world.sync()).imported == [run_id]
    assert await eligible(world) == predicted
    body, changes = await what_if(world, run_id)
    assert changes == []


async def test_what_if_is_for_the_government_and_services(world: PolicyWorld) -> None:
    run = {"run_id": world.run_id}
    async with world.bank() as bank:
        assert (await bank.post("/v1/what-if/evaluation", json=run)).status_code == 403
    async with world.enterprise(str(demo(DEMO_SIZE, DEMO_SEED).uscc[0])) as me:
        assert (await me.post("/v1/what-if/evaluation", json=run)).status_code == 403
    async with world.service() as svc:
        assert (await svc.post("/v1/what-if/evaluation", json=run)).status_code == 200
        unknown = {"run_id": "00000000-0000-4000-8000-000000000000"}
        assert (await svc.post("/v1/what-if/evaluation", json=unknown)).status_code == 404
