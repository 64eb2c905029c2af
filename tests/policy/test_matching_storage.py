"""What matching stores (statuses and failing criteria per rule, as vectors) and what it
computes on demand (the explanation): the explanation is what the per-criterion detail of
bulk matching says, it follows the rule as matched across version changes, and pushes after a
new evaluation are exactly the new ones."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from services.policy.background import startup
from services.policy.criteria import STATUSES, FactTable
from services.policy.matching.population import (
    USCC_COLUMN,
    Population,
    align,
    decode_columns,
    encode_columns,
    population_from_items,
)
from services.policy.matching.repository import enterprise_entry
from services.policy.matching.service import (
    active_rules,
    load_population,
    match_population,
    recompute,
    stale_rules,
)
from tests.policy.conftest import PolicyWorld, item, usccs
from tests.policy.test_definitions import BASES
from tests.policy.test_policy_service import DRAFT

RESULT = {1: "pass", 0: "fail", -1: "unknown"}


async def _rows(world: PolicyWorld, sql: str, **params: Any) -> list[Any]:
    async with world.app.state.sessionmaker() as session:
        return list((await session.execute(text(sql), params)).tuples())


async def _population(world: PolicyWorld) -> tuple[list[Any], Population]:
    async with world.app.state.sessionmaker() as session:
        return await active_rules(session), await load_population(session)


def _by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{m['kind']}:{m['code']}": m for m in body["items"]}


async def test_explanation_on_demand_is_the_detail_bulk_matching_stored(
    world: PolicyWorld,
) -> None:
    """Every criterion's result and gap, computed for one enterprise when asked, equal the
    per-criterion detail of the bulk evaluation (what `matches.detail` used to hold), and the
    stored status and failing criteria are that evaluation's."""
    rules, population = await _population(world)
    detail = {
        r.key: r.compiled.evaluate_table(population.table, near_max=2, detail=True) for r in rules
    }
    failing = {
        (k, u): list(f)
        for k, u, f in await _rows(world, "SELECT rule_key, uscc, failing FROM policy.matches")
    }
    assert len(failing) == population.n * len(rules)
    checked = 0
    async with world.government() as gov:
        for pos in range(0, population.n, 7):
            uscc = str(population.usccs[pos])
            r = await gov.get(f"/v1/enterprises/{uscc}/matches")
            assert r.status_code == 200, r.text
            items = _by_key(r.json())
            assert set(items) == {rule.key for rule in rules}
            for rule in rules:
                match, bulk = items[rule.key], detail[rule.key]
                assert match["status"] == STATUSES[bulk.status[pos]]
                criteria = {c["id"]: c for c in match["criteria"]}
                assert list(criteria) == list(rule.leaves)
                for leaf in rule.leaves:
                    c = criteria[leaf]
                    assert c["result"] == RESULT[int(bulk.results[leaf][pos])], (rule.key, leaf)
                    gaps = bulk.gaps.get(leaf)
                    gap = None if gaps is None or math.isnan(gaps[pos]) else float(gaps[pos])
                    if gap is None:
                        assert c["gap"] is None
                    else:
                        assert c["gap"] == pytest.approx(gap, rel=1e-9, abs=1e-9)
                fails = [leaf for leaf in rule.leaves if criteria[leaf]["result"] == "fail"]
                assert failing[(rule.key, uscc)] == fails
                checked += 1
    assert checked >= 40 * len(rules)


async def test_pure_matching_equals_what_is_stored(world: PolicyWorld) -> None:
    """`match_population` (no I/O) on the stored population gives the stored vectors."""
    rules, population = await _population(world)
    results = match_population(rules, population, near_max=2)
    stored = dict(
        await _rows(world, "SELECT rule_key, statuses || ''::bytea FROM policy.rule_matches")
    )
    for result in results:
        assert bytes(stored[result.rule.key]) == result.status.tobytes()
        view = await _rows(
            world,
            "SELECT uscc, failing FROM policy.matches WHERE rule_key = :k ORDER BY uscc",
            k=result.rule.key,
        )
        assert [list(f) for _, f in view] == [result.failing_ids(i) for i in range(population.n)]


