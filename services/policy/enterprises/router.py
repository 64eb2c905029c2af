"""One enterprise's matches, with the explanation of each, and its push feed (一键配).

An enterprise sees only itself; the government and the other services see every enterprise.
Only the enterprise itself marks its pushes read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.policy.criteria import Status
from services.policy.enterprises import service
from services.policy.enterprises.schemas import MatchList, PushOut, PushPage
from shared.auth.deps import OwnUSCC, VisibleUSCC
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Paging

router = APIRouter(prefix="/v1/enterprises", tags=["matches"], route_class=CommittingRoute)


@router.get(
    "/{uscc}/matches",
    response_model=MatchList,
    summary="Pools and policies for one enterprise, each with every criterion explained",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def matches(
    uscc: VisibleUSCC,
    session: DbSession,
    kind: Annotated[Literal["pool", "policy"] | None, Query()] = None,
    status: Annotated[list[Status] | None, Query(description="Only these statuses")] = None,
) -> dict[str, Any]:
    # Plain data, validated and serialised once by the response model.
    return await service.matches(session, uscc, kind, status)


@router.get(
    "/{uscc}/pushes",
    response_model=PushPage,
    summary="The enterprise's push feed, newest first",
    responses=problem_responses(401, 403, 422),
)
async def pushes(
    uscc: VisibleUSCC,
    session: DbSession,
    paging: Paging,
    unread: Annotated[bool, Query(description="Only pushes not yet read")] = False,
) -> PushPage:
    return await service.pushes(session, uscc, paging, unread=unread)


@router.post(
    "/{uscc}/pushes/{push_id}/read",
    response_model=PushOut,
    summary="Mark a push read (idempotent)",
    responses=problem_responses(401, 403, 404, 422),
)
async def read_push(uscc: OwnUSCC, push_id: int, session: DbSession) -> PushOut:
    return await service.read_push(session, uscc, push_id)
