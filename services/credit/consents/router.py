"""Consents: an enterprise lets a bank see its score details (applying records one too)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.credit.common import actor
from services.credit.models import OPEN_STATUSES, Bank, Consent, LoanApplication
from shared.auth.deps import Enterprise
from shared.db import CommittingRoute, DbSession
from shared.errors import Conflict, NotFound, problem_responses

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


class ConsentInUse(Conflict):
    slug = "consent-in-use"
    title = "An open application relies on this consent"


@router.delete("/{bank_id}", status_code=204, responses=problem_responses(401, 403, 404, 409))
async def revoke_consent(bank_id: str, session: DbSession, principal: Enterprise) -> Response:
    """Withdraw a bank's access to the score details (PIPL: consent can be withdrawn).

    Refused while an application to that bank is open or its credit is drawn: the bank
    decides on, and then monitors, what the enterprise showed it. Withdraw the application
    (or have the credit closed) first.
    """
    assert principal.uscc is not None
    consent = await session.get(Consent, (principal.uscc, bank_id), with_for_update=True)
    if consent is None:
        raise NotFound(f"No consent for {bank_id}")
    open_application = await session.scalar(
        select(LoanApplication.id)
        .where(
            LoanApplication.uscc == principal.uscc,
            LoanApplication.bank_id == bank_id,
            LoanApplication.status.in_(OPEN_STATUSES),
        )
        .limit(1)
    )
    if open_application is not None:
        raise ConsentInUse(
            f"Application {open_application} to {bank_id} is open",
            application_id=str(open_application),
        )
    await session.delete(consent)
    await session.flush()
    return Response(status_code=204)
