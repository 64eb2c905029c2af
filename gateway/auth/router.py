"""Public authentication endpoints of the gateway."""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Annotated
from urllib.parse import unquote_plus, urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from gateway.auth import sessions
from gateway.auth.clients import (
    ClientLockout,
    InvalidClient,
    OAuthError,
    authenticate_client,
    grant_for,
)
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
_STATE_PATH = f"{_AUTH_PATH}/esso"


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


def _address(request: Request) -> str:
    # The peer, or the address a trusted ingress put in X-Forwarded-For: uvicorn decides
    # which (`--forwarded-allow-ips`, the ingress's range alone; docs/deploy.md).
    return request.client.host if request.client else "unknown"


async def _throttle(request: Request) -> None:
    key = f"auth:{_address(request)}"
    await request.app.state.limiter.check(_settings(request).rate_limit_auth, key)


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
    except (ValueError, UnicodeDecodeError) as exc:
        # binascii.Error for bad Base64; ValueError for non-ASCII bytes in the header
        # (found by the reliability suite: `Basic caf\xe9` was a 500).
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
        "`scope` narrows the client's scopes. A service client must ask for "
        "`audience=<service>` (one it is registered for) and receives an internal token for "
        "that service alone; it gets no gateway token. Repeated failures lock a client id "
        "for a while (429 with `Retry-After`), except at addresses it recently used."
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
    settings = _settings(request)
    lockout = ClientLockout(request.app.state.limiter, settings.client_failure_limit)
    await lockout.check(cid, _address(request))
    try:
        client = await authenticate_client(
            db, request.app.state.client_secret_hmac_key, cid, secret
        )
    except InvalidClient:
        await lockout.failed(cid)
        raise
    await lockout.succeeded(cid, _address(request))
    grant = grant_for(client, scope, audience)
    identity = _identity(request)
    if grant.audience is None:
        ttl = settings.client_token_ttl
        access = identity.mint_access(grant.principal, ttl)
    else:
        ttl = min(settings.client_token_ttl, settings.service_token_ttl)
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
    name, path = settings.cookie(ACCESS_COOKIE, "/")
    response.set_cookie(
        name,
        issued.access_token,
        max_age=issued.access_expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
        path=path,
    )
    name, path = settings.cookie(REFRESH_COOKIE, _AUTH_PATH)
    response.set_cookie(
        name,
        issued.refresh_token,
        max_age=issued.refresh_expires_in,
        httponly=True,
        secure=secure,
        samesite="strict",
        path=path,
    )


def _delete_cookie(response: Response, settings: GatewaySettings, base: str, path: str) -> None:
    # A browser ignores the deletion of a __Host- cookie that does not say Secure itself.
    name, path = settings.cookie(base, path)
    response.delete_cookie(name, path=path, secure=settings.secure_cookies, httponly=True)


def _clear_session_cookies(response: Response, settings: GatewaySettings) -> None:
    _delete_cookie(response, settings, ACCESS_COOKIE, "/")
    _delete_cookie(response, settings, REFRESH_COOKIE, _AUTH_PATH)


def _refresh_cookie(request: Request) -> str | None:
    return request.cookies.get(_settings(request).cookie(REFRESH_COOKIE, _AUTH_PATH)[0])


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
    # our callback) fails because the victim's browser lacks the matching state. The
    # __Host- form also keeps a sibling host from planting a state of its own.
    name, path = settings.cookie(STATE_COOKIE, _STATE_PATH)
    response.set_cookie(
        name,
        state,
        max_age=600,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path=path,
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
    settings = _settings(request)
    expected = request.cookies.get(settings.cookie(STATE_COOKIE, _STATE_PATH)[0])
    if not state or not expected or not secrets.compare_digest(state, expected):
        raise EssoRefused("This login was not started from this browser; start again")
    target = _safe_goto(goto, settings.esso_default_goto)
    issued = await _login(request, db, ssotoken)
    response = RedirectResponse(target, status_code=303)
    _set_session_cookies(response, settings, issued)
    _delete_cookie(response, settings, STATE_COOKIE, _STATE_PATH)
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
    presented = (body.refresh_token if body else None) or _refresh_cookie(request)
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
    presented = (body.refresh_token if body else None) or _refresh_cookie(request)
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
    _clear_session_cookies(response, settings)
    return response
