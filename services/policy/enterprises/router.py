"""One enterprise's matches, with the explanation of each, and its push feed (一键配).

An enterprise sees only itself; the government and the other services see every enterprise.
Only the enterprise itself marks its pushes read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import (
    NoPublishedEvaluation,
    UnknownEnterprise,
    UsccPath,
    checked_uscc,
)
from services.policy.criteria import (
    STATUSES,
    Actual,
    CriterionOutcome,
    GroupOutcome,
    PointsOutcome,
    Result,
    RuleOutcome,
    Status,
    Threshold,
)
from services.policy.matching.service import active_rules, current_evaluation
from services.policy.models import EnterpriseFacts, Match, Push
from shared.auth.deps import CurrentPrincipal, Enterprise, ensure_enterprise_access
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, NotFound, problem_responses
from shared.pagination import Paging

router = APIRouter(prefix="/v1/enterprises", tags=["matches"], route_class=CommittingRoute)

# Most useful first: what the firm can claim, then what it is close to.
_ORDER: dict[str, int] = {"eligible": 0, "near": 1, "unknown": 2, "ineligible": 3}


class CriterionOut(BaseModel):
    id: str
    label_zh: str
    result: Result
    actual: Actual
    threshold: Threshold
    gap: float | None = Field(description="Signed change of `actual` that would pass, in `unit`")
    unit: str
    clause: str
    missing: list[str] = Field(default_factory=list, description="Facts absent (unknown)")


class MatchOut(BaseModel):
    kind: Literal["pool", "policy"]
    code: str
    policy_id: str | None
    version: int | None
    title: str
    status: Status
    blocking: list[str] = Field(description="When near: the criteria to close")
    missing_facts: list[str]
    criteria: list[CriterionOut]


class MatchList(BaseModel):
    uscc: str
    name: str
    stage: str | None
    score: float | None
    run_id: str
    period: int
    items: list[MatchOut]


class PushOut(BaseModel):
    id: int
    kind: Literal["pool", "policy"]
    code: str
    title: str
    status: Status
    run_id: str | None
    created_at: datetime
    read_at: datetime | None
    read: bool


class PushPage(BaseModel):
    items: list[PushOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None
    unread: int


def _criteria(outcome: RuleOutcome) -> list[CriterionOut]:
    """Every leaf, depth first; a points group (a self-evaluation) is one criterion whose
    actual is the points scored and threshold the pass mark."""
    out: list[CriterionOut] = []
    stack: list[CriterionOutcome | GroupOutcome | PointsOutcome] = [outcome.root]
    while stack:
        node = stack.pop()
        if isinstance(node, GroupOutcome):
            stack.extend(reversed(node.items))
        elif isinstance(node, PointsOutcome):
            out.append(
                CriterionOut(
                    id=node.id,
                    label_zh=node.label_zh,
                    result=node.result,
                    actual=node.total,
                    threshold=node.pass_at,
                    gap=node.gap,
                    unit="分",
                    clause=node.clause,
                    missing=node.missing,
                )
            )
        else:
            out.append(
                CriterionOut(
                    id=node.id,
                    label_zh=node.label_zh,
                    result=node.result,
                    actual=node.actual,
                    threshold=node.threshold,
                    gap=node.gap,
                    unit=node.unit,
                    clause=node.clause,
                    missing=node.missing,
                )
            )
    return out


async def _facts(session: AsyncSession, uscc: str) -> EnterpriseFacts:
    row = await session.get(EnterpriseFacts, uscc)
    if row is None:
        if await current_evaluation(session) is None:
            raise NoPublishedEvaluation("No published evaluation has been received from scoring")
        raise UnknownEnterprise(f"{uscc} is not in the current published evaluation")
    return row


@router.get(
    "/{uscc}/matches",
    response_model=MatchList,
    summary="Pools and policies for one enterprise, each with every criterion explained",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def matches(
    uscc: UsccPath,
    session: DbSession,
    principal: CurrentPrincipal,
    kind: Annotated[Literal["pool", "policy"] | None, Query()] = None,
    status: Annotated[list[Status] | None, Query(description="Only these statuses")] = None,
) -> MatchList:
    code = checked_uscc(uscc)
    ensure_enterprise_access(principal, code)
    facts = await _facts(session, code)
    evaluation = await current_evaluation(session)
    assert evaluation is not None
    stored = {
        m.rule_key: m.status for m in await session.scalars(select(Match).where(Match.uscc == code))
    }
    items: list[MatchOut] = []
    for rule in await active_rules(session):
        if rule.key not in stored or (kind is not None and rule.kind != kind):
            continue
        st = STATUSES[stored[rule.key]]
        if status and st not in status:
            continue
        # The stored row is what was matched and pushed; the one-enterprise path gives the
        # same status (a property the engine's tests check) plus actual values and thresholds.
        outcome = rule.compiled.evaluate(facts.facts)
        items.append(
            MatchOut(
                kind=rule.kind,
                code=rule.code,
                policy_id=str(rule.policy_id) if rule.policy_id else None,
                version=rule.version,
                title=rule.title,
                status=st,
                blocking=outcome.blocking,
                missing_facts=outcome.missing_facts,
                criteria=_criteria(outcome),
            )
        )
    items.sort(key=lambda m: (_ORDER[m.status], m.kind != "pool"))
    return MatchList(
        uscc=code,
        name=facts.name,
        stage=facts.stage,
        score=facts.score,
        run_id=str(evaluation.run_id),
        period=evaluation.period,
        items=items,
    )


def _push_out(p: Push) -> PushOut:
    kind, _, code = p.rule_key.partition(":")
    return PushOut(
        id=p.id,
        kind=kind,
        code=code,
        title=p.title,
        status=STATUSES[p.status],
        run_id=str(p.run_id) if p.run_id else None,
        created_at=p.created_at,
        read_at=p.read_at,
        read=p.read_at is not None,
    )


@router.get(
    "/{uscc}/pushes",
    response_model=PushPage,
    summary="The enterprise's push feed, newest first",
    responses=problem_responses(401, 403, 422),
)
async def pushes(
    uscc: UsccPath,
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    unread: Annotated[bool, Query(description="Only pushes not yet read")] = False,
) -> PushPage:
    code = checked_uscc(uscc)
    ensure_enterprise_access(principal, code)
    query = select(Push).where(Push.uscc == code)
    if unread:
        query = query.where(Push.read_at.is_(None))
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    unread_count = (
        await session.execute(select(func.count()).where(Push.uscc == code, Push.read_at.is_(None)))
    ).scalar_one()
    rows = await session.scalars(
        query.order_by(Push.id.desc()).limit(paging.limit).offset(paging.offset)
    )
    items = [_push_out(p) for p in rows]
    nxt = paging.offset + len(items)
    return PushPage(
        items=items,
        total=total,
        limit=paging.limit,
        offset=paging.offset,
        next_offset=nxt if nxt < total else None,
        unread=unread_count,
    )


@router.post(
    "/{uscc}/pushes/{push_id}/read",
    response_model=PushOut,
    summary="Mark a push read (idempotent)",
    responses=problem_responses(401, 403, 404, 422),
)
async def read_push(
    uscc: UsccPath, push_id: int, session: DbSession, principal: Enterprise
) -> PushOut:
    code = checked_uscc(uscc)
    if principal.uscc != code:
        raise Forbidden("Only the enterprise itself marks its pushes read")
    push = (
        await session.scalars(
            select(Push).where(Push.id == push_id, Push.uscc == code).with_for_update()
        )
    ).first()
    if push is None:
        raise NotFound(f"No push {push_id} for {code}")
    if push.read_at is None:
        push.read_at = datetime.now(UTC)
        await session.flush()
    return _push_out(push)
