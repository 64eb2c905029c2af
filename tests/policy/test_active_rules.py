"""`active_rules` reads the rules with one raw query and reuses what it compiled for a rule
whose content it has seen: it must answer exactly what the ORM query it replaced answered,
and see at once a publication, an archive, a rule edited in place and a validity that lapses
(nothing is invalidated: the cache is keyed on the rows' content)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, text

from services.policy.matching.service import ActiveRule, _active, active_rules
from services.policy.models import CultivationPool, Policy, PolicyVersion
from tests.policy.conftest import PolicyWorld
from tests.policy.test_policy_service import DRAFT


async def _reference(session: Any) -> list[ActiveRule]:
    """The ORM query `active_rules` used before its raw query and cache."""
    out: list[ActiveRule] = []
    pools = await session.scalars(select(CultivationPool).order_by(CultivationPool.position))
    for pool in pools:
        out.append(_active("pool", pool.code, pool.name_zh, pool.rule))
    rows = await session.execute(
        select(Policy, PolicyVersion)
        .join(PolicyVersion, PolicyVersion.policy_id == Policy.id)
        .where(
            PolicyVersion.status == "published",
            PolicyVersion.valid_from <= func.current_date(),
            or_(PolicyVersion.valid_to.is_(None), PolicyVersion.valid_to >= func.current_date()),
        )
        .order_by(Policy.code)
    )
    for policy, version in rows.tuples():
        out.append(
            _active(
                "policy", policy.code, version.title_zh, version.rule, policy.id, version.version
            )
        )
    return out


def _view(rules: list[ActiveRule]) -> list[tuple[Any, ...]]:
    return [
        (r.key, r.kind, r.code, r.title, r.policy_id, r.version, r.fingerprint, r.leaves, r.rule)
        for r in rules
    ]


async def _check(world: PolicyWorld) -> list[ActiveRule]:
    async with world.app.state.sessionmaker() as session:
        first = await active_rules(session)
        again = await active_rules(session)  # from the cache
        assert _view(first) == _view(again) == _view(await _reference(session))
    return first


async def test_active_rules_follow_every_change_at_once(world: PolicyWorld) -> None:
    before = await _check(world)
    assert len(before) == 21 and all(isinstance(r.policy_id, type(None)) for r in before[:7])
    async with world.government() as gov:
        r = await gov.post("/v1/policies", json=DRAFT)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 200
    published = await _check(world)
    assert "policy:growth_star" in {r.key for r in published} and len(published) == 22

    # A rule edited in place (as the seed does for pools) and a validity that lapses today,
    # with no event: the next read sees both.
    async with world.app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE policy.pools SET rule = jsonb_set(rule, '{root,id}', '\"edited\"') "
                "WHERE code = 'hnte'"
            )
        )
        await session.execute(
            text(
                "UPDATE policy.policy_versions SET valid_to = current_date - 1 "
                "WHERE policy_id = CAST(:p AS uuid)"
            ),
            {"p": pid},
        )
    edited = await _check(world)
    assert "policy:growth_star" not in {r.key for r in edited}
    hnte = next(r for r in edited if r.key == "pool:hnte")
    assert hnte.rule["root"]["id"] == "edited"
    assert hnte.fingerprint != next(r for r in published if r.key == "pool:hnte").fingerprint


async def test_a_published_policy_is_matched_and_explained_at_once(world: PolicyWorld) -> None:
    """Through the route: its rules were read (and cached) before the publication."""
    async with world.app.state.sessionmaker() as session:
        (uscc,) = (
            await session.execute(text("SELECT uscc FROM policy.enterprise_facts LIMIT 1"))
        ).one()
    async with world.government() as gov:
        before = (await gov.get(f"/v1/enterprises/{uscc}/matches")).json()["items"]
        assert "growth_star" not in {m["code"] for m in before}
        r = await gov.post("/v1/policies", json=DRAFT)
        pid = r.json()["id"]
        assert (await gov.post(f"/v1/policies/{pid}/publish")).status_code == 200
        after = (await gov.get(f"/v1/enterprises/{uscc}/matches")).json()["items"]
        assert len(after) == len(before) + 1
        match = next(m for m in after if m["code"] == "growth_star")
        assert match["policy_id"] == pid and match["version"] == 1 and match["criteria"]
        assert (await gov.post(f"/v1/policies/{pid}/archive")).status_code == 200
        archived = (await gov.get(f"/v1/enterprises/{uscc}/matches")).json()["items"]
        assert "growth_star" not in {m["code"] for m in archived}
