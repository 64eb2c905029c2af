"""The programme overview's statistics and the rankings search, against two published periods."""

from __future__ import annotations

import pytest

from tests.platform import Platform
from tests.scoring_fixtures import evaluate_and_publish, import_period

N = 240
SEED = 21


@pytest.fixture
async def published(platform: Platform) -> Platform:
    await platform.start("scoring")
    for period in (2024, 2025):
        await import_period(platform, N, SEED, period)
        await evaluate_and_publish(platform, period)
    return platform


async def test_overview_adds_up_with_the_rankings(published: Platform) -> None:
    async with published.client("scoring", "government") as gov:
        r = await gov.get("/v1/statistics/overview")
        assert r.status_code == 200, r.text
        o = r.json()
        assert o["evaluation"]["period"] == 2025
        assert o["enterprises"] == N
        assert o["enterprises"] == sum(s["enterprises"] for s in o["by_stage"])
        assert o["scored"] == sum(o["tiers"].values())
        shares = [v for v in o["tier_shares"].values() if v is not None]
        assert abs(sum(shares) - 1) < 1e-3
        for s in o["by_stage"]:
            assert sum(s["histogram"]) == s["scored"] == sum(s["tiers"].values())
            assert len(s["histogram"]) == 10
            if s["stage"] == "unstaged":
                continue
            ranking = (
                await gov.get("/v1/rankings", params={"stage": s["stage"], "limit": 1})
            ).json()
            assert ranking["total"] == s["scored"]
            if s["scored"]:
                assert 0 <= s["median_total"] <= 100
        change = o["change"]
        assert change["previous"]["period"] == 2024
        m = change["migration"]
        assert m["up"] + m["down"] + m["same"] == m["compared"] > 0
        before = (await gov.get("/v1/statistics/overview", params={"period": 2024})).json()
        assert before["change"] is None  # nothing published before 2024
        assert change["enterprises"] == o["enterprises"] - before["enterprises"]
        assert (
            await gov.get("/v1/statistics/overview", params={"period": 2019})
        ).status_code == 404


async def test_overview_is_for_the_government_only(published: Platform) -> None:
    for kind, extra in (
        ("enterprise", {"uscc": "91330108MA27XK0A1M"}),
        ("bank", {"bank_id": "icbc-binjiang"}),
        ("service", {}),
    ):
        async with published.client("scoring", kind, **extra) as c:
            assert (await c.get("/v1/statistics/overview")).status_code == 403, kind
    async with published.client("scoring") as anonymous:
        assert (await anonymous.get("/v1/statistics/overview")).status_code == 401


async def test_rankings_search_by_name_or_uscc(published: Platform) -> None:
    async with published.client("scoring", "government") as gov:
        full = (await gov.get("/v1/rankings", params={"stage": "growth", "limit": 500})).json()
        target = full["items"][len(full["items"]) // 2]
        by_uscc = (
            await gov.get("/v1/rankings", params={"stage": "growth", "q": target["uscc"][:14]})
        ).json()
        assert target["uscc"] in {i["uscc"] for i in by_uscc["items"]}
        assert all(i["uscc"].startswith(target["uscc"][:14]) for i in by_uscc["items"])
        r = await gov.get("/v1/rankings", params={"stage": "growth", "q": target["name"]})
        found = r.json()
        assert found["items"][0]["uscc"] == target["uscc"]
        assert found["items"][0]["rank"] == target["rank"]  # the stage's rank, not the hit's
        assert found["total"] == len(found["items"]) < full["total"]
        # Wildcards are text: nothing is named "%".
        for hostile in ("%", "_", "\\", "' OR 1=1 --"):
            r = await gov.get("/v1/rankings", params={"stage": "growth", "q": hostile})
            assert r.status_code == 200 and r.json()["total"] == 0, hostile
        too_long = await gov.get("/v1/rankings", params={"stage": "growth", "q": "x" * 65})
        assert too_long.status_code == 422
