"""Pools: their criteria and member counts, and the members or reserve list of one, read from
the stored matches (the counts as stored with them, the members' explanations on demand)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.criteria import CriterionOutcome, PointsOutcome, RuleOutcome
from services.policy.matching.repository import enterprises_with_status, rule_summaries
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
    """Members and reserve by stage, as counted when the pool was matched."""
    keys = None if code is None else [f"pool:{code}"]
    out: dict[str, dict[str, StageCount]] = {}
    for summary in await rule_summaries(session, keys):
        if not summary.rule_key.startswith("pool:"):
            continue
        by_stage = out.setdefault(summary.rule_key.removeprefix("pool:"), {})
        for stage, counts in summary.counts["by_stage"].items():
            if counts[ELIGIBLE] or counts[NEAR]:
                by_stage[stage] = StageCount(members=counts[ELIGIBLE], reserve=counts[NEAR])
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
    await _pool(session, code)  # 404 for a pool that does not exist
    status = NEAR if near else ELIGIBLE
    key = f"pool:{code}"
    matched = await rule_summaries(session, [key])
    if not matched:
        return _page([], 0, paging, {})
    summary = matched[0]
    by_stage = {
        s: c[status]
        for s, c in summary.counts["by_stage"].items()
        if c[status] and (stage is None or s == stage)
    }
    rows = await enterprises_with_status(session, key, status, stage, paging.limit, paging.offset)
    # Explained with the rule the statuses were matched with (the pool's, unless it has just
    # changed and its recompute is being committed).
    rule = compiled(summary.rule)[0]
    info = leaf_info(rule.rule)
    items = [
        Member(
            uscc=r.uscc,
            name=r.name,
            stage=r.stage,
            score=r.score,
            tier=r.tier,
            status="near" if near else "eligible",
            unmet=_blocking(rule.evaluate(r.facts, near_max=summary.near_max), info)
            if near
            else [],
        )
        for r in rows
    ]
    failing: dict[str, int] = {}
    if near:
        # Counted from the stored failing criteria when the pool was matched.
        for s, per_leaf in summary.counts["near_failing"].items():
            if stage is None or s == stage:
                for leaf, n in per_leaf.items():
                    failing[leaf] = failing.get(leaf, 0) + int(n)
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
