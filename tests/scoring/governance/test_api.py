"""The validation and challenger APIs end to end in-process: scoring reads credit's outcomes
over HTTP with its service token; loans are made and reported through credit's API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from devtools.backbook import backbook
from devtools.bank_simulator import create_bank_simulator
from tests.credit.conftest import BANKS, SECRETS, SEEDED_PRODUCTS, CreditWorld, webhook_targets
from tests.platform import Platform
from tests.scoring_fixtures import demo, evaluate_and_publish, import_period

N, SEED = 600, 1
LOANS = 90


@dataclass
class Governed:
    world: CreditWorld
    run_2024: str
    run_2025: str
    bad: dict[str, bool]


async def _lend(world: CreditWorld, uscc: str, bank: str, reports: list[dict[str, Any]]) -> None:
    app = await world.submit(uscc, bank, amount=150_000)
    async with world.bank(bank) as b:
        r = await b.post(
            f"/v1/applications/{app['id']}/decision",
            json={"decision": "approve", "amount": 150_000, "rate": 3.3, "term_months": 12},
        )
        assert r.status_code == 200, r.text
        assert (await b.post(f"/v1/applications/{app['id']}/disburse")).status_code == 200
        for body in reports:
            r = await b.post(f"/v1/loans/{app['id']}/outcomes", json={**body, "synthetic": True})
            assert r.status_code == 201, r.text


@pytest.fixture
async def governed(platform: Platform) -> Governed:
    """2024 published, LOANS synthetic loans on it with their 2025 reported; then 2025."""
    platform.apps["bank-sim"] = create_bank_simulator(SECRETS)
    await platform.start("scoring")
    await import_period(platform, N, SEED, 2024)
    run_2024 = await evaluate_and_publish(platform, 2024)
    await platform.start(
        "credit", sync_interval=0, outbox_interval=0, bank_webhooks=webhook_targets()
    )
    world = CreditWorld(platform, run_2024)
    await world.sync()
    data = demo(N, SEED)
    book = backbook(data, 2024)
    row = {str(u): i for i, u in enumerate(data.uscc)}
    eligible = await world.eligible(LOANS)
    bad: dict[str, bool] = {}
    for n, s in enumerate(eligible):
        i = row[s["uscc"]]
        await _lend(world, s["uscc"], BANKS[n % 3], book.path(i, 150_000))
        bad[s["uscc"]] = bool(book.bad[i])
    await import_period(platform, N, SEED, 2025)
    run_2025 = await evaluate_and_publish(platform, 2025)
    return Governed(world, run_2024, run_2025, bad)


async def _scores(world: CreditWorld, run_id: str) -> dict[str, dict[str, Any]]:
    world.run_id = run_id
    return {s["uscc"]: s for s in await world.scores()}


async def test_validation_contract_and_statistics(governed: Governed) -> None:
    p = governed.world.platform
    assert any(governed.bad.values()) and not all(governed.bad.values())
    async with p.client("scoring", "government") as gov:
        r = await gov.get("/v1/models/1.0/validation", params={"period": 2024})
        assert r.status_code == 200, r.text
        v = r.json()
        again = (await gov.get("/v1/models/1.0/validation", params={"period": 2024})).json()
    for key in ("auc", "ks", "gini", "psi", "tiers"):
        assert key in v
    assert {"tier", "count", "bad", "bad_rate"} <= set(v["tiers"][0])
    assert v["run_id"] == governed.run_2024 and v["synthetic"] is True
    assert v["psi"] is None and v["reference_run_id"] is None  # no 2023
    assert v["cached"] is False and again["cached"] is True
    assert again["auc"] == v["auc"] and again["outcomes_snapshot"] == v["outcomes_snapshot"]
    assert {d["name"] for d in v["provenance"]["inputs"]} >= {"score", "tier", "bad"}
    assert v["provenance"]["run_id"] == governed.run_2024
    # The AUC is sklearn's on the published scores and the reported outcomes.
    scores = await _scores(governed.world, governed.run_2024)
    seen = [u for u in governed.bad if scores[u]["scored"]]
    y = np.array([governed.bad[u] for u in seen], dtype=int)
    total = np.round(np.array([scores[u]["total"] for u in seen], dtype=float), 2)
    assert v["observed"] == len(seen)
    # Higher score, lower risk: the AUC of "good" on the score.
    assert v["auc"] == pytest.approx(roc_auc_score(1 - y, total), abs=1e-9)
    assert v["gini"] == pytest.approx(2 * v["auc"] - 1, abs=1e-9)
    lo, hi = v["discrimination"]["auc_ci"]["low"], v["discrimination"]["auc_ci"]["high"]
    assert lo <= v["auc"] <= hi
    assert sum(t["bad"] for t in v["tiers"]) == int(y.sum())
    assert v["rank_ordering"] is not None
    assert {f["grouping"] for f in v["fairness"]} == {"stage", "industry", "district", "age_band"}
    names = {m["metric"] for m in v["fairness"][0]["metrics"]}
    assert names == {
        "mean_score",
        "top_two_tiers",
        "line_at_or_above_base",
        "approval_rate",
        "default_rate",
    }
    assert v["outcomes"]["approved"] == len(governed.bad)


async def test_stability_next_period_and_who_may_read(governed: Governed) -> None:
    p = governed.world.platform
    async with p.client("scoring", "bank", bank_id=BANKS[0]) as bank:
        r = await bank.get("/v1/models/1.0/validation", params={"period": 2025})
        assert r.status_code == 200, r.text
        v = r.json()
    assert v["reference_run_id"] == governed.run_2024
    assert v["psi"] is not None and v["psi_flag"] in ("stable", "watch", "act")
    assert v["auc"] is None and v["observed"] == 0  # no loans on the 2025 scores yet
    assert v["migration"] is not None and v["characteristics"]
    assert {c["flag"] for c in v["characteristics"]} <= {"stable", "watch", "act"}
    async with p.client("scoring", "enterprise", uscc="91330108MA2XXXXXX1") as ent:
        assert (await ent.get("/v1/models/1.0/validation?period=2024")).status_code == 403
    async with p.client("scoring", "government") as gov:
        assert (await gov.get("/v1/models/9.9/validation?period=2024")).status_code == 404
        assert (await gov.get("/v1/models/1.0/validation?period=2019")).status_code == 404
        assert (await gov.get("/v1/models/1.0/validation?period=x")).status_code == 422
        r = await gov.get("/v1/models/1.0/validation?period=2024&disparity_threshold=2")
        assert r.status_code == 422
        history = (await gov.get("/v1/models/1.0/validations")).json()
    assert [h["period"] for h in history] == [2025]
    # Credit down: a 502 problem, not a half-computed report.
    await p.stop("credit")
    async with p.client("scoring", "government") as gov:
        r = await gov.get("/v1/models/1.0/validation", params={"period": 2024, "min_group_size": 5})
        assert r.status_code == 502 and r.headers["content-type"].startswith("application/problem")


async def test_challenger_shadow_report_and_publish_link(governed: Governed) -> None:
    p = governed.world.platform
    async with p.client("scoring", "government") as gov:
        r = await gov.post(
            "/v1/models",
            json={"version": "1.1", "base_version": "1.0", "tier_bands": [0.2, 0.2, 0.2, 0.2, 0.2]},
        )
        assert r.status_code == 201, r.text
        r = await gov.post("/v1/models/1.1/challenger", json={"period": 2024})
        assert r.status_code == 201, r.text
        rep = r.json()
        shadow = rep["shadow_run_id"]
        # The shadow run is never published nor put in notice.
        r = await gov.post(f"/v1/evaluations/{shadow}/publish")
        assert r.status_code == 409 and r.json()["type"].endswith("shadow-run")
        r = await gov.post("/v1/models/1.1/publish")
        assert r.status_code == 200
        model = r.json()
        assert model["challenger_report_id"] == rep["id"]
        assert model["challenger_report"] == f"/v1/challenger-reports/{rep['id']}"
        assert model["published_by"]
        assert (await gov.get("/v1/models/1.1")).json()["challenger_report_id"] == rep["id"]
    body = rep["report"]
    assert rep["champion_run_id"] == governed.run_2024 and rep["champion_version"] == "1.0"
    assert set(body["distributions"]) == {"champion", "challenger"}
    d = body["distributions"]["challenger"]
    assert sum(d["histogram"]["counts"]) == d["scored"]
    assert body["migration"]["count"] > 0
    assert body["validation"]["status"] == "ok"
    assert set(body["validation"]["change"]) == {"auc", "ks", "gini", "psi"}
    assert body["downstream"]["credit"]["status"] == "ok"
    assert "gained" in body["downstream"]["credit"]["counts"]
    # Credit still serves 2024 (not synced since): the what-if is against the champion.
    assert body["downstream"]["credit"]["baseline_is_champion"] is True
    async with p.client("scoring", "bank", bank_id=BANKS[1]) as bank:
        r = await bank.get(f"/v1/challenger-reports/{rep['id']}")
        assert r.status_code == 200
        assert (
            await bank.post("/v1/models/1.0/challenger", json={"period": 2024})
        ).status_code == 403
    assert SEEDED_PRODUCTS  # the loans above went to the seeded products


async def test_challenger_in_the_background(governed: Governed) -> None:
    """`wait: false` answers 202 at once; the shadow run is evaluated and the report stored
    by the background job, the same report a waiting request gets."""
    p = governed.world.platform
    async with p.client("scoring", "government") as gov:
        r = await gov.post("/v1/models", json={"version": "1.2", "base_version": "1.0"})
        assert r.status_code == 201, r.text
        r = await gov.post(
            "/v1/models/1.2/challenger", json={"period": 2024, "wait": False, "downstream": False}
        )
        assert r.status_code == 202, r.text
        started = r.json()
        assert started["status"] == "running" and r.headers["location"] == started["run"]
        assert started["champion_run_id"] == governed.run_2024
        reports: list[dict[str, Any]] = []
        for _ in range(600):
            reports = (await gov.get(started["reports"])).json()
            if reports:
                break
            await asyncio.sleep(0.1)
        assert len(reports) == 1, "the background job stored no report"
        rep = reports[0]
        run = (await gov.get(started["run"])).json()
    assert rep["shadow_run_id"] == started["shadow_run_id"] == run["id"]
    assert run["status"] == "completed" and run["model_version"] == "1.2"
    assert rep["report"]["downstream"] == {"status": "not asked"}
    assert rep["report"]["migration"]["count"] > 0