async def test_explanation_follows_the_rule_version_that_was_matched(world: PolicyWorld) -> None:
    async with world.government() as gov:
        pid = (await gov.post("/v1/policies", json=DRAFT)).json()["id"]
        assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 200
    rows = await _rows(
        world,
        "SELECT m.uscc FROM policy.matches m JOIN policy.enterprise_facts f USING (uscc) "
        "WHERE m.rule_key = 'policy:growth_star' AND m.status = 0 AND f.score < 70 "
        "ORDER BY m.uscc LIMIT 1",
    )
    assert rows, "the demo population has a growth-stage firm scoring 60-70"
    uscc = rows[0][0]

    async def growth_star() -> dict[str, Any]:
        async with world.enterprise(uscc) as me:
            r = await me.get(f"/v1/enterprises/{uscc}/matches", params={"kind": "policy"})
            assert r.status_code == 200, r.text
            return _by_key(r.json())["policy:growth_star"]

    v1 = await growth_star()
    assert v1["version"] == 1 and v1["status"] == "eligible"
    assert v1["criteria"][0]["threshold"] == 60 and v1["criteria"][0]["result"] == "pass"
    assert await growth_star() == v1  # reproducible

    # A draft of version 2 changes nothing that was matched or explained.
    v2 = {k: v for k, v in DRAFT.items() if k != "code"}
    v2["criteria"] = {
        **DRAFT["criteria"],
        "items": [dict(DRAFT["criteria"]["items"][0], threshold=70), DRAFT["criteria"]["items"][1]],
    }
    async with world.government() as gov:
        assert (await gov.put(f"/v1/policies/{pid}", json=v2)).status_code == 200
        assert await growth_star() == v1
        assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 200
    after = await growth_star()
    assert after["version"] == 2 and after["status"] in ("near", "ineligible")
    score = after["criteria"][0]
    assert score["threshold"] == 70 and score["result"] == "fail" and score["gap"] > 0
    assert (
        after["status"]
        == STATUSES[
            (
                await _rows(
                    world,
                    "SELECT status FROM policy.matches WHERE rule_key = 'policy:growth_star' "
                    "AND uscc = :u",
                    u=uscc,
                )
            )[0][0]
        ]
    )


def _bump_first_threshold(node: dict[str, Any]) -> tuple[str, float] | None:
    """Raise the first numeric `>=` threshold of a rule in place: (its id, the new value)."""
    if node.get("op") == ">=" and isinstance(node.get("threshold"), int | float):
        node["threshold"] = node["threshold"] * 2 + 1
        return node["id"], float(node["threshold"])
    for child in node.get("items", []):
        if isinstance(child, dict) and (found := _bump_first_threshold(child)):
            return found
    return None


async def test_a_rule_changed_since_matching_is_explained_as_matched(world: PolicyWorld) -> None:
    """Between a rule's change and the recompute that follows (a new release seeds a pool,
    another replica still serving), statuses and explanations stay those of the rule as
    matched; the recompute then brings both to the new rule."""
    (rule_json,) = (await _rows(world, "SELECT rule FROM policy.pools WHERE code = 'hnte'"))[0]
    changed = copy.deepcopy(rule_json)
    found = _bump_first_threshold(changed["root"])
    assert found is not None
    leaf, threshold = found
    uscc = (await _rows(world, "SELECT uscc FROM policy.enterprise_facts ORDER BY uscc"))[0][0]

    async def hnte() -> dict[str, Any]:
        async with world.government() as gov:
            r = await gov.get(f"/v1/enterprises/{uscc}/matches", params={"kind": "pool"})
            return _by_key(r.json())["pool:hnte"]

    before = await hnte()
    async with world.app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE policy.pools SET rule = CAST(:r AS jsonb) WHERE code = 'hnte'"),
            {"r": json.dumps(changed)},
        )
    assert await hnte() == before
    async with world.app.state.sessionmaker() as session, session.begin():
        assert await stale_rules(session) == ["pool:hnte"]
        await recompute(session, await stale_rules(session))
    after = await hnte()
    assert {c["id"]: c["threshold"] for c in after["criteria"]}[leaf] == threshold


