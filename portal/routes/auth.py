"""The landing page and signing in and out.

Enterprise code (企业码, ESSO): the portal sends the browser to the provider with a callback
on the portal carrying a random `state`, also set in a short-lived HttpOnly cookie; the
callback checks the two match (so nobody can plant their own ssotoken in someone else's
browser), exchanges the ssotoken at the gateway exactly as a mini-app backend does, and keeps
the gateway's tokens in a new server-side session.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from portal.deps import LOGOUT_PATH, Gateway, MaybeSession, Settings, Store
from portal.errors import error_response
from portal.gateway import GatewayProblem
from portal.security import session_cookie, state_cookie
from portal.sessions import GatewayTokens, Principal
from portal.settings import PortalSettings
from portal.web import render

router = APIRouter()
CALLBACK_PATH = "/auth/esso/callback"
STATE_SECONDS = 600

NOTICES = {
    "expired": "登录已过期，请重新登录。",
    "login": "请先登录。",
    "logout": "您已安全退出。",
}


def set_cookie(
    response: Response, settings: PortalSettings, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
    )


def clear_cookie(response: Response, settings: PortalSettings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, secure=settings.secure_cookies, samesite="lax"
    )


@router.get("/", response_class=HTMLResponse)
async def landing(
    request: Request,
    session: MaybeSession,
    expired: Annotated[str | None, Query(max_length=8)] = None,
    login: Annotated[str | None, Query(max_length=8)] = None,
    logout: Annotated[str | None, Query(max_length=8)] = None,
) -> HTMLResponse:
    notice = (
        NOTICES["expired"]
        if expired
        else NOTICES["login"]
        if login
        else NOTICES["logout"]
        if logout
        else None
    )
    return render(request, "landing.html", {"notice": notice})


@router.get("/auth/esso/login")
async def esso_login(settings: Settings) -> RedirectResponse:
    state = secrets.token_urlsafe(32)
    callback = settings.public_url.rstrip("/") + CALLBACK_PATH + "?" + urlencode({"state": state})
    target = settings.esso_login_url + "?" + urlencode({"spappurl": callback})
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, settings, state_cookie(settings), state, STATE_SECONDS)
    return response


@router.get(CALLBACK_PATH)
async def esso_callback(
    request: Request,
    settings: Settings,
    store: Store,
    gateway: Gateway,
    session: MaybeSession,
    ssotoken: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    expected = request.cookies.get(state_cookie(settings))
    if not state or not expected or not secrets.compare_digest(state.encode(), expected.encode()):
        return error_response(
            request, 400, "esso-state", "这次登录不是从本浏览器发起的，请从门户首页重新登录。"
        )
    if not ssotoken:
        return error_response(request, 400, "esso-refused")
    try:
        body = await gateway.exchange_ssotoken(ssotoken)
    except GatewayProblem as exc:
        if exc.status in (401, 403):
            return error_response(request, exc.status, exc.slug or "esso-refused")
        raise
    enterprise = body["enterprise"]
    principal = Principal(
        kind="enterprise",
        display_name=enterprise["name"],
        uscc=enterprise["uscc"],
        actor=enterprise.get("legal_rep"),
    )
    tokens = GatewayTokens(
        access_token=body["access_token"],
        access_expires_at=datetime.now(UTC) + timedelta(seconds=int(body["expires_in"])),
        refresh_token=body.get("refresh_token"),
    )
    if session is not None:
        # A new sign-in never reuses an old id (session fixation): the old one ends here.
        await store.delete(session.id_hash)
    session_id, _ = await store.create(principal, tokens)
    response = RedirectResponse("/e/", status_code=303)
    set_cookie(
        response, settings, session_cookie(settings), session_id, settings.session_absolute_seconds
    )
    clear_cookie(response, settings, state_cookie(settings))
    return response


@router.post(LOGOUT_PATH)
async def logout(
    settings: Settings, store: Store, gateway: Gateway, session: MaybeSession
) -> Response:
    if session is not None:
        await gateway.logout(session)
        await store.delete(session.id_hash)
    response = RedirectResponse("/?logout=1", status_code=303)
    clear_cookie(response, settings, session_cookie(settings))
    return response


@router.get("/auth/staff", response_class=HTMLResponse)
async def staff_login(request: Request) -> HTMLResponse:
    """Staff sign in as persons through their organisation's OpenID Connect provider: part 2."""
    return render(request, "staff/login.html")
