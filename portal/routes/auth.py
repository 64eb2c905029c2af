"""The landing page and signing in and out.

Staff (government, bank officers) sign in as persons at their organisation's OpenID Connect
provider (`portal/oidc.py`: code + PKCE, the ID token checked), and the ID token is exchanged
at the gateway (RFC 8693) by the portal's own gateway client for a staff session: its
`staff` member names the person, their organisation and role, and that is what the pages show.

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

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from portal.deps import LOGOUT_PATH, Gateway, MaybeSession, Oidc, Settings, Store
from portal.errors import error_response
from portal.gateway import GatewayProblem, tokens_from
from portal.oidc import SignInRefused
from portal.security import session_cookie, staff_login_cookie, state_cookie
from portal.sessions import GatewayTokens, Principal
from portal.settings import PortalSettings
from portal.web import render

router = APIRouter()
log = structlog.get_logger("portal.auth")
CALLBACK_PATH = "/auth/esso/callback"
STAFF_CALLBACK_PATH = "/auth/staff/callback"
STAFF_KINDS = ("government", "bank")
STAFF_ROLES = ("viewer", "operator")
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
async def staff_login(request: Request, settings: Settings) -> HTMLResponse:
    """The organisations' sign-in providers, one button each."""
    return render(request, "staff/login.html", {"providers": settings.staff_providers})


def staff_home(principal: Principal) -> str:
    return "/gov/" if principal.kind == "government" else "/bank/"


@router.get("/auth/staff/login")
async def staff_login_start(
    request: Request,
    settings: Settings,
    oidc: Oidc,
    provider: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    chosen = settings.staff_provider(provider or "")
    if chosen is None:
        return error_response(
            request, 404, "staff-provider", "没有这个登录方式，请从工作人员登录页选择。"
        )
    try:
        started = await oidc.start(chosen)
    except SignInRefused as exc:
        log.warning("staff sign-in cannot start", provider=chosen.name, reason=exc.reason)
        return error_response(
            request, exc.status, exc.slug, "统一身份认证暂时无法访问，请稍后再试。"
        )
    response = RedirectResponse(started.url, status_code=303)
    set_cookie(
        response,
        settings,
        staff_login_cookie(settings),
        started.cookie,
        settings.staff_login_seconds,
    )
    return response


def staff_principal(body: dict[str, object]) -> Principal:
    """The gateway's account of the person; anything else is refused, never guessed."""
    staff = body.get("staff")
    if not isinstance(staff, dict):
        raise SignInRefused("the gateway's answer has no staff member", status=502)
    kind, role, name = staff.get("kind"), staff.get("role"), staff.get("name")
    bank_id = staff.get("bank_id")
    if kind not in STAFF_KINDS or role not in STAFF_ROLES or not isinstance(name, str):
        raise SignInRefused(f"unexpected staff principal {kind}/{role}", status=502)
    if kind == "bank" and not isinstance(bank_id, str):
        raise SignInRefused("a bank officer without a bank", status=502)
    return Principal(
        kind=str(kind),
        display_name=name,
        bank_id=str(bank_id) if kind == "bank" else None,
        role=str(role),
        actor=name,
    )


_STAFF_REFUSALS = {
    "staff-login-state": "这次登录不是从本浏览器发起的，或已超时，请重新登录。",
    "staff-login-denied": "统一身份认证未完成登录。",
    "staff-provider-unavailable": "统一身份认证暂时无法访问，请稍后再试。",
}


async def _staff_session(
    request: Request, oidc: Oidc, gateway: Gateway
) -> tuple[Principal, GatewayTokens]:
    attempt = await oidc.take(
        request.cookies.get(staff_login_cookie(request.app.state.settings)),
        request.query_params.get("state"),
    )
    id_token = await oidc.finish(attempt, str(request.url))
    try:
        body = await gateway.exchange_id_token(id_token)
    except GatewayProblem as exc:
        if exc.status in (400, 401, 403):
            raise SignInRefused(
                f"gateway refused: {exc.status} {exc.slug}", status=403, slug="staff-not-admitted"
            ) from exc
        raise
    return staff_principal(body), tokens_from(body)


@router.get(STAFF_CALLBACK_PATH)
async def staff_callback(
    request: Request,
    settings: Settings,
    store: Store,
    gateway: Gateway,
    oidc: Oidc,
    session: MaybeSession,
) -> Response:
    if len(str(request.url)) > 4096:
        return error_response(request, 414)
    try:
        principal, tokens = await _staff_session(request, oidc, gateway)
    except SignInRefused as exc:
        log.warning("staff sign-in refused", reason=exc.reason)
        detail = _STAFF_REFUSALS.get(exc.slug)
        if exc.slug == "staff-not-admitted":
            detail = "平台未授权该账号登录工作台，请联系管理员。"
        response = error_response(request, exc.status, exc.slug, detail)
        clear_cookie(response, settings, staff_login_cookie(settings))
        return response
    if session is not None:
        await store.delete(session.id_hash)  # a new sign-in never reuses an old id
    session_id, _ = await store.create(principal, tokens)
    response = RedirectResponse(staff_home(principal), status_code=303)
    set_cookie(
        response, settings, session_cookie(settings), session_id, settings.session_absolute_seconds
    )
    clear_cookie(response, settings, staff_login_cookie(settings))
    return response
