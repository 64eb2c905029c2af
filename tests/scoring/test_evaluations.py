"""Evaluation runs end to end through the API: stored scores follow the rules, are
reproducible, publication is single per period and emits an event."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import text

from contracts.catalogue import INDICATOR_CODES
from services.scoring.engine import EngineInput, evaluate, fingerprint
from services.scoring.evaluations.repository import read_inputs, read_inputs_parallel
from services.scoring.provenance.repository import SOURCE_INDEX
from services.scoring.scores.packed import unpack
from services.scoring.specs.spec import DEFAULT_MODEL
from tests.platform import Platform
from tests.scoring_fixtures import demo, evaluate_and_publish, import_period, publish_demo

N = 300


async def all_scores(platform: Platform, run_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = None
    async with platform.client("scoring", "service") as svc:
        while True:
            params: dict[str, Any] = {"limit": 120}
            if after:
                params["after"] = after
            page = (await svc.get(f"/v1/evaluations/{run_id}/scores", params=params)).json()
            items += page["items"]
            after = page["next_after"]
            if after is None:
                return items


async def test_run_scores_everyone_within_stage_and_publishes(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=N, seed=7)
    items = await all_scores(platform, run_id)
    assert len(items) == N
    assert len({i["uscc"] for i in items}) == N
    data = demo(N, 7)
    flagged = {
        str(u)
        for u, m in zip(data.uscc, data.periods[2025].profile["negative_flags"], strict=True)
        if m
    }
    for item in items:
        if item["uscc"] in flagged:
            assert not item["scored"]
            assert item["exclusion"].startswith("negative_list:")
            assert item["total"] is None
        elif item["scored"]:
            assert 0 <= item["total"] <= 100
            dims = sum(d["score"] for d in item["dimensions"])
            assert math.isclose(dims, item["total"], abs_tol=1e-6)
            assert 1 <= item["tier"] <= 5
    # Ranks are a ranking of each cohort: rank 1 exists and rank <= cohort size.
    by_cohort: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item["scored"]:
            by_cohort.setdefault(item["cohort"], []).append(item)
    for members in by_cohort.values():
        assert min(m["rank"] for m in members) == 1
        assert all(m["rank"] <= m["cohort_size"] == len(members) for m in members)
        best = max(members, key=lambda m: m["total"])
        assert best["rank"] == 1 and best["tier"] == 5

    async with platform.client("scoring", "service") as svc:
        events = (await svc.get("/v1/events")).json()
        assert [e["type"] for e in events["items"]] == ["evaluation.published"]
        assert events["items"][0]["payload"]["run_id"] == run_id
        assert (await svc.get("/v1/events", params={"after": events["next_after"]})).json()[
            "items"
        ] == []


async def test_scores_reproduce_exactly_from_stored_inputs(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=N, seed=3)
    engine = platform.fastapi["scoring"].state.engine
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        inputs = await read_inputs(raw.driver_connection, 2025)
        fp = (
            await conn.execute(
                text("SELECT input_fingerprint FROM scoring.evaluation_runs WHERE id = :r"),
                {"r": run_id},
            )
        ).scalar_one()
        stored = (
            await conn.execute(
                text(
                    "SELECT enterprise_id, total, packed, values FROM scoring.scores "
                    "WHERE run_id = :r ORDER BY enterprise_id"
                ),
                {"r": run_id},
            )
        ).all()
    again = EngineInput(inputs.revenue, inputs.values, inputs.excluded_reason)
    assert fingerprint(again, DEFAULT_MODEL) == fp
    result = evaluate(again, DEFAULT_MODEL)
    assert [r[0] for r in stored] == list(inputs.enterprise_ids)
    assert inputs.sources is not None
    for i, (_, total, packed, values) in enumerate(stored):
        np.testing.assert_array_equal(np.asarray(values), inputs.values[i])
        dimension_percentiles, points, sources = unpack(packed)
        np.testing.assert_array_equal(np.asarray(sources), inputs.sources[i, :24])
        if result.scored[i]:
            assert total == result.total[i]
            np.testing.assert_array_equal(np.asarray(points), result.points[i])
            np.testing.assert_array_equal(
                np.asarray(dimension_percentiles), result.dimension_percentiles[i]
            )
        else:
            assert points == (0.0,) * 24 and all(math.isnan(p) for p in dimension_percentiles)


async def test_the_parallel_read_returns_what_one_connection_reads(platform: Platform) -> None:
    await publish_demo(platform, n=N, seed=4)
    engine = platform.fastapi["scoring"].state.engine
    async with engine.begin() as conn:
        # Some rows move to the heap's end, so the halves' ids interleave and need a sort.
        await conn.execute(
            text("UPDATE scoring.facts SET updated_at = now() WHERE enterprise_id % 3 = 0")
        )
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        serial = await read_inputs(raw.driver_connection, 2025)
    parallel = await read_inputs_parallel(engine, 2025, min_pages=0)
    assert serial.enterprise_ids.size == N
    assert any(serial.excluded_reason)
    np.testing.assert_array_equal(parallel.enterprise_ids, serial.enterprise_ids)
    np.testing.assert_array_equal(parallel.revenue, serial.revenue)
    np.testing.assert_array_equal(parallel.values, serial.values)
    np.testing.assert_array_equal(parallel.sources, serial.sources)
    assert list(parallel.excluded_reason) == list(serial.excluded_reason)


async def test_the_read_gives_each_row_its_own_sources(platform: Platform) -> None:
    """The read sends the sources array most rows share once; rows with sources of their own
    (an element changed, a NULL element, no array at all) get exactly theirs, in either read."""
    await publish_demo(platform, n=N, seed=4)
    engine = platform.fastapi["scoring"].state.engine
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE scoring.facts SET sources[3] = sources[3] + 1000 "
                "WHERE enterprise_id % 7 = 0"
            )
        )
        await conn.execute(
            text("UPDATE scoring.facts SET sources[1] = NULL WHERE enterprise_id % 11 = 0")
        )
        await conn.execute(
            text("UPDATE scoring.facts SET sources = NULL WHERE enterprise_id % 13 = 0")
        )
        picked = ", ".join(
            f"coalesce(f.sources[{SOURCE_INDEX[c]}], 0)"
            for c in (*INDICATOR_CODES, "operating_revenue")
        )
        expected = (
            await conn.execute(
                text(
                    f"SELECT f.enterprise_id, ARRAY[{picked}] FROM scoring.facts f "
                    "WHERE f.period = 2025 ORDER BY f.enterprise_id"
                )
            )
        ).all()
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        serial = await read_inputs(raw.driver_connection, 2025)
    parallel = await read_inputs_parallel(engine, 2025, min_pages=0)
    want = np.array([r[1] for r in expected], dtype=np.int32)
    assert len({tuple(r) for r in want}) > 3
    for inputs in (serial, parallel):
        np.testing.assert_array_equal(inputs.enterprise_ids, [r[0] for r in expected])
        assert inputs.sources is not None
        np.testing.assert_array_equal(inputs.sources, want)


async def test_the_read_gives_each_flagged_row_its_own_negative_list(platform: Platform) -> None:
    """The read finds the rows on the negative list in its own scan and fetches their flags
    by tuple id: each such row, and only those, is excluded with its flags, sorted, in
    either read (a row moved to the heap's end by an update included)."""
    await publish_demo(platform, n=N, seed=4)
    engine = platform.fastapi["scoring"].state.engine
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE scoring.facts SET negative_flags = CASE enterprise_id % 3 "
                "WHEN 0 THEN ARRAY['tax_arrears', 'court_enforcement'] "
                "WHEN 1 THEN ARRAY['pollution'] ELSE negative_flags END "
                "WHERE enterprise_id % 11 = 0"
            )
        )
        await conn.execute(
            text("UPDATE scoring.facts SET negative_flags = '{}' WHERE enterprise_id % 13 = 0")
        )
        expected = (
            await conn.execute(
                text(
                    "SELECT enterprise_id, negative_flags FROM scoring.facts "
                    "WHERE period = 2025 ORDER BY enterprise_id"
                )
            )
        ).all()
    want = ["negative_list:" + ",".join(sorted(flags)) if flags else None for _, flags in expected]
    assert 3 < sum(w is not None for w in want) < N
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        serial = await read_inputs(raw.driver_connection, 2025)
    parallel = await read_inputs_parallel(engine, 2025, min_pages=0)
    for inputs in (serial, parallel):
        np.testing.assert_array_equal(inputs.enterprise_ids, [r[0] for r in expected])
        assert list(inputs.excluded_reason) == want


