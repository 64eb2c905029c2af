"""For banks that prefer to pull: the notification feed; and the webhook delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.credit.models import OutboxMessage, WebhookDelivery
from services.credit.notifications.dispatcher import message_id
from shared.auth.deps import CurrentPrincipal
from shared.auth.principal import Principal, PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1", tags=["notifications"], route_class=CommittingRoute)


class FeedItem(BaseModel):
    id: int = Field(description="Cursor position; pass the last one as `after`")
    message_id: str = Field(description="The webhook-id the same message is pushed with")
    type: str
    bank_id: str
    data: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None


class Feed(BaseModel):
    items: list[FeedItem]
    next_after: int


class DeliveryOut(BaseModel):
    id: int
    message_id: str
    bank_id: str
    attempt: int
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime


def _bank_scope(principal: Principal, bank_id: str | None) -> str | None:
    """The bank whose messages the caller may read (None: all)."""
    if principal.kind is PrincipalKind.BANK:
        return principal.bank_id
    if principal.kind in (PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE):
        return bank_id
    raise Forbidden("The notification feed is for bank systems")


@router.get("/feed", response_model=Feed, responses=problem_responses(401, 403, 422))
async def feed(
    session: DbSession,
    principal: CurrentPrincipal,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    bank_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Feed:
    """The bank's notifications after a cursor it keeps, oldest first (pushed or not)."""
    scope = _bank_scope(principal, bank_id)
    stmt = select(OutboxMessage).where(OutboxMessage.id > after)
    if scope is not None:
        stmt = stmt.where(OutboxMessage.bank_id == scope)
    rows = list(await session.scalars(stmt.order_by(OutboxMessage.id).limit(limit)))
    items = [
        FeedItem(
            id=m.id,
            message_id=message_id(m.id),
            type=m.type,
            bank_id=m.bank_id,
            data=m.payload,
            created_at=m.created_at,
            delivered_at=m.delivered_at,
        )
        for m in rows
    ]
    return Feed(items=items, next_after=rows[-1].id if rows else after)


@router.get(
    "/webhook-deliveries",
    response_model=Page[DeliveryOut],
    responses=problem_responses(401, 403, 422),
)
async def deliveries(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    bank_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[DeliveryOut]:
    """Every delivery attempt, newest first: status, error, duration."""
    scope = _bank_scope(principal, bank_id)
    stmt = select(WebhookDelivery)
    if scope is not None:
        stmt = stmt.where(WebhookDelivery.bank_id == scope)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(WebhookDelivery.id.desc()).limit(paging.limit).offset(paging.offset)
    )
    items = [
        DeliveryOut(
            id=d.id,
            message_id=message_id(d.message_id),
            bank_id=d.bank_id,
            attempt=d.attempt,
            url=d.url,
            status_code=d.status_code,
            error=d.error,
            duration_ms=d.duration_ms,
            at=d.at,
        )
        for d in rows
    ]
    return Page[DeliveryOut].of(items, total, paging)
