"""What clients read: the score (一图清) with reasons and improvements, portrait, history,
rankings, cohort statistics, hidden champions — and who may read what."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.platform import Platform
from tests.scoring_fixtures import demo, evaluate_and_publish, import_period

N = 240
SEED = 21


@pytest.fixture
async def published(platform: Platform) -> Platform:
    await platform.start("scoring")
    for period in (2024, 2025):
        await import_period(platform, N, SEED, period)
        await evaluate_and_publish(platform, period)
    return platform


def scored_uscc(platform: Platform) -> list[str]:
    data = demo(N, SEED)
    flags = data.periods[2025].profile["negative_flags"]
    revenue = data.periods[2025].revenue
    return [
        str(u)
        for u, f, r in zip(data.uscc, flags, revenue, strict=True)
        if not f and not math.isnan(r)
    ]


async def test_score_detail_adds_up_and_explains_itself(published: Platform) -> None:
    uscc = scored_uscc(published)[0]
    async with published.client("scoring", "enterprise", uscc=uscc) as me:
        r = await me.get(f"/v1/enterprises/{uscc}/score")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["period"] == 2025 and s["model_version"] == "1.0" and s["scored"]
    assert len(s["indicators"]) == 24 and len(s["dimensions"]) == 4
    assert math.isclose(sum(i["points"] for i in s["indicators"]), s["total"], abs_tol=1e-6)
    assert math.isclose(sum(d["max"] for d in s["dimensions"]), 100.0)
    for d in s["dimensions"]:
        pts = sum(i["points"] for i in s["indicators"] if i["dimension"] == d["code"])
        assert math.isclose(pts, d["score"], abs_tol=1e-6)
    for i in s["indicators"]:
        assert 0 <= i["points"] <= i["max_points"] + 1e-9
        if i["missing"]:
            assert i["points"] == 0
    assert 1 <= len(s["reasons"]) <= 4
    lost = [r["points_lost"] for r in s["reasons"]]
    assert lost == sorted(lost, reverse=True)
    assert all("cohort_median" in r for r in s["reasons"])
    for imp in s["improvements"]:
        assert imp["points_gain"] > 0 and imp["target_percentile"] > imp["percentile"]
    async with published.client("scoring", "enterprise", uscc=uscc) as me:
        old = (await me.get(f"/v1/enterprises/{uscc}/score", params={"period": 2024})).json()
        assert old["period"] == 2024
        hist = (await me.get(f"/v1/enterprises/{uscc}/history")).json()
        assert [h["period"] for h in hist["items"]] == [2024, 2025]
        assert hist["total"] == 2 and hist["next_offset"] is None
        first = (await me.get(f"/v1/enterprises/{uscc}/history", params={"limit": 1})).json()
        assert [h["period"] for h in first["items"]] == [2024] and first["next_offset"] == 1
        portrait = (await me.get(f"/v1/enterprises/{uscc}/portrait")).json()
        assert [a["dimension"] for a in portrait["radar"]] == [
            "input",
            "output",
            "growth",
            "auxiliary",
        ]
        assert all(a["cohort_median"] is not None for a in portrait["radar"])
        assert [t["period"] for t in portrait["trend"]] == [2024, 2025]


async def test_negative_list_enterprise_sees_why_it_has_no_score(published: Platform) -> None:
    data = demo(N, SEED)
    flagged = [
        str(u)
        for u, f in zip(data.uscc, data.periods[2025].profile["negative_flags"], strict=True)
        if f
    ]
    if not flagged:
        pytest.skip("this seed put nobody on the negative list")
    async with published.client("scoring", "government") as gov:
        s = (await gov.get(f"/v1/enterprises/{flagged[0]}/score")).json()
    assert s["scored"] is False and s["total"] is None
    assert s["exclusion"].startswith("negative_list:")


async def test_authorization_matrix(published: Platform) -> None:
    a, b = scored_uscc(published)[:2]
    async with published.client("scoring", "enterprise", uscc=a) as ent_a:
        for path in ("score", "portrait", "history", ""):
            url = f"/v1/enterprises/{b}/{path}".rstrip("/")
            assert (await ent_a.get(url)).status_code == 403, path
        assert (await ent_a.get("/v1/rankings", params={"stage": "growth"})).status_code == 403
        assert (await ent_a.get("/v1/discoveries/hidden-champions")).status_code == 403
        assert (await ent_a.post("/v1/evaluations", json={"period": 2025})).status_code == 403
    async with published.client("scoring", "bank", bank_id="icbc-binjiang") as bank:
        assert (await bank.get(f"/v1/enterprises/{a}/score")).status_code == 403
    async with published.client("scoring") as anon:
        assert (await anon.get(f"/v1/enterprises/{a}/score")).status_code == 401
    async with published.client("scoring", "government") as gov:
        assert (await gov.get(f"/v1/enterprises/{b}/score")).status_code == 200
        bad = await gov.get("/v1/enterprises/NOT-A-CODE/score")
        assert bad.status_code == 422
        unknown = "91330108000000000" + "X"
        assert (await gov.get(f"/v1/enterprises/{unknown}/score")).status_code in (404, 422)
        assert (
            await gov.get(f"/v1/enterprises/{a}/score", params={"period": 2019})
        ).status_code == 404


async def test_rankings_cohort_stats_and_hidden_champions(published: Platform) -> None:
    async with published.client("scoring", "government") as gov:
        r = await gov.get("/v1/rankings", params={"stage": "seedling", "limit": 10})
        assert r.status_code == 200, r.text
        page = r.json()
        totals = [i["total"] for i in page["items"]]
        assert totals == sorted(totals, reverse=True)
        assert page["items"][0]["rank"] == 1
        assert page["total"] >= len(page["items"])
        if page["total"] > 10:
            assert page["next_offset"] == 10
            nxt = (
                await gov.get(
                    "/v1/rankings", params={"stage": "seedling", "limit": 10, "offset": 10}
                )
            ).json()
            assert nxt["items"][0]["total"] <= totals[-1]
        assert (await gov.get("/v1/rankings", params={"stage": "giant"})).status_code == 422
        assert (
            await gov.get("/v1/rankings", params={"stage": "seed", "limit": 10_000})
        ).status_code == 422
        stats = (await gov.get("/v1/cohorts/growth/stats")).json()
        q = stats["stats"]
        assert set(q) >= {"total", "dimensions", "indicators"}
        champions = (await gov.get("/v1/discoveries/hidden-champions")).json()
        for item in champions["items"]:
            assert item["signals"]
            assert item["tier"] >= 4 or (item["revenue_growth"] or 0) >= 30
        data = demo(N, SEED)
        qualified = {
            str(u)
            for u, q_mask in zip(
                data.uscc, data.periods[2025].profile["qualifications"], strict=True
            )
            if q_mask
        }
        assert not qualified & {i["uscc"] for i in champions["items"]}


async def test_models_are_data_and_immutable_once_published(published: Platform) -> None:
    async with published.client("scoring", "government") as gov:
        models = (await gov.get("/v1/models")).json()
        assert [m["version"] for m in models["items"]] == ["1.0"] and models["total"] == 1
        body: dict[str, Any] = {"version": "1.1", "description": "more output", "min_cohort": 40}
        r = await gov.post("/v1/models", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "draft" and r.json()["spec"]["min_cohort"] == 40
        assert (await gov.post("/v1/models", json=body)).status_code == 409
        bad = {"version": "2.0", "dimension_weights": {"seed": {"input": 99}}}
        r = await gov.post("/v1/models", json=bad)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        r = await gov.post("/v1/evaluations", json={"period": 2025, "model_version": "1.1"})
        assert r.status_code == 409  # a draft cannot be used
        assert (await gov.post("/v1/models/1.1/publish")).status_code == 200
        r = await gov.post(
            "/v1/evaluations", json={"period": 2025, "model_version": "1.1", "wait": True}
        )
        assert r.status_code == 201 and r.json()["model_version"] == "1.1"
    async with published.client("scoring", "enterprise", uscc=scored_uscc(published)[0]) as e:
        assert (await e.post("/v1/models", json={"version": "x"})).status_code == 403


async def test_model_drafts_are_for_the_government(published: Platform) -> None:
    """Issue 10: a draft model is the government's work in progress; others see it as absent."""
    async with published.client("scoring", "government") as gov:
        body: dict[str, Any] = {"version": "1.1", "description": "in progress", "min_cohort": 40}
        assert (await gov.post("/v1/models", json=body)).status_code == 201
        listed = (await gov.get("/v1/models")).json()
        assert [m["version"] for m in listed["items"]] == ["1.0", "1.1"] and listed["total"] == 2
        assert (await gov.get("/v1/models/1.1")).json()["status"] == "draft"
    uscc = scored_uscc(published)[0]
    for kind, extra in (
        ("enterprise", {"uscc": uscc}),
        ("bank", {"bank_id": "bank-1"}),
        ("service", {}),
    ):
        async with published.client("scoring", kind, **extra) as other:
            listed = (await other.get("/v1/models")).json()
            assert [m["version"] for m in listed["items"]] == ["1.0"], kind
            assert listed["total"] == 1, kind
            r = await other.get("/v1/models/1.1")
            assert r.status_code == 404, (kind, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert (await other.get("/v1/models/1.0")).status_code == 200, kind
    async with published.client("scoring", "government") as gov:
        assert (await gov.post("/v1/models/1.1/publish")).status_code == 200
    async with published.client("scoring", "enterprise", uscc=uscc) as e:
        assert (await e.get("/v1/models/1.1")).status_code == 200


async def test_the_stored_explanations_read_as_computed_ones(published: Platform) -> None:
    """Issue 11: the published score is read from what the evaluation stored (statuses,
    targets, reasons); a preview of the same run still computes them from the row. Both
    documents are the same for every enterprise, scored or not, and for every reader."""
    data = demo(N, SEED)
    async with published.client("scoring", "government") as gov:
        run_id = (await gov.get(f"/v1/enterprises/{data.uscc[0]}/score")).json()["run_id"]
        for uscc in map(str, data.uscc):
            fast = await gov.get(f"/v1/enterprises/{uscc}/score")
            slow = await gov.get(f"/v1/enterprises/{uscc}/score", params={"run_id": run_id})
            assert fast.status_code == slow.status_code, (uscc, fast.text, slow.text)
            assert fast.json() == slow.json(), uscc
            assert fast.headers["content-type"] == "application/json"
        older = await gov.get(f"/v1/enterprises/{data.uscc[0]}/score", params={"period": 2024})
        assert older.status_code == 200 and older.json()["period"] == 2024
        assert (await gov.get("/v1/enterprises/91330108000000000X/score")).status_code in (404, 422)
    uscc = scored_uscc(published)[0]
    async with published.client("scoring", "enterprise", uscc=uscc) as me:
        fast = (await me.get(f"/v1/enterprises/{uscc}/score")).json()
        slow = (await me.get(f"/v1/enterprises/{uscc}/score", params={"run_id": run_id})).json()
    assert fast == slow and fast["reasons"] and fast["improvements"]
