"""Bank officers' pages (`/bank/`): the application queue and each application with its
evidence, the decisions, products, the approved amounts of consenting enterprises and the
webhook delivery log.

Everything goes through the gateway's public API with the officer's own staff session, so
the credit service sees the bank, the role and the person (`act`) and records who did what.
A viewer is refused by the portal before the gateway is asked (which refuses too).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from portal.deps import Gateway
from portal.gateway import GatewayClient
from portal.routes.staff import BankSession, staff_context
from portal.sessions import Session
from portal.web import render

router = APIRouter(prefix="/bank")
PAGE_SIZE = 25

QueueStatus = Literal[
    "open", "submitted", "under_review", "approved", "disbursed", "rejected", "withdrawn", "closed"
]
# "open": what still needs the bank (submitted and under review), the default view.
OPEN_STATUSES = ("submitted", "under_review")


async def bank_header(request: Request, gw: GatewayClient, session: Session) -> dict[str, Any]:
    """The bank's name for the header (cached reference data)."""
    banks = await request.app.state.reference.banks(gw, session)
    bank = banks.get(session.principal.bank_id or "", {})
    return staff_context(session, org_label=bank.get("name") or session.principal.bank_id)


async def _products(gw: GatewayClient, session: Session) -> dict[str, dict[str, Any]]:
    body = await gw.get(session, "/v1/credit/products", {"limit": 200})
    return {p["id"]: p for p in body["items"]}


async def _queue(
    gw: GatewayClient, session: Session, status: QueueStatus, offset: int
) -> tuple[list[dict[str, Any]], int]:
    if status != "open":
        params = {"status": status, "limit": PAGE_SIZE, "offset": offset}
        body = await gw.get(session, "/v1/credit/applications", params)
        return body["items"], int(body["total"])
    # The open queue is two statuses; each is asked for whole pages, merged oldest first.
    bodies = await asyncio.gather(
        *(
            gw.get(session, "/v1/credit/applications", {"status": s, "limit": 200})
            for s in OPEN_STATUSES
        )
    )
    items = sorted((i for b in bodies for i in b["items"]), key=lambda a: a["created_at"])
    total = sum(int(b["total"]) for b in bodies)
    return items[offset : offset + PAGE_SIZE], total


@router.get("/", response_class=HTMLResponse)
async def queue(
    request: Request,
    session: BankSession,
    gw: Gateway,
    status: Annotated[QueueStatus, Query()] = "open",
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    header, products, (items, total) = await asyncio.gather(
        bank_header(request, gw, session),
        _products(gw, session),
        _queue(gw, session, status, offset),
    )
    return render(
        request,
        "bank/queue.html",
        {
            **header,
            "status": status,
            "items": items,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "products": products,
        },
    )
