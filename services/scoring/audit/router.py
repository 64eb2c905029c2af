"""Reading the audit log: the government's view of who did what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.scoring.audit import service
from shared.auth.deps import GovernmentCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["audit"], route_class=CommittingRoute)

SubjectType = Literal["run", "objection", "evidence", "fact"]


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    detail: dict[str, Any]


@router.get(
    "/audit-events",
    response_model=Page[AuditEventOut],
    summary="Who did what to which run, objection or value, newest first",
    responses=problem_responses(401, 403),
)
async def audit_events(
    session: DbSession,
    _: GovernmentCaller,
    paging: Paging,
    subject_type: Annotated[SubjectType | None, Query()] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[AuditEventOut]:
    rows, total = await service.events(
        session, subject_type, subject_id, paging.limit, paging.offset
    )
    return Page.of(
        [AuditEventOut.model_validate(r, from_attributes=True) for r in rows], total, paging
    )
