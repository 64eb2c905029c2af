"""`GET /v1/me` and the mini-app dashboard `GET /v1/me/dashboard`.

The dashboard fetches its parts concurrently, each from its service with a token for that
service, all within one deadline. A part that fails or is late reports its own status; the
others still come back, so one service down never blanks the mini-app's home page.

The answer is written as bytes, each part's body spliced in as the service sent it once it
has parsed as JSON (`orjson.Fragment`): validating and re-serialising the four bodies
through the response model was a third of the gateway's CPU for this route (issue 11's
profile). The `Dashboard` model stays the route's documented response.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import Any, Literal

import httpx
import orjson
import structlog
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway.auth.identity import Caller, Identity
from gateway.auth.schemas import Me
from gateway.models import LoginSession
from gateway.proxy.router import rate_limit_key
from gateway.proxy.upstreams import Upstreams
from gateway.settings import GatewaySettings
from shared.auth.principal import PrincipalKind
from shared.errors import Forbidden, ProblemError, problem_responses
from shared.logging import current_request_id

router = APIRouter(tags=["me"])
log = structlog.get_logger("gateway.dashboard")

PartStatus = Literal["ok", "error", "unavailable", "timeout"]


class Part(BaseModel):
    status: PartStatus
    http_status: int | None = Field(None, description="The service's answer, when it gave one")
    data: Any = None
    problem: dict[str, Any] | None = None


class Dashboard(BaseModel):
    uscc: str
    company_name: str | None = None
    score: Part = Field(description="Score summary, tier and reasons (scoring service)")
    offers: Part = Field(description="Top credit offers (credit service)")
    matches: Part = Field(description="Eligible and near cultivation pools (policy service)")
    pushes: Part = Field(description="Unread policy pushes (policy service)")
    elapsed_ms: int


async def _caller(request: Request) -> Caller:
    identity: Identity = request.app.state.identity
    caller = await identity.require(request)
    settings: GatewaySettings = request.app.state.settings
    limit = (
        settings.rate_limit_enterprise
        if caller.principal.kind is PrincipalKind.ENTERPRISE
        else settings.rate_limit_client
    )
    await request.app.state.limiter.check(limit, rate_limit_key(caller.principal))
    return caller


async def _session(request: Request, caller: Caller) -> LoginSession | None:
    if caller.session_id is None:
        return None
    async with request.app.state.sessionmaker() as db:
        session: LoginSession | None = await db.get(LoginSession, uuid.UUID(caller.session_id))
        return session


# The company name of a login session, which is written once when the session is created
# and never changed: remembered per session, so the dashboard does not read the same row on
# every call. Bounded, least recently used first out. An ended session never gets this far
# (`Identity.authenticate` refuses its tokens first).
_COMPANY: OrderedDict[str, str | None] = OrderedDict()
_COMPANY_MAX = 10_000


async def _company_name(request: Request, caller: Caller) -> str | None:
    sid = caller.session_id
    if sid is None:
        return None
    if sid in _COMPANY:
        _COMPANY.move_to_end(sid)
        return _COMPANY[sid]
    session = await _session(request, caller)
    if session is None:
        return None  # not remembered: a row that is not there yet is read again next time
    _COMPANY[sid] = session.company_name
    if len(_COMPANY) > _COMPANY_MAX:
        _COMPANY.popitem(last=False)
    return session.company_name


@router.get(
    "/v1/me",
    response_model=Me,
    summary="Who the caller is",
    responses=problem_responses(401, 429),
)
async def me(request: Request) -> Me:
    caller = await _caller(request)
    p = caller.principal
    session = await _session(request, caller)
    return Me(
        sub=p.sub,
        kind=p.kind.value,
        uscc=p.uscc,
        bank_id=p.bank_id,
        act=p.act,
        role=p.role,
        scopes=p.scopes,
        company_name=session.company_name if session else None,
        session_expires_at=session.expires_at.isoformat() if session else None,
    )


async def _part(
    request: Request,
    caller: Caller,
    service: str,
    path: str,
    query: bytes,
    seconds: float,
    trim: int | None = None,
) -> dict[str, Any]:
    state = request.app.state
    settings: GatewaySettings = state.settings
    identity: Identity = state.identity
    upstreams: Upstreams = state.upstreams
    token = identity.mint_internal(caller.principal, service, settings.internal_token_ttl)
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    rid = current_request_id()
    if rid:
        headers["x-request-id"] = rid
    try:
        async with asyncio.timeout(seconds):
            resp = await upstreams.request(
                service,
                "GET",
                path,
                query=query,
                headers=headers,
                deadline=httpx.Timeout(
                    seconds, connect=min(seconds, settings.upstream_connect_timeout)
                ),
            )
    except TimeoutError:
        return _part_of("timeout", problem={"title": f"The {service} service was too slow"})
    except ProblemError as exc:
        status: PartStatus = "timeout" if exc.status == 504 else "unavailable"
        return _part_of(status, exc.status, problem=exc.body())
    except Exception as exc:  # one part's surprise must not blank the whole page
        log.exception("dashboard part failed", service=service, exc_info=exc)
        return _part_of("error", problem={"title": f"The {service} part failed"})
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:  # also what a body that is not UTF-8 raises
        return _part_of("error" if resp.status_code >= 400 else "ok", resp.status_code)
    if resp.status_code >= 400:
        return _part_of("error", resp.status_code, problem=body if isinstance(body, dict) else None)
    if trim is not None and isinstance(body, dict) and isinstance(body.get("items"), list):
        return _part_of("ok", resp.status_code, {**body, "items": body["items"][:trim]})
    # Parsed only to know it is JSON: sent on as the service wrote it.
    return _part_of("ok", resp.status_code, orjson.Fragment(resp.content))


def _part_of(
    status: PartStatus,
    http_status: int | None = None,
    data: Any = None,
    problem: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `Part` as the plain data orjson writes (the model's fields, in its order)."""
    return {"status": status, "http_status": http_status, "data": data, "problem": problem}


