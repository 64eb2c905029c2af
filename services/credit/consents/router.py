"""Consents: which bank may see the enterprise's current score and amounts, why, until when.

Applying records a consent scoped to that application; an enterprise may also consent on its
own. The rule is in `service` and docs/credit.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from services.credit.consents import service
from services.credit.consents.schemas import ConsentIn, ConsentOut
from shared.auth.deps import CurrentPrincipal, EnterpriseCaller
from shared.auth.principal import PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/consents", tags=["consents"], route_class=CommittingRoute)


@router.get("", response_model=Page[ConsentOut], responses=problem_responses(401, 403, 422))
async def list_consents(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    include_ended: Annotated[
        bool,
        Query(description="Also the consents that ended or expired (the enterprise's own only)"),
    ] = False,
) -> Page[ConsentOut]:
    """The enterprise's consents: which bank may see what, why, until when (in plain words).

    A bank gets the consents in force to it (which enterprises it may look at now, with their
    names); ended ones are the enterprise's business. Others are refused."""
    if principal.kind is PrincipalKind.BANK and principal.bank_id is not None:
        if include_ended:
            raise Forbidden("A bank sees only the consents in force to it")
        return await service.list_for_bank(session, principal.bank_id, paging)
    if principal.kind is not PrincipalKind.ENTERPRISE or principal.uscc is None:
        raise Forbidden("Consents are read by the enterprise, or by a bank for its own")
    return await service.list_consents(session, principal.uscc, paging, include_ended)


@router.post(
    "",
    response_model=ConsentOut,
    status_code=201,
    responses={200: {"model": ConsentOut}, **problem_responses(401, 403, 404, 422)},
)
async def grant_consent(
    session: DbSession, principal: EnterpriseCaller, body: ConsentIn
) -> JSONResponse:
    """Let a bank see the score and pre-approved amounts without applying, until withdrawn or
    `expires_at`. Granting again while one is in force replaces its expiry (200)."""
    consent, created = await service.grant(session, principal, body)
    return JSONResponse(consent.model_dump(mode="json"), status_code=201 if created else 200)


@router.delete("/{bank_id}", status_code=204, responses=problem_responses(401, 403, 404, 409))
async def withdraw_consent(
    bank_id: Annotated[str, Path(max_length=64)], session: DbSession, principal: EnterpriseCaller
) -> Response:
    """Withdraw the explicit consent to a bank (PIPL: consent can be withdrawn).

    An application's consent ends with the application: 409 `consent-in-use` names it when it
    is the only consent in force (withdraw the application, until disbursement, to end it).
    """
    await service.withdraw(session, principal, bank_id)
    return Response(status_code=204)
