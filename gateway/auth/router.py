"""Public authentication endpoints of the gateway."""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from typing import Annotated
from urllib.parse import unquote_plus, urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from gateway.auth import sessions
from gateway.auth.clients import InvalidClient, OAuthError, authenticate_client, grant_for
from gateway.auth.esso import EssoClient, EssoRefused
from gateway.auth.identity import ACCESS_COOKIE, REFRESH_COOKIE, Identity
from gateway.auth.schemas import (
    EnterpriseRef,
    LogoutRequest,
    RefreshRequest,
    SessionTokens,
    SsoTokenExchange,
    TokenResponse,
)
from gateway.models import LoginSession
from gateway.settings import GatewaySettings
from shared.db import CommittingRoute, DbSession
from shared.errors import BadRequest, Unauthorized, problem_responses

router = APIRouter(route_class=CommittingRoute, tags=["auth"])
STATE_COOKIE = "ip_esso_state"
_AUTH_PATH = "/v1/auth"


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


async def _throttle(request: Request) -> None:
    host = request.client.host if request.client else "unknown"
    await request.app.state.limiter.check(_settings(request).rate_limit_auth, f"auth:{host}")


@router.get(
    "/.well-known/jwks.json",
    summary="The public keys of the internal-token issuer",
    tags=["keys"],
)
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(
        _identity(request).issuer.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("Use HTTP Basic client authentication")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("Malformed Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("Malformed Basic credentials")
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before Base64.
    return unquote_plus(client_id), unquote_plus(secret)


@router.post(
    f"{_AUTH_PATH}/token",
    response_model=TokenResponse,
    summary="OAuth 2 client credentials: a gateway access token for a bank, the government "
    "portal or a service",
    description=(
        "Client authentication with HTTP Basic (or `client_id`/`client_secret` form fields). "
        "`scope` narrows the client's scopes. A service client may ask for `audience=<service>` "
        "and receives an internal token for that service directly."
    ),
    responses=problem_responses(400, 401, 422, 429),
)
async def token(
    request: Request,
    db: DbSession,
    grant_type: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form(max_length=1024)] = None,
    audience: Annotated[str | None, Form(max_length=64)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
) -> JSONResponse:
    await _throttle(request)
    header = request.headers.get("authorization")
    if header is not None:
        cid, secret = _basic_credentials(header)
    elif client_id and client_secret:
        cid, secret = client_id, client_secret
    else:
        raise InvalidClient("Client authentication is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "Only grant_type=client_credentials")
    client = await authenticate_client(db, cid, secret)
    grant = grant_for(client, scope, audience)
    settings = _settings(request)
    identity = _identity(request)
    if grant.audience is None:
        ttl = settings.client_token_ttl
        access = identity.mint_access(grant.principal, ttl)
    else:
        ttl = min(settings.client_token_ttl, 300)
        access = identity.mint_internal(grant.principal, grant.audience, ttl)
    body = TokenResponse(access_token=access, expires_in=ttl, scope=" ".join(grant.scopes) or None)
    # RFC 6749 section 5.1: token responses must not be cached.
    return JSONResponse(
        body.model_dump(exclude_none=True),
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _esso(request: Request) -> EssoClient:
    esso: EssoClient = request.app.state.esso
    return esso


async def _login(request: Request, db: DbSession, ssotoken: str) -> sessions.IssuedSession:
    settings = _settings(request)
    await sessions.consume_ssotoken(db, ssotoken)
    user = await _esso(request).login(ssotoken, settings.esso_min_real_level)
    return await sessions.open_session(db, _identity(request), settings, user)


def _session_body(issued: sessions.IssuedSession) -> SessionTokens:
    return SessionTokens(
        access_token=issued.access_token,
        expires_in=issued.access_expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        enterprise=EnterpriseRef(
            uscc=issued.principal.uscc or "",
            name=issued.company_name,
            legal_rep=issued.principal.act,
        ),
    )


def _set_session_cookies(
    response: Response, settings: GatewaySettings, issued: sessions.IssuedSession
) -> None:
    secure = settings.secure_cookies
    response.set_cookie(
        ACCESS_COOKIE,
        issued.access_token,
        max_age=issued.access_expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        issued.refresh_token,
        max_age=issued.refresh_expires_in,
        httponly=True,
        secure=secure,
        samesite="strict",
        path=_AUTH_PATH,
    )


def _clear_session_cookies(response: Response) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=_AUTH_PATH)


@router.post(
    f"{_AUTH_PATH}/esso/exchange",
    response_model=SessionTokens,
    summary="Mini-app backends: exchange an enterprise-code ssotoken for a gateway session",
    description=(
        "The gateway verifies the ssotoken with the provider (signed user query) and accepts "
        "only the enterprise's legal representative (`attnName` equal to `CompanyLegRep`) at "
        "or above the configured assurance level. Each ssotoken works once."
    ),
    responses=problem_responses(401, 403, 422, 429, 502, 503),
)
async def esso_exchange(request: Request, db: DbSession, body: SsoTokenExchange) -> JSONResponse:
    await _throttle(request)
    issued = await _login(request, db, body.ssotoken)
    return JSONResponse(_session_body(issued).model_dump(), headers={"Cache-Control": "no-store"})


def _safe_goto(goto: str | None, default: str) -> str:
    # Only paths on this gateway: an absolute URL here would make us an open redirector.
    if not goto:
        return default
    parts = urlsplit(goto)
    if parts.scheme or parts.netloc or not goto.startswith("/") or goto.startswith("//"):
        raise BadRequest("goto must be a path on this site")
    if "\\" in goto:
        raise BadRequest("goto must be a path on this site")
    return goto


@router.get(
    f"{_AUTH_PATH}/esso/login",
    summary="Browsers: start an enterprise-code login (redirects to the provider)",
    status_code=302,
    # A redirect has no body: without this the document promises JSON.
    response_class=RedirectResponse,
    responses={302: {"description": "To the enterprise-code provider"}, **problem_responses(400)},
)
async def esso_login(
    request: Request, goto: Annotated[str | None, Query(max_length=1024)] = None
) -> RedirectResponse:
    settings = _settings(request)
    target = _safe_goto(goto, settings.esso_default_goto)
    state = secrets.token_urlsafe(16)
    callback = f"{settings.public_url.rstrip('/')}{_AUTH_PATH}/esso/callback?" + urlencode(
        {"goto": target, "state": state}
    )
    location = f"{settings.esso_login_url}?" + urlencode({"spappurl": callback})
    response = RedirectResponse(location, status_code=302)
    # Binds the callback to this browser: a login CSRF (someone else's ssotoken planted in
    # our callback) fails because the victim's browser lacks the matching state.
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=600,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path=f"{_AUTH_PATH}/esso",
    )
    return response


@router.get(
    f"{_AUTH_PATH}/esso/callback",
    summary="Browsers: the provider's callback; sets the session cookies",
    status_code=303,
    # A redirect has no body: without this the document promises JSON.
    response_class=RedirectResponse,
    responses={303: {"description": "To `goto`"}, **problem_responses(400, 401, 403, 502, 503)},
)
async def esso_callback(
    request: Request,
    db: DbSession,
    ssotoken: Annotated[str, Query(min_length=1, max_length=512)],
    state: Annotated[str | None, Query(max_length=128)] = None,
    goto: Annotated[str | None, Query(max_length=1024)] = None,
) -> RedirectResponse:
    await _throttle(request)
    expected = request.cookies.get(STATE_COOKIE)
    if not state or not expected or not secrets.compare_digest(state, expected):
        raise EssoRefused("This login was not started from this browser; start again")
    settings = _settings(request)
    target = _safe_goto(goto, settings.esso_default_goto)
    issued = await _login(request, db, ssotoken)
    response = RedirectResponse(target, status_code=303)
    _set_session_cookies(response, settings, issued)
    response.delete_cookie(STATE_COOKIE, path=f"{_AUTH_PATH}/esso")
    return response


@router.post(
    f"{_AUTH_PATH}/refresh",
    response_model=SessionTokens,
    summary="A new access token (and a new refresh token) for an enterprise session",
    responses=problem_responses(401, 422, 429),
)
async def refresh(
    request: Request, db: DbSession, body: RefreshRequest | None = None
) -> JSONResponse:
    await _throttle(request)
    presented = (body.refresh_token if body else None) or request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise Unauthorized("A refresh token is required")
    settings = _settings(request)
    issued = await sessions.refresh_session(db, _identity(request), settings, presented)
    response = JSONResponse(
        _session_body(issued).model_dump(), headers={"Cache-Control": "no-store"}
    )
    if body is None or body.refresh_token is None:
        _set_session_cookies(response, settings, issued)
    return response


@router.post(
    f"{_AUTH_PATH}/logout",
    status_code=204,
    summary="End the session (or revoke the presented client token)",
    responses=problem_responses(401, 422),
)
async def logout(request: Request, db: DbSession, body: LogoutRequest | None = None) -> Response:
    identity = _identity(request)
    settings = _settings(request)
    caller = await identity.authenticate(request)
    session: LoginSession | None = None
    presented = (body.refresh_token if body else None) or request.cookies.get(REFRESH_COOKIE)
    if caller is not None and caller.session_id is not None:
        session = await db.get(LoginSession, uuid.UUID(caller.session_id))
    elif presented:
        session = await sessions.session_by_refresh(db, presented)
    if session is not None:
        await sessions.revoke_session(db, identity, settings, session)
    elif caller is not None:
        await identity.revocations.revoke(db, caller.token_id, caller.expires_at)
    else:
        raise Unauthorized("Nothing to log out of")
    response = Response(status_code=204)
    _clear_session_cookies(response)
    return response
