"""Consents: an enterprise lets a bank see its score details (applying records one too)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.credit.common import actor
from services.credit.models import Bank, Consent
from shared.auth.deps import Enterprise
from shared.db import CommittingRoute, DbSession
from shared.errors import NotFound, problem_responses

router = APIRouter(prefix="/v1/consents", tags=["consents"], route_class=CommittingRoute)


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bank_id: str = Field(min_length=1, max_length=64)


class ConsentOut(BaseModel):
    uscc: str
    bank_id: str
    source: str
    granted_by: str
    granted_at: datetime


class ConsentList(BaseModel):
    items: list[ConsentOut]
    total: int


def _out(c: Consent) -> ConsentOut:
    return ConsentOut(
        uscc=c.uscc,
        bank_id=c.bank_id,
        source=c.source,
        granted_by=c.granted_by,
        granted_at=c.granted_at,
    )


@router.get("", response_model=ConsentList, responses=problem_responses(401, 403))
async def list_consents(session: DbSession, principal: Enterprise) -> ConsentList:
    rows = await session.scalars(
        select(Consent).where(Consent.uscc == principal.uscc).order_by(Consent.bank_id)
    )
    items = [_out(c) for c in rows]
    return ConsentList(items=items, total=len(items))


@router.post(
    "", response_model=ConsentOut, status_code=201, responses=problem_responses(401, 403, 404)
)
async def grant_consent(session: DbSession, principal: Enterprise, body: ConsentIn) -> ConsentOut:
    """Let a bank read the enterprise's score details and approved amounts (idempotent)."""
    assert principal.uscc is not None
    if await session.get(Bank, body.bank_id) is None:
        raise NotFound(f"No bank {body.bank_id}")
    await session.execute(
        insert(Consent)
        .values(
            uscc=principal.uscc,
            bank_id=body.bank_id,
            granted_by=actor(principal),
            source="explicit",
        )
        .on_conflict_do_nothing()
    )
    consent = await session.get(Consent, (principal.uscc, body.bank_id))
    assert consent is not None
    return _out(consent)