async def test_startup_matches_rules_without_stored_vectors(world: PolicyWorld) -> None:
    """After the migration to vectors (no stored matches, no fact columns), startup
    recomputes: the same statuses, and the columns rebuilt from the stored facts."""
    snapshot = "SELECT rule_key, uscc, status, failing FROM policy.matches ORDER BY 1, 2"
    before = await _rows(world, snapshot)
    pushes = await _rows(world, "SELECT count(*) FROM policy.pushes")
    async with world.app.state.sessionmaker() as session, session.begin():
        # Then, the facts were a JSON document per enterprise (and there were no columns).
        for (uscc,) in await _rows(world, "SELECT uscc FROM policy.enterprise_facts"):
            entry = await enterprise_entry(session, uscc)
            assert entry is not None
            await session.execute(
                text(
                    "UPDATE policy.enterprise_facts SET facts = CAST(:f AS jsonb) WHERE uscc = :u"
                ),
                {"f": json.dumps(entry.facts), "u": uscc},
            )
        await session.execute(text("DELETE FROM policy.rule_matches"))
        await session.execute(text("DELETE FROM policy.population_columns"))
    assert await _rows(world, snapshot) == []
    await startup(world.app)
    assert await _rows(world, snapshot) == before
    assert await _rows(world, "SELECT count(*) FROM policy.population_columns") != [(0,)]
    # Nothing was pushed twice: every match had been pushed already.
    assert await _rows(world, "SELECT count(*) FROM policy.pushes") == pushes


async def test_pushes_after_a_new_evaluation_are_exactly_the_new_ones(
    bare_policy: PolicyWorld,
) -> None:
    a, b, c = usccs(3)
    near_hnte = {**BASES["hnte"], "operating_revenue": 5000, "rd_ratio_3y": 4.5}
    gazelle = BASES["gazelle"]

    async def pushes() -> list[tuple[str, str, int]]:
        return await _rows(
            bare_policy, "SELECT uscc, rule_key, status FROM policy.pushes ORDER BY uscc, id"
        )

    await bare_policy.load(
        [item(a, near_hnte, stage="growth", total=80), item(b, gazelle)], event_id=1
    )
    first = await pushes()
    assert {u for u, _, _ in first} == {a, b}
    # The same firms again, and a newcomer: only the newcomer's matches are pushed.
    await bare_policy.load(
        [item(a, near_hnte, stage="growth", total=80), item(b, gazelle), item(c, gazelle)],
        event_id=2,
    )
    second = await pushes()
    assert sorted(p for p in second if p[0] != c) == sorted(first)
    assert sorted((k, s) for u, k, s in second if u == c) == sorted(
        (k, s) for u, k, s in first if u == b
    )
    # A firm leaves and comes back unchanged: what it was pushed is not pushed again.
    await bare_policy.load([item(c, gazelle)], event_id=3)
    await bare_policy.load([item(b, gazelle), item(c, gazelle)], event_id=4)
    assert sorted(await pushes()) == sorted(second)
    # Near becomes eligible: pushed again, as eligible, and only that.
    await bare_policy.load(
        [item(a, {**near_hnte, "rd_ratio_3y": 5}, stage="growth", total=80)], event_id=5
    )
    new = sorted(set(await pushes()) - set(second))
    assert ("pool:hnte", 0) in {(k, s) for _, k, s in new}
    assert all(u == a and s == 0 for u, _, s in new)


def test_fact_columns_are_read_against_the_vocabulary_they_were_written_with() -> None:
    """A release that reorders or drops words of a vocabulary still reads stored columns
    right: codes are re-expressed in today's words, a word gone is missing."""
    items = [
        {
            "uscc": u,
            "stage": stage,
            "facts": {"qualifications": quals, "operating_revenue": rev},
        }
        for u, stage, quals, rev in zip(
            usccs(4),
            ["growth", "seed", None, "mature"],
            [["hnte", "srdi"], [], None, ["st_sme"]],
            [800.0, None, 10.0, 2e5],
            strict=True,
        )
    ]
    population = population_from_items(items)
    encoded = encode_columns(population)
    assert encoded[0][0] == USCC_COLUMN
    same = decode_columns(encoded)
    assert same is not None
    for code, col in population.table.columns.items():
        np.testing.assert_array_equal(same.table.column(code), col)
    assert same.stages.tolist() == population.stages.tolist()

    # Stored by a release whose vocabularies were in reverse order and had an extra word.
    def older(name: str, dtype: str, vocabulary: list[str] | None, data: bytes) -> Any:
        if vocabulary is None:
            return name, dtype, vocabulary, data
        old = ["retired", *reversed(vocabulary)]
        col = np.frombuffer(data, dtype=dtype)
        if dtype == "<i8":
            out = np.where(col == -1, -1, 0)
            for i, word in enumerate(vocabulary):
                out |= np.where(col == -1, 0, ((col >> i) & 1) << old.index(word))
        else:
            index = np.array([old.index(w) for w in vocabulary], dtype=float)
            out = np.where(np.isnan(col), np.nan, index[np.nan_to_num(col).astype(int)])
        return name, dtype, old, np.ascontiguousarray(out, dtype=dtype).tobytes()

    read = decode_columns([older(*e) for e in encoded])
    assert read is not None
    for code, col in population.table.columns.items():
        np.testing.assert_array_equal(read.table.column(code), col)
    assert read.stages.tolist() == population.stages.tolist()


