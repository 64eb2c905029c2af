"""What staff pages share: the guards by organisation and role, and the header's context.

Government pages live in `portal/routes/government.py`, bank pages in `portal/routes/bank.py`;
both extend `staff/base.html`. A page that changes something takes `OperatorSession` of its
kind: a viewer is refused here before the gateway (which refuses too) is ever asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from portal.deps import require_staff
from portal.sessions import Session
from portal.web import render

GovernmentSession = Annotated[Session, Depends(require_staff("government"))]
GovernmentOperator = Annotated[Session, Depends(require_staff("government", "operator"))]
BankSession = Annotated[Session, Depends(require_staff("bank"))]
BankOperator = Annotated[Session, Depends(require_staff("bank", "operator"))]

# Answers /gov/ only while no government page is registered (app.py includes it last, and
# only when nothing else has claimed the path), so a staff sign-in never lands on a 404.
placeholder = APIRouter()


@placeholder.get("/gov/", response_class=HTMLResponse)
async def government_home(request: Request, session: GovernmentSession) -> HTMLResponse:
    return render(request, "staff/placeholder.html", {"org_label": "政府部门"})


def can_change(session: Session) -> bool:
    return session.principal.role == "operator"


def staff_context(session: Session, **extra: Any) -> dict[str, Any]:
    return {"can_change": can_change(session), **extra}