@router.get(
    "/v1/me/dashboard",
    response_model=Dashboard,
    summary="The mini-app home page for a logged-in enterprise, in one call",
    description=(
        "Score, top credit offers, eligible and near cultivation pools and unread pushes, "
        "fetched concurrently within `GATEWAY_DASHBOARD_DEADLINE` seconds. Each part carries "
        "its own status (`ok`, `error`, `unavailable`, `timeout`): one service down still "
        "gives the rest."
    ),
    responses=problem_responses(401, 403, 429),
)
async def dashboard(request: Request) -> Response:
    caller = await _caller(request)
    principal = caller.principal
    if principal.kind is not PrincipalKind.ENTERPRISE or not principal.uscc:
        raise Forbidden("The dashboard is for a logged-in enterprise")
    settings: GatewaySettings = request.app.state.settings
    started = time.monotonic()
    deadline = settings.dashboard_deadline
    uscc = principal.uscc
    base = f"/v1/enterprises/{uscc}"
    score, offers, matches, pushes, company_name = await asyncio.gather(
        _part(request, caller, "scoring", f"{base}/score", b"", deadline),
        _part(
            request,
            caller,
            "credit",
            f"{base}/offers",
            b"",
            deadline,
            settings.dashboard_top_offers,
        ),
        # Only what the card shows: the pools it fits or nearly fits (a third of the rules,
        # and the explanations are built per rule).
        _part(
            request,
            caller,
            "policy",
            f"{base}/matches",
            b"kind=pool&status=eligible&status=near",
            deadline,
        ),
        _part(request, caller, "policy", f"{base}/pushes", b"unread=true", deadline),
        _company_name(request, caller),
    )
    body = {
        "uscc": uscc,
        "company_name": company_name,
        "score": score,
        "offers": offers,
        "matches": matches,
        "pushes": pushes,
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }
    return Response(orjson.dumps(body), media_type="application/json")
