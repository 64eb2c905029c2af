"""Pools: their criteria and member counts, and the members or reserve list of one, read from
the stored matches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.criteria import CriterionOutcome, PointsOutcome, RuleOutcome
from services.policy.matching.service import ELIGIBLE, NEAR, LeafInfo, compiled, leaf_info
from services.policy.models import CultivationPool
from services.policy.pools.schemas import Gap, Member, MemberPage, PoolList, PoolOut, StageCount
from shared.errors import NotFound
from shared.pagination import PageParams


class PoolNotFound(NotFound):
    slug = "pool-not-found"
    title = "No such cultivation pool"


async def _counts(
    session: AsyncSession, code: str | None = None
) -> dict[str, dict[str, StageCount]]:
    rows = await session.execute(
        text(
            "SELECT m.rule_key, coalesce(f.stage, 'unstaged') AS stage, m.status, count(*) "
            "FROM policy.matches m JOIN policy.enterprise_facts f ON f.uscc = m.uscc "
            "WHERE m.status IN (0, 1) AND m.rule_key LIKE 'pool:%' "
            "AND (CAST(:key AS text) IS NULL OR m.rule_key = :key) "
            "GROUP BY 1, 2, 3"
        ),
        {"key": f"pool:{code}" if code else None},
    )
    out: dict[str, dict[str, StageCount]] = {}
    for key, stage, status, n in rows.tuples():
        counts = out.setdefault(key.removeprefix("pool:"), {}).setdefault(stage, StageCount())
        if status == ELIGIBLE:
            counts.members += n
        else:
            counts.reserve += n
    return out


def _pool_out(pool: CultivationPool, by_stage: dict[str, StageCount]) -> PoolOut:
    return PoolOut(
        code=pool.code,
        name_zh=pool.name_zh,
        name_en=pool.name_en,
        target_stage=pool.target_stage,
        clause=pool.clause,
        sources=pool.sources,
        approximations=pool.approximations,
        criteria=pool.rule.get("root", {}),
        members=sum(c.members for c in by_stage.values()),
        reserve=sum(c.reserve for c in by_stage.values()),
        by_stage=dict(sorted(by_stage.items())),
    )


async def _pool(session: AsyncSession, code: str) -> CultivationPool:
    pool = await session.get(CultivationPool, code)
    if pool is None:
        raise PoolNotFound(f"No cultivation pool {code!r}")
    return pool


async def list_pools(session: AsyncSession) -> PoolList:
    counts = await _counts(session)
    pools = await session.scalars(select(CultivationPool).order_by(CultivationPool.position))
    items = [_pool_out(p, counts.get(p.code, {})) for p in pools]
    return PoolList(items=items, total=len(items))


async def get_pool(session: AsyncSession, code: str) -> PoolOut:
    pool = await _pool(session, code)
    return _pool_out(pool, (await _counts(session, code)).get(code, {}))


async def members(
    session: AsyncSession, code: str, paging: PageParams, *, near: bool, stage: str | None
) -> MemberPage:
    pool = await _pool(session, code)
    status = NEAR if near else ELIGIBLE
    params: dict[str, Any] = {"key": f"pool:{code}", "status": status, "stage": stage}
    where = (
        "m.rule_key = :key AND m.status = :status "
        "AND (CAST(:stage AS text) IS NULL OR coalesce(f.stage, 'unstaged') = :stage)"
    )
    base = "FROM policy.matches m JOIN policy.enterprise_facts f ON f.uscc = m.uscc WHERE " + where
    by_stage = {
        str(s): int(n)
        for s, n in (
            await session.execute(
                text(f"SELECT coalesce(f.stage, 'unstaged'), count(*) {base} GROUP BY 1"), params
            )
        ).tuples()
    }
    rows = await session.execute(
        text(
            f"SELECT f.uscc, f.name, f.stage, f.score, f.tier, f.facts {base} "
            "ORDER BY f.score DESC NULLS LAST, f.uscc LIMIT :limit OFFSET :offset"
        ),
        {**params, "limit": paging.limit, "offset": paging.offset},
    )
    rule = compiled(pool.rule)[0]
    info = leaf_info(rule.rule)
    items = [
        Member(
            uscc=r.uscc,
            name=r.name,
            stage=r.stage,
            score=r.score,
            tier=r.tier,
            status="near" if near else "eligible",
            unmet=_blocking(rule.evaluate(r.facts), info) if near else [],
        )
        for r in rows
    ]
    failing: dict[str, int] = {}
    if near:
        # From the stored per-criterion detail: what holds the reserve list back, overall.
        leaves = compiled(pool.rule)[1]
        for pos, n in (
            await session.execute(
                text(
                    "SELECT e.pos, count(*) FROM policy.matches m "
                    "JOIN policy.enterprise_facts f ON f.uscc = m.uscc "
                    "CROSS JOIN LATERAL jsonb_array_elements(m.detail) "
                    "WITH ORDINALITY AS e(value, pos) "
                    f"WHERE {where} AND e.value->>0 = '0' GROUP BY 1"
                ),
                params,
            )
        ).tuples():
            if 0 < pos <= len(leaves):
                failing[leaves[pos - 1]] = int(n)
        failing = dict(sorted(failing.items(), key=lambda kv: (-kv[1], kv[0])))
    page = _page(items, sum(by_stage.values()), paging, dict(sorted(by_stage.items())))
    page.failing_criteria = failing
    return page


def _blocking(outcome: RuleOutcome, info: dict[str, LeafInfo]) -> list[Gap]:
    """The criteria a near firm has to close (the cheapest way), each with its gap."""
    out = []
    for cid in outcome.blocking:
        node = outcome.find(cid)
        leaf = info.get(cid)
        gap = node.gap if isinstance(node, CriterionOutcome | PointsOutcome) else None
        out.append(
            Gap(
                id=cid,
                label_zh=node.label_zh,
                result=node.result,
                gap=gap,
                unit=leaf.unit if leaf else "",
                clause=node.clause,
            )
        )
    return out


def _page(
    items: list[Member], total: int, paging: PageParams, by_stage: dict[str, int]
) -> MemberPage:
    nxt = paging.offset + len(items)
    return MemberPage(
        items=items,
        total=total,
        limit=paging.limit,
        offset=paging.offset,
        next_offset=nxt if nxt < total else None,
        counts_by_stage=by_stage,
    )
