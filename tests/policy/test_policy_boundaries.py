"""Every pool's rules at their boundaries, through the service against real PostgreSQL.

The engine tests (test_definitions.py) hold the cases; here each becomes an enterprise of a
population stored the way a sync stores it, matched by the bulk path into `matches`, and read
back through `GET /v1/enterprises/{uscc}/matches`: exactly at the threshold, just past it,
and with data missing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy.conftest import PolicyWorld, item, usccs
from tests.policy.test_definitions import BASES, JUST_PAST

# (pool, facts, expected status, failing criterion or None, gap)
CASES: list[tuple[str, dict[str, Any], str, str | None, float | None]] = [
    (code, base, "eligible", None, None) for code, base in sorted(BASES.items())
]
CASES += [
    (code, {**BASES[code], **change}, status, cid, gap)
    for code, change, cid, gap, status in JUST_PAST
]
# Missing data: a fact each pool reads, dropped, is unknown, never a failure.
MISSING = {
    "hnte": "rd_ratio_3y",
    "st_sme": "employees",
    "eaglet": "rd_expense",
    "gazelle": "revenue_growth_prev",
    "little_giant": "debt_ratio",
    "unicorn": "valuation_usd_m",
    "quasi_unicorn": "private_funded",
}
CASES += [
    (code, {k: v for k, v in BASES[code].items() if k != fact}, "unknown", None, None)
    for code, fact in sorted(MISSING.items())
]


async def _matches(world: PolicyWorld, uscc: str) -> dict[str, Any]:
    async with world.enterprise(uscc) as c:
        r = await c.get(f"/v1/enterprises/{uscc}/matches", params={"kind": "pool"})
    assert r.status_code == 200, r.text
    return {m["code"]: m for m in r.json()["items"]}


async def test_every_pool_at_its_boundaries(bare_policy: PolicyWorld) -> None:
    codes = usccs(len(CASES))
    report = await bare_policy.load(
        [item(u, facts) for u, (_, facts, *_rest) in zip(codes, CASES, strict=True)]
    )
    assert report.enterprises == len(CASES)
    for uscc, (pool, facts, status, cid, gap) in zip(codes, CASES, strict=True):
        match = (await _matches(bare_policy, uscc))[pool]
        assert match["status"] == status, (pool, facts, match)
        criteria = {c["id"]: c for c in match["criteria"]}
        for c in match["criteria"]:
            assert set(c) >= {"id", "result", "actual", "threshold", "gap", "clause"}
        if status == "unknown":
            assert MISSING[pool] in match["missing_facts"]
            assert any(c["result"] == "unknown" for c in match["criteria"])
        if cid is not None:
            assert criteria[cid]["result"] == "fail", (pool, cid)
            assert criteria[cid]["gap"] == (pytest.approx(gap) if gap is not None else None)
            assert criteria[cid]["clause"]
            if status == "near":
                assert cid in match["blocking"]


async def test_members_and_reserve_lists_follow_the_boundaries(bare_policy: PolicyWorld) -> None:
    codes = usccs(len(CASES))
    await bare_policy.load(
        [item(u, facts) for u, (_, facts, *_rest) in zip(codes, CASES, strict=True)]
    )
    async with bare_policy.government() as gov:
        for pool in sorted(BASES):
            expected = {
                u
                for u, (p, _f, status, *_r) in zip(codes, CASES, strict=True)
                if p == pool and status == "near"
            }
            r = await gov.get(f"/v1/pools/{pool}/members", params={"near": "true", "limit": 500})
            assert r.status_code == 200, r.text
            body = r.json()
            listed = {m["uscc"] for m in body["items"]}
            # Other pools' cases may be near this pool too; ours must all be there.
            assert expected <= listed, pool
            for m in body["items"]:
                assert m["unmet"], m
                assert all(u["result"] == "fail" for u in m["unmet"])
            assert sum(body["counts_by_stage"].values()) == body["total"]
            if expected:
                assert body["failing_criteria"]
