"""Where government staff and bank officers will work (part 2: OpenID Connect sign-in, the
programme console, the bank queue). The prefixes and their guards exist now, so an enterprise
session is refused here today exactly as it will be then."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from portal.deps import require_staff
from portal.sessions import Session
from portal.web import render

router = APIRouter()

GovernmentSession = Annotated[Session, Depends(require_staff("government"))]
BankSession = Annotated[Session, Depends(require_staff("bank"))]


@router.get("/gov/", response_class=HTMLResponse)
async def government_home(request: Request, session: GovernmentSession) -> HTMLResponse:
    return render(request, "staff/home.html", {"area": "government"})


@router.get("/bank/", response_class=HTMLResponse)
async def bank_home(request: Request, session: BankSession) -> HTMLResponse:
    return render(request, "staff/home.html", {"area": "bank"})
