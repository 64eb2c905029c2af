"""The policy service end to end: scoring publishes, policy follows its feed and matches;
policies are written, versioned, tried, published and archived; pushes; bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.policy.matching.service import recompute
from shared.errors import UpstreamError
from tests.policy.conftest import DEMO_SEED, DEMO_SIZE, PolicyWorld, item, usccs
from tests.scoring_fixtures import demo, evaluate_and_publish

PROBLEM = "application/problem+json"
GROWTH_STAR_ELIGIBLE = "rule_key = 'policy:growth_star' AND status = 0"

DRAFT: dict[str, Any] = {
    "code": "growth_star",
    "title_zh": "成长之星奖励",
    "department_zh": "杭州高新区(滨江)科学技术局",
    "summary_zh": "对创新积分较高的成长期企业给予奖励。",
    "benefits": [{"kind": "reward", "description_zh": "奖励20万元", "amount_wan": 20}],
    "valid_from": "2026-01-01",
    "valid_to": "2099-12-31",
    "pools": ["hnte"],
    "criteria": {
        "kind": "all",
        "id": "growth_star",
        "items": [
            {
                "id": "growth_star.score",
                "fact": "score",
                "op": ">=",
                "threshold": 60,
                "label_zh": "创新积分不低于60分",
                "clause": "第二条",
            },
            {
                "id": "growth_star.stage",
                "fact": "stage",
                "op": "in",
                "threshold": ["growth", "expansion"],
                "label_zh": "成长期或壮大期",
                "clause": "第二条",
            },
        ],
    },
}


async def _rows(world: PolicyWorld, sql: str) -> list[Any]:
    async with world.app.state.sessionmaker() as session:
        return list((await session.execute(text(sql))).tuples())


async def _any_uscc(world: PolicyWorld, n: int = 1) -> list[str]:
    rows = await _rows(world, "SELECT uscc FROM policy.enterprise_facts ORDER BY uscc")
    return [r[0] for r in rows[:n]]


# --------------------------------------------------------------------------------------------
# Matching after a publication, idempotence, feed resume
# --------------------------------------------------------------------------------------------


async def test_matching_after_publish(world: PolicyWorld) -> None:
    rows = await _rows(world, "SELECT count(*), count(DISTINCT rule_key) FROM policy.matches")
    assert rows == [(300 * 21, 21)]  # 7 pools + 14 seeded policies
    async with world.government() as gov:
        pools = (await gov.get("/v1/pools")).json()["items"]
        assert [p["code"] for p in pools][:3] == ["st_sme", "eaglet", "hnte"]
        for pool in pools:
            r = await gov.get(f"/v1/pools/{pool['code']}/members", params={"limit": 500})
            body = r.json()
            assert body["total"] == pool["members"]
            assert body["counts_by_stage"] == {
                s: c["members"] for s, c in pool["by_stage"].items() if c["members"]
            }
            r = await gov.get(f"/v1/pools/{pool['code']}/members", params={"near": "true"})
            assert r.json()["total"] == pool["reserve"]
        hnte = next(p for p in pools if p["code"] == "hnte")
        assert hnte["target_stage"] == "growth" and hnte["members"] > 0 and hnte["reserve"] > 0
        near = (await gov.get("/v1/pools/hnte/members", params={"near": "true"})).json()
        first = near["items"][0]
        assert first["status"] == "near" and first["unmet"]
        assert all(u["gap"] is not None for u in first["unmet"])
    uscc = first["uscc"]
    async with world.enterprise(uscc) as me:
        r = await me.get(f"/v1/enterprises/{uscc}/matches")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == world.run_id and len(body["items"]) == 21
    hnte_match = next(m for m in body["items"] if m["code"] == "hnte")
    assert hnte_match["status"] == "near" and hnte_match["blocking"]
    blocking = {c["id"]: c for c in hnte_match["criteria"] if c["id"] in hnte_match["blocking"]}
    assert all(c["result"] == "fail" and c["gap"] is not None for c in blocking.values())
    statuses = [m["status"] for m in body["items"]]
    order = {"eligible": 0, "near": 1, "unknown": 2, "ineligible": 3}
    assert statuses == sorted(statuses, key=order.__getitem__)


async def test_recompute_is_idempotent(world: PolicyWorld) -> None:
    snapshot = "SELECT uscc, rule_key, status, failing::text FROM policy.matches ORDER BY 1, 2"
    before = await _rows(world, snapshot)
    pushes = await _rows(world, "SELECT count(*) FROM policy.pushes")
    assert pushes[0][0] > 0
    async with world.app.state.sessionmaker() as session, session.begin():
        report = await recompute(session)
    assert report.pushes == 0 and report.rows == len(before)
    assert await _rows(world, snapshot) == before
    # The feed has nothing new: a second sync applies nothing.
    again = await world.sync()
    assert again.events == 0 and again.imported == []
    assert await _rows(world, "SELECT count(*) FROM policy.pushes") == pushes


async def test_feed_resumes_after_downtime(world: PolicyWorld) -> None:
    cursor = await _rows(world, "SELECT position FROM policy.consumer_cursors")
    await world.platform.stop("policy")
    # While policy is down, scoring publishes a new run of the period.
    new_run = await evaluate_and_publish(world.platform, 2025)
    await world.platform.start("policy", sync_interval=0)
    report = await world.sync()
    assert report.imported == [new_run] and report.events == 1
    assert report.cursor > cursor[0][0]
    assert await _rows(world, "SELECT run_id::text FROM policy.evaluations") == [(new_run,)]
    async with world.government() as gov:
        uscc = (await _any_uscc(world))[0]
        r = await gov.get(f"/v1/enterprises/{uscc}/matches")
        assert r.json()["run_id"] == new_run
    # Same facts: nothing new to push.
    assert report.pushes == 0


async def test_scoring_down_keeps_the_cursor(world: PolicyWorld) -> None:
    await world.platform.stop("scoring")
    before = await _rows(world, "SELECT position FROM policy.consumer_cursors")
    with pytest.raises(UpstreamError, match="scoring"):
        await world.sync()
    assert await _rows(world, "SELECT position FROM policy.consumer_cursors") == before


# --------------------------------------------------------------------------------------------
# Policies: versions, what-if, publication, archive
# --------------------------------------------------------------------------------------------


async def _draft_and_what_if(gov: httpx.AsyncClient, world: PolicyWorld) -> tuple[str, Any]:
    """A draft (version 1, one per code) and its what-if on the current run."""
    r = await gov.post("/v1/policies", json=DRAFT)
    assert r.status_code == 201, r.text
    policy = r.json()
    pid = str(policy["id"])
    assert (policy["status"], policy["version"], policy["version_status"]) == (
        "draft",
        1,
        "draft",
    )
    assert r.headers["location"] == f"/v1/policies/{pid}"
    assert (await gov.post("/v1/policies", json=DRAFT)).status_code == 409

    r = await gov.post(f"/v1/policies/{pid}/what-if")
    assert r.status_code == 200, r.text
    what_if = r.json()
    assert what_if["population"] == 300 and what_if["run_id"] == world.run_id
    assert sum(what_if["counts"].values()) == 300
    assert set(what_if["by_stage"]) <= {
        "seed",
        "seedling",
        "growth",
        "expansion",
        "mature",
        "unstaged",
    }
    for stage in ("seed", "seedling", "mature"):
        assert what_if["by_stage"].get(stage, {}).get("eligible", 0) == 0
    eligible = what_if["counts"]["eligible"]
    assert eligible > 0
    assert sum(s["eligible"] for s in what_if["by_stage"].values()) == eligible
    return pid, what_if


async def _publish_then_edit(gov: httpx.AsyncClient, pid: str, what_if: Any) -> dict[str, Any]:
    """Publication as the what-if foretold; an edit starts version 2, version 1 stays live."""
    r = await gov.post(f"/v1/policies/{pid}/publish")
    assert r.status_code == 200, r.text
    published = r.json()
    assert published["status"] == "published" and published["published_version"] == 1
    # Who published is recorded (the principal's actor, here the client's subject).
    assert published["published_by"] == "test-government"
    assert published["archived_by"] is None
    assert published["matches"] == what_if["counts"]  # what-if foretold the publication
    assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 409

    v2 = {k: v for k, v in DRAFT.items() if k != "code"}
    v2["criteria"] = {
        **DRAFT["criteria"],
        "items": [dict(DRAFT["criteria"]["items"][0], threshold=70)],
    }
    r = await gov.put(f"/v1/policies/{pid}", json=v2)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["version_status"]) == (2, "draft")
    assert r.json()["published_version"] == 1
    r = await gov.get(f"/v1/policies/{pid}", params={"version": 1})
    assert r.json()["criteria"]["items"][0]["threshold"] == 60
    assert r.json()["version_status"] == "published"
    # A second edit of the draft stays version 2.
    r = await gov.put(f"/v1/policies/{pid}", json=v2)
    assert r.json()["version"] == 2
    r = await gov.post(f"/v1/policies/{pid}/what-if")
    assert r.json()["version"] == 2 and r.json()["published"] == what_if["counts"]
    assert r.json()["counts"]["eligible"] <= what_if["counts"]["eligible"]
    return v2


async def _an_eligible_enterprise_sees_version_1(world: PolicyWorld, pid: str) -> str:
    uscc = str(
        (
            await _rows(
                world,
                f"SELECT uscc FROM policy.matches WHERE {GROWTH_STAR_ELIGIBLE} "
                "ORDER BY uscc LIMIT 1",
            )
        )[0][0]
    )
    async with world.enterprise(uscc) as me:
        # Enterprises see the published version only.
        r = await me.get(f"/v1/policies/{pid}")
        assert r.status_code == 200 and r.json()["version"] == 1
        assert (await me.get(f"/v1/policies/{pid}", params={"version": 2})).status_code == 404
        pushes = (await me.get(f"/v1/enterprises/{uscc}/pushes")).json()
        assert any(
            p["code"] == "growth_star" and p["status"] == "eligible" for p in pushes["items"]
        )
    return uscc


async def _publish_version_2_then_archive(world: PolicyWorld, pid: str, v2: Any) -> None:
    async with world.government() as gov:
        r = await gov.post(f"/v1/policies/{pid}/publish")
        assert r.status_code == 200 and r.json()["version"] == 2
        assert (await gov.get(f"/v1/policies/{pid}", params={"version": 1})).json()[
            "version_status"
        ] == "superseded"
        matched = await _rows(
            world,
            f"SELECT count(*) FROM policy.matches WHERE {GROWTH_STAR_ELIGIBLE}",
        )
        assert matched[0][0] == r.json()["matches"]["eligible"]

        r = await gov.post(f"/v1/policies/{pid}/archive")
        assert r.status_code == 200 and r.json()["status"] == "archived"
        assert r.json()["archived_by"] == "test-government"
        assert (await gov.post(f"/v1/policies/{pid}/archive")).status_code == 409
        assert (await gov.put(f"/v1/policies/{pid}", json=v2)).status_code == 409
        assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 409
        assert await _rows(
            world, "SELECT count(*) FROM policy.matches WHERE rule_key = 'policy:growth_star'"
        ) == [(0,)]
        listed = (await gov.get("/v1/policies", params={"status": "archived"})).json()
        assert [p["code"] for p in listed["items"]] == ["growth_star"]


async def test_policy_lifecycle_with_versions_and_what_if(world: PolicyWorld) -> None:
    async with world.government() as gov:
        pid, what_if = await _draft_and_what_if(gov, world)
        v2 = await _publish_then_edit(gov, pid, what_if)
    uscc = await _an_eligible_enterprise_sees_version_1(world, pid)
    await _publish_version_2_then_archive(world, pid, v2)
    async with world.enterprise(uscc) as me:
        assert (await me.get(f"/v1/policies/{pid}")).status_code == 404
        codes = {
            m["code"] for m in (await me.get(f"/v1/enterprises/{uscc}/matches")).json()["items"]
        }
        assert "growth_star" not in codes
        # What was pushed stays in the feed.
        pushes = (await me.get(f"/v1/enterprises/{uscc}/pushes")).json()
        assert any(p["code"] == "growth_star" for p in pushes["items"])


async def test_broken_policy_is_never_published(world: PolicyWorld) -> None:
    broken = dict(DRAFT, code="broken")
    broken["criteria"] = {
        "kind": "all",
        "id": "broken",
        "items": [
            {"id": "b.fact", "fact": "turnover", "op": ">=", "threshold": 1, "label_zh": "营业额"},
            {"id": "b.type", "fact": "score", "op": ">=", "threshold": "sixty", "label_zh": "积分"},
            {"id": "b.op", "fact": "listed", "op": ">=", "threshold": 1, "label_zh": "上市"},
        ],
    }
    async with world.government() as gov:
        r = await gov.post("/v1/policies", json=broken)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        body = r.json()
        assert body["type"].endswith("/invalid-rule")
        codes = {(p["criterion_id"], p["code"]) for p in body["problems"]}
        assert codes == {
            ("b.fact", "unknown_fact"),
            ("b.type", "bad_threshold"),
            ("b.op", "op_not_allowed"),
        }
        unknown_op = dict(DRAFT, code="unknown_op")
        unknown_op["criteria"] = dict(DRAFT["criteria"]["items"][0], op="approximately")
        r = await gov.post("/v1/policies", json=unknown_op)
        assert r.status_code == 422
        assert [p["code"] for p in r.json()["problems"]] == ["unknown_op"]

        # Saved as an unfinished draft on request, it still cannot be tried or published.
        r = await gov.post("/v1/policies", params={"allow_problems": "true"}, json=broken)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert len(r.json()["problems"]) == 3
        r = await gov.post(f"/v1/policies/{pid}/publish")
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        assert len(r.json()["problems"]) == 3
        assert (await gov.post(f"/v1/policies/{pid}/what-if")).status_code == 422
        r = await gov.get(f"/v1/policies/{pid}")
        assert r.json()["status"] == "draft" and r.json()["published_version"] is None
        # Fixed, it publishes.
        r = await gov.put(
            f"/v1/policies/{pid}", json={k: v for k, v in DRAFT.items() if k != "code"}
        )
        assert r.status_code == 200 and r.json()["problems"] == []
        assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 200


async def test_bad_input_is_a_clear_problem(world: PolicyWorld) -> None:
    valid_unknown = usccs(1)[0]  # a well-formed code of an enterprise not evaluated
    async with world.government() as gov:
        cases = [
            ("GET", "/v1/enterprises/not-a-uscc/matches", None, 422, "invalid-uscc"),
            ("GET", f"/v1/enterprises/{valid_unknown}/matches", None, 404, "unknown-enterprise"),
            ("GET", "/v1/enterprises/91330108MA2XXXXXXX/pushes", None, 422, "invalid-uscc"),
            ("GET", "/v1/pools/dragon/members", None, 404, "pool-not-found"),
            ("GET", "/v1/pools/hnte/members?limit=100000", None, 422, "validation-error"),
            (
                "GET",
                "/v1/policies/0b0c6f7e-1d7c-4a43-9d55-0a8b1d5e9f00",
                None,
                404,
                "policy-not-found",
            ),
            ("GET", "/v1/policies/not-a-uuid", None, 422, "validation-error"),
            ("POST", "/v1/policies", {"code": "x"}, 422, "validation-error"),
            ("POST", "/v1/policies", dict(DRAFT, code="Bad Code"), 422, "validation-error"),
            ("POST", "/v1/policies", dict(DRAFT, code="p2", pools=["dragon"]), 422, "unknown-pool"),
            (
                "POST",
                "/v1/policies",
                dict(DRAFT, code="p3", valid_to="2025-01-01"),
                422,
                "validation-error",
            ),
            ("POST", "/v1/policies", dict(DRAFT, code="p4", criteria=[1]), 422, "validation-error"),
            (
                "POST",
                "/v1/policies",
                dict(DRAFT, code="p5", criteria={"op": ">="}),
                422,
                "invalid-rule",
            ),
        ]
        for method, path, body, status, slug in cases:
            r = await gov.request(method, path, json=body)
            assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"] == PROBLEM, path
            assert r.json()["type"].endswith("/" + slug), (path, r.json())
    rows = await _rows(world, "SELECT count(*) FROM policy.policies WHERE NOT seeded")
    assert rows == [(0,)]  # nothing half-written


async def test_no_evaluation_yet(bare_policy: PolicyWorld) -> None:
    uscc = usccs(1)[0]
    async with bare_policy.government() as gov:
        r = await gov.get(f"/v1/enterprises/{uscc}/matches")
        assert r.status_code == 409 and r.json()["type"].endswith("/no-published-evaluation")
        pid = (await gov.get("/v1/policies")).json()["items"][0]["id"]
        assert (await gov.post(f"/v1/policies/{pid}/what-if")).status_code == 409
        pools = (await gov.get("/v1/pools")).json()["items"]
        assert len(pools) == 7 and all(p["members"] == 0 for p in pools)


# --------------------------------------------------------------------------------------------
# Pushes (一键配)
# --------------------------------------------------------------------------------------------


async def test_pushes_feed_read_and_new_matches(bare_policy: PolicyWorld) -> None:
    from tests.policy.test_definitions import BASES

    a, b = usccs(2)
    hnte = {**BASES["hnte"], "operating_revenue": 5000, "rd_ratio_3y": 4.5}  # near: R&D 0.5 short
    await bare_policy.load([item(a, hnte, stage="growth", total=80), item(b, BASES["gazelle"])])
    async with bare_policy.enterprise(a) as me:
        feed = (await me.get(f"/v1/enterprises/{a}/pushes")).json()
        assert feed["total"] == feed["unread"] > 0
        near = [p for p in feed["items"] if p["code"] == "hnte"]
        assert [p["status"] for p in near] == ["near"]
        pid = near[0]["id"]
        r = await me.post(f"/v1/enterprises/{a}/pushes/{pid}/read")
        assert r.status_code == 200 and r.json()["read"] is True
        first_read = r.json()["read_at"]
        r = await me.post(f"/v1/enterprises/{a}/pushes/{pid}/read")
        assert r.json()["read_at"] == first_read  # idempotent
        unread = (await me.get(f"/v1/enterprises/{a}/pushes", params={"unread": "true"})).json()
        assert unread["total"] == feed["total"] - 1 == unread["unread"]
        assert pid not in {p["id"] for p in unread["items"]}
        assert (await me.post(f"/v1/enterprises/{a}/pushes/999999/read")).status_code == 404

    # The next evaluation: same near match, nothing new; once eligible, pushed again.
    await bare_policy.load([item(a, hnte, stage="growth", total=80)], event_id=2)
    async with bare_policy.enterprise(a) as me:
        assert (await me.get(f"/v1/enterprises/{a}/pushes")).json()["total"] == feed["total"]
    await bare_policy.load(
        [item(a, {**hnte, "rd_ratio_3y": 5}, stage="growth", total=80)], event_id=3
    )
    async with bare_policy.enterprise(a) as me:
        latest = (await me.get(f"/v1/enterprises/{a}/pushes")).json()
        hnte_pushes = [p["status"] for p in latest["items"] if p["code"] == "hnte"]
        assert hnte_pushes == ["eligible", "near"]  # newest first


# --------------------------------------------------------------------------------------------
# Authorization
# --------------------------------------------------------------------------------------------


async def test_authorization(world: PolicyWorld) -> None:
    a, b = await _any_uscc(world, 2)
    async with world.platform.client("policy") as anon:
        for path in ("/v1/pools", "/v1/policies", f"/v1/enterprises/{a}/matches"):
            r = await anon.get(path)
            assert r.status_code == 401 and r.headers["content-type"] == PROBLEM
    async with world.government() as gov:
        pid = (await gov.post("/v1/policies", json=DRAFT)).json()["id"]
    async with world.enterprise(b) as eb:
        assert (await eb.get(f"/v1/enterprises/{a}/matches")).status_code == 403
        assert (await eb.get(f"/v1/enterprises/{a}/pushes")).status_code == 403
        push_a = (await _rows(world, f"SELECT id FROM policy.pushes WHERE uscc = '{a}' LIMIT 1"))[
            0
        ][0]
        assert (await eb.post(f"/v1/enterprises/{a}/pushes/{push_a}/read")).status_code == 403
        assert (await eb.post(f"/v1/enterprises/{b}/pushes/{push_a}/read")).status_code == 404
        assert (await eb.get(f"/v1/enterprises/{b}/matches")).status_code == 200
        # Enterprises read pools and published policies, nothing else.
        assert (await eb.get("/v1/pools")).status_code == 200
        assert (await eb.get("/v1/pools/hnte/members")).status_code == 403
        assert (await eb.get(f"/v1/policies/{pid}")).status_code == 404  # a draft
        listed = (await eb.get("/v1/policies", params={"status": "draft"})).json()
        assert {p["status"] for p in listed["items"]} == {"published"}
        for method, path in [
            ("POST", "/v1/policies"),
            ("PUT", f"/v1/policies/{pid}"),
            ("POST", f"/v1/policies/{pid}/publish"),
            ("POST", f"/v1/policies/{pid}/archive"),
            ("POST", f"/v1/policies/{pid}/what-if"),
        ]:
            body = (
                DRAFT
                if method == "POST" and path == "/v1/policies"
                else ({k: v for k, v in DRAFT.items() if k != "code"} if method == "PUT" else None)
            )
            r = await eb.request(method, path, json=body)
            assert r.status_code == 403, (method, path)
    async with world.service() as svc, world.bank() as bank:
        assert (await svc.get("/v1/pools/hnte/members")).status_code == 200
        assert (await svc.get(f"/v1/enterprises/{a}/matches")).status_code == 200
        assert (await svc.post(f"/v1/policies/{pid}/publish")).status_code == 403
        assert (await bank.get(f"/v1/enterprises/{a}/matches")).status_code == 403
        assert (await bank.post(f"/v1/policies/{pid}/archive")).status_code == 403
    async with world.government() as gov:
        # Only the enterprise marks its own pushes read.
        assert (await gov.post(f"/v1/enterprises/{a}/pushes/{push_a}/read")).status_code == 403
        assert (await gov.get(f"/v1/enterprises/{a}/pushes")).status_code == 200
        r = await gov.get(f"/v1/policies/{pid}")
        assert r.json()["status"] == "draft"  # nothing the others tried took effect


async def test_a_lapsed_policy_is_no_longer_matched(world: PolicyWorld) -> None:
    from datetime import date, timedelta

    yesterday = (date.today() - timedelta(days=1)).isoformat()
    lapsed = dict(DRAFT, code="lapsed_star", valid_from="2020-01-01", valid_to=yesterday)
    uscc = str(demo(DEMO_SIZE, DEMO_SEED).uscc[0])
    async with world.government() as gov:
        r = await gov.post("/v1/policies", json=lapsed)
        assert r.status_code == 201, r.text
        r = await gov.post(f"/v1/policies/{r.json()['id']}/publish")
        assert r.status_code == 200, r.text
        items = (await gov.get(f"/v1/enterprises/{uscc}/matches")).json()["items"]
    codes = {m["code"] for m in items}
    assert "lapsed_star" not in codes
    assert any(m["kind"] == "policy" for m in items), "policies in force are still matched"