async def test_a_second_run_supersedes_and_duplicate_publish_is_idempotent(
    platform: Platform,
) -> None:
    first = await publish_demo(platform, n=60, seed=5)
    second = await evaluate_and_publish(platform, 2025)
    async with platform.client("scoring", "government") as gov:
        assert (await gov.get(f"/v1/evaluations/{first}")).json()["status"] == "superseded"
        assert (await gov.get(f"/v1/evaluations/{second}")).json()["status"] == "published"
        again = await gov.post(f"/v1/evaluations/{second}/publish")
        assert again.status_code == 200
        runs = (await gov.get("/v1/evaluations", params={"status": "published"})).json()
        assert runs["total"] == 1
        events = (await gov.get("/v1/events")).json()["items"]
        assert [e["payload"]["run_id"] for e in events] == [first, second]
        # Bad input: unknown period, draft/unknown model.
        r = await gov.post("/v1/evaluations", json={"period": 2031, "wait": True})
        assert r.status_code == 409
        r = await gov.post("/v1/evaluations", json={"period": 2025, "model_version": "9.9"})
        assert r.status_code == 404
        r = await gov.post("/v1/evaluations", json={"period": "soon"})
        assert r.status_code == 422


async def test_background_run_completes(platform: Platform) -> None:
    await platform.start("scoring")
    await import_period(platform, 60, 9, 2024)
    async with platform.client("scoring", "government") as gov:
        r = await gov.post("/v1/evaluations", json={"period": 2024})
        assert r.status_code == 202
        assert r.headers["location"] == f"/v1/evaluations/{r.json()['id']}"
        import asyncio

        for _ in range(100):
            status = (await gov.get(r.headers["location"])).json()["status"]
            if status != "running":
                break
            await asyncio.sleep(0.05)
        assert status == "completed"


async def test_small_cohorts_are_merged_and_recorded(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=80, seed=11)
    async with platform.client("scoring", "government") as gov:
        run = (await gov.get(f"/v1/evaluations/{run_id}")).json()
    assert run["merges"], "80 firms over five stages must leave a cohort under 30"
    items = await all_scores(platform, run_id)
    merged_stages = {i["stage"] for i in items if i["scored"] and i["stage"] != i["cohort"]}
    assert merged_stages
    sizes: dict[str, int] = {}
    for i in items:
        if i["scored"]:
            sizes[i["cohort"]] = sizes.get(i["cohort"], 0) + 1
    assert all(s >= 30 for s in sizes.values()) or len(sizes) == 1
