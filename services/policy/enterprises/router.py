"""One enterprise's matches, with the explanation of each, and its push feed (一键配).

An enterprise sees only itself; the government and the other services see every enterprise.
Only the enterprise itself marks its pushes read.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.policy.common import UsccPath, checked_uscc
from services.policy.criteria import Status
from services.policy.enterprises import service
from services.policy.enterprises.schemas import MatchList, PushOut, PushPage
from shared.auth.deps import CurrentPrincipal, EnterpriseCaller, ensure_enterprise_access
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, problem_responses
from shared.pagination import Paging

router = APIRouter(prefix="/v1/enterprises", tags=["matches"], route_class=CommittingRoute)


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
    return await service.matches(session, code, kind, status)


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
    return await service.pushes(session, code, paging, unread=unread)


@router.post(
    "/{uscc}/pushes/{push_id}/read",
    response_model=PushOut,
    summary="Mark a push read (idempotent)",
    responses=problem_responses(401, 403, 404, 422),
)
async def read_push(
    uscc: UsccPath, push_id: int, session: DbSession, principal: EnterpriseCaller
) -> PushOut:
    code = checked_uscc(uscc)
    if principal.uscc != code:
        raise Forbidden("Only the enterprise itself marks its pushes read")
    return await service.read_push(session, code, push_id)
