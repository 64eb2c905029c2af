"""Cultivation pools (培育库): their criteria for everyone; members and the reserve list
(near-eligible) for the government and the other services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.policy.pools import service
from services.policy.pools.schemas import MemberPage, PoolList, PoolOut
from shared.auth.deps import CurrentPrincipal, GovernmentOrServiceCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Paging

router = APIRouter(prefix="/v1/pools", tags=["pools"], route_class=CommittingRoute)


@router.get(
    "",
    response_model=PoolList,
    summary="The pools, each with its target stage, criteria and member counts by stage",
    responses=problem_responses(401),
)
async def list_pools(session: DbSession, _: CurrentPrincipal) -> PoolList:
    return await service.list_pools(session)


@router.get(
    "/{code}",
    response_model=PoolOut,
    summary="One pool",
    responses=problem_responses(401, 404),
)
async def get_pool(code: str, session: DbSession, _: CurrentPrincipal) -> PoolOut:
    return await service.get_pool(session, code)


@router.get(
    "/{code}/members",
    response_model=MemberPage,
    summary="Members of a pool, or with `near=true` its reserve list, best score first",
    responses=problem_responses(401, 403, 404, 422),
)
async def members(
    code: str,
    session: DbSession,
    _: GovernmentOrServiceCaller,
    paging: Paging,
    near: Annotated[bool, Query(description="The reserve list: near-eligible firms")] = False,
    stage: Annotated[str | None, Query(max_length=16)] = None,
) -> MemberPage:
    return await service.members(session, code, paging, near=near, stage=stage)