def test_statuses_line_up_across_populations_by_uscc() -> None:
    before = np.array(["A1", "B2", "C3", "D4"])
    after = np.array(["B2", "C3", "C9", "E5"])
    statuses = np.array([0, 1, 2, 3], dtype=np.uint8)
    assert align(statuses, before, after).tolist() == [1, 2, 255, 255]
    assert align(statuses, before, after[:0]).tolist() == []
    assert align(statuses[:0], before[:0], after).tolist() == [255] * 4


def test_an_empty_population_matches_nothing() -> None:
    empty = Population(np.array([], dtype=str), np.array([], dtype=object), FactTable(0, {}))
    assert decode_columns(encode_columns(empty)) is not None


async def test_a_new_evaluation_replaces_the_previous_rows_whole(world: PolicyWorld) -> None:
    """The new run's enterprises are the only ones stored after its sync (the previous
    run's partition dropped with the transaction), each read with the new run's statuses."""
    from tests.scoring_fixtures import publish_demo

    before = await _rows(world, "SELECT uscc FROM policy.enterprise_facts ORDER BY uscc")
    new_run = await publish_demo(world.platform, n=120, seed=3, period=2025)
    report = await world.sync()
    assert report.imported == [new_run]
    count = (await _rows(world, "SELECT enterprise_count FROM policy.evaluations"))[0][0]
    rows = await _rows(world, "SELECT uscc, run_id::text FROM policy.enterprise_facts")
    assert len(rows) == count == len(before) + 120
    assert {r for _, r in rows} == {new_run}
    partitions = await _rows(
        world,
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'policy.enterprise_facts'::regclass",
    )
    assert partitions == [("enterprise_facts_" + new_run.replace("-", ""),)]
    assert await _rows(world, "SELECT count(*) FROM policy.matches") == [(count * 21,)]
    async with world.app.state.sessionmaker() as session:
        for uscc in (before[0][0], rows[-1][0]):
            entry = await enterprise_entry(session, uscc)
            assert entry is not None and str(entry.run_id) == new_run
            assert len(entry.statuses) == 21


async def test_matching_started_ahead_is_used_only_for_the_rules_it_matched(
    world: PolicyWorld,
) -> None:
    """`recompute` takes the results of a `Matching` started for exactly its rules and
    population, and computes its own for anything else."""
    import asyncio
    import dataclasses

    from services.policy.matching.service import Matching

    async def stored() -> list[Any]:
        return await _rows(
            world, "SELECT rule_key, statuses, failing FROM policy.rule_matches ORDER BY 1"
        )

    expected = await stored()
    rules, population = await _population(world)
    # Results every enterprise of which is ineligible: told apart from what matching gives.
    forged = [
        dataclasses.replace(r, status=np.full_like(r.status, 2))
        for r in match_population(rules, population)
    ]

    def ahead(for_rules: list[Any]) -> Matching:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        future.set_result([f for f in forged if f.rule.key in {r.key for r in for_rules}])
        return Matching(for_rules, population, 2, asyncio.ensure_future(future))

    for matching, used in ((ahead(rules[:-1]), False), (ahead(rules), True)):
        async with world.app.state.sessionmaker() as session, session.begin():
            await recompute(session, population=population, push=False, matching=matching)
        statuses = {k: bytes(s) for k, s, _ in await stored()}
        if used:
            assert set(statuses.values()) == {bytes([2]) * population.n}
        else:
            assert statuses == {k: bytes(s) for k, s, _ in expected}
