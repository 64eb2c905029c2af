"""The credit what-if of an unpublished scoring run predicts exactly what publishing it does
to the lines, and writes nothing until then."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.credit.conftest import CreditWorld
from tests.scoring_fixtures import demo, unpublished_run, what_if_pages

N = 600  # the world's demo size


async def best_lines(world: CreditWorld) -> dict[str, tuple[int, str, int]]:
    """Each enterprise's largest stored line: (amount, product, band)."""
    async with world.app.state.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT DISTINCT ON (uscc) uscc, amount, product_id::text, band "
                "FROM credit.credit_lines ORDER BY uscc, amount DESC, product_id"
            )
        )
        return {r[0]: (int(r[1]), r[2], int(r[3])) for r in rows}


async def reshuffled_run(world: CreditWorld) -> str:
    """A new, unpublished run of 2025 in which sixty firms report far more R&D and patents."""
    data = demo(N, 1)
    rows = [
        f"{u},{n},2025,{5000 + 10 * k},{40 + k}"
        for k, (u, n) in enumerate(zip(data.uscc[:60], data.name[:60], strict=True))
    ]
    content = ("uscc,name,period,rd_expense,invention_patents\n" + "\n".join(rows)).encode()
    return await unpublished_run(world.platform, content)


async def all_changes(world: CreditWorld, run_id: str) -> tuple[dict[str, Any], list[Any]]:
    async with world.government() as gov:
        return await what_if_pages(gov, run_id, limit=50)


async def test_what_if_predicts_the_lines_of_publication(world: CreditWorld) -> None:
    before = await best_lines(world)
    run_id = await reshuffled_run(world)
    body, changes = await all_changes(world, run_id)
    assert body["current_run_id"] == world.run_id and body["products"] == 3
    counts = body["counts"]
    assert counts["enterprises"] == N
    assert counts["with_line_before"] == len(before)
    assert len(changes) == body["changes"]["total"] > 0
    assert counts["raised"] + counts["lowered"] + counts["gained"] + counts["lost"] + counts[
        "same_amount_other_band"
    ] == len(changes)
    deltas = [abs(c["delta"]) for c in changes]
    assert deltas == sorted(deltas, reverse=True)
    # Nothing was written: the lines served are the published run's.
    assert await best_lines(world) == before

    predicted = dict(before)
    for c in changes:
        assert c["before"] is None or before[c["uscc"]][0] == c["before"]["amount"]
        if c["after"] is None:
            predicted.pop(c["uscc"], None)
        else:
            a = c["after"]
            predicted[c["uscc"]] = (a["amount"], a["product_id"], a["band"])
    async with world.platform.client("scoring", "government") as gov:
        assert (await gov.post(f"/v1/evaluations/{run_id}/publish")).status_code == 200
    assert (await world.sync()).imported == [run_id]
    assert await best_lines(world) == predicted
    # Against the lines now served, the same run changes nothing any more.
    body, changes = await all_changes(world, run_id)
    assert changes == [] and body["current_run_id"] == run_id


async def test_what_if_is_for_the_government_and_services(world: CreditWorld) -> None:
    run = {"run_id": world.run_id}
    async with world.bank("icbc-binjiang") as bank:
        assert (await bank.post("/v1/what-if/evaluation", json=run)).status_code == 403
    uscc = str(demo(N, 1).uscc[0])
    async with world.enterprise(uscc) as me:
        assert (await me.post("/v1/what-if/evaluation", json=run)).status_code == 403
    async with world.platform.client("credit", "service") as svc:
        assert (await svc.post("/v1/what-if/evaluation", json=run)).status_code == 200
    async with world.government() as gov:
        unknown = {"run_id": "00000000-0000-4000-8000-000000000000"}
        r = await gov.post("/v1/what-if/evaluation", json=unknown)
        assert r.status_code == 404, r.text
        assert (await gov.post("/v1/what-if/evaluation", json={"run_id": "x"})).status_code == 422
        await world.platform.stop("scoring")
        r = await gov.post("/v1/what-if/evaluation", json=run)
        assert r.status_code == 502
        assert r.headers["content-type"] == "application/problem+json"
