"""Public authentication endpoints of the gateway."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from gateway.auth import sessions
from gateway.auth.clients import (
    ClientKind,
    ClientLocked,
    ClientLockout,
    InvalidClient,
    OAuthError,
    UnauthorizedClient,
    authenticate_client,
    grant_for,
    parse_basic,
)
from gateway.auth.esso import EssoClient, EssoRefused
from gateway.auth.identity import ACCESS_COOKIE, REFRESH_COOKIE, Identity
from gateway.auth.schemas import (
    EnterpriseRef,
    LogoutRequest,
    RefreshRequest,
    SessionTokens,
    SsoTokenExchange,
    StaffRef,
    StaffSessionTokens,
    TokenResponse,
)
from gateway.auth.staff import (
    ACCESS_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    MAX_ID_TOKEN_BYTES,
    TOKEN_EXCHANGE,
    StaffVerifier,
    consume_id_token,
    role_scopes,
)
from gateway.models import Client, LoginSession
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from shared.auth.principal import PrincipalKind
from shared.db import CommittingRoute, DbSession, WritingSession
from shared.errors import BadRequest, TooManyRequests, Unauthorized, problem_responses

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


def _forwarded_browser(request: Request) -> str | None:
    """The address a forwarder (the portal) says it acts for: the last X-Forwarded-For entry,
    if it is an IP address. Believed only once the caller authenticated as a portal."""
    header = request.headers.get("x-forwarded-for")
    if not header:
        return None
    try:
        return str(ipaddress.ip_address(header.rsplit(",", 1)[-1].strip()))
    except ValueError:
        return None


async def _throttle(request: Request, db: DbSession) -> Client | None:
    """Count a login-endpoint request against the per-address limit (`rate_limit_auth`).

    Every browser sign-in through the portal reaches us from the portal's address, so
    counting that address would let a busy portal lock everyone out. A caller that
    authenticates (HTTP Basic) as a `portal` client is a trusted forwarder: its request
    counts against the browser's address it forwards in X-Forwarded-For, under its client
    id. Nobody else chooses the counted address (docs/gateway.md). Returns the client the
    request authenticated as, if it did here, so the endpoint does not do it again."""
    limiter: RateLimiter = request.app.state.limiter
    spec = _settings(request).rate_limit_auth
    peer = f"auth:{_address(request)}"
    client = await _forwarder_client(request, db, limiter, spec, peer)
    browser = _forwarded_browser(request)
    if client is not None and client.kind == ClientKind.PORTAL and browser is not None:
        await limiter.check(spec, f"auth:{client.client_id}:{browser}")
    else:
        await limiter.check(spec, peer)
    return client


async def _forwarder_client(
    request: Request, db: DbSession, limiter: RateLimiter, spec: str, peer: str
) -> Client | None:
    """The client a request that may be forwarded authenticates as; None when it forwards
    nothing or sends no Basic credentials (then it is counted as before, by its address)."""
    header = request.headers.get("authorization")
    if _forwarded_browser(request) is None or header is None:
        return None
    if header.partition(" ")[0].lower() != "basic":
        return None
    # No secret is checked for an address already over its limit; a failure counts there.
    retry_after = await limiter.exhausted(spec, peer)
    if retry_after is not None:
        raise TooManyRequests(
            f"Limit {spec} exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        return await _authenticated_client(request, db, *_basic_credentials(header))
    except (InvalidClient, ClientLocked):
        await limiter.record(spec, peer)
        raise


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
    try:
        credentials = parse_basic(header)
    except ValueError as exc:
        raise InvalidClient("Malformed Basic credentials") from exc
    if credentials is None:
        raise InvalidClient("Use HTTP Basic client authentication")
    return credentials


def _client_credentials(
    request: Request, client_id: str | None, client_secret: str | None
) -> tuple[str, str]:
    header = request.headers.get("authorization")
    if header is not None:
        return _basic_credentials(header)
    if client_id and client_secret:
        return client_id, client_secret
    raise InvalidClient("Client authentication is required")


async def _authenticated_client(request: Request, db: DbSession, cid: str, secret: str) -> Client:
    lockout = ClientLockout(request.app.state.limiter, _settings(request).client_failure_limit)
    await lockout.check(cid, _address(request))
    try:
        client = await authenticate_client(
            db, request.app.state.client_secret_hmac_key, cid, secret
        )
    except InvalidClient:
        await lockout.failed(cid)
        raise
    await lockout.succeeded(cid, _address(request))
    return client


# RFC 6749 section 5.1: token responses must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    f"{_AUTH_PATH}/token",
    response_model=TokenResponse | StaffSessionTokens,
    summary="OAuth 2 token endpoint: client credentials for a bank, the government portal or a "
    "service; token exchange of a staff member's ID token for a portal",
    description=(
        "Client authentication with HTTP Basic (or `client_id`/`client_secret` form fields). "
        "Repeated failures lock a client id for a while (429 with `Retry-After`), except at "
        "addresses it recently used.\n\n"
        "**`grant_type=client_credentials`**: `scope` narrows the client's scopes. A service "
        "client must ask for `audience=<service>` (one it is registered for) and receives an "
        "internal token for that service alone; it gets no gateway token. A `portal` client "
        "gets nothing (`unauthorized_client`).\n\n"
        "**`grant_type=urn:ietf:params:oauth:grant-type:token-exchange`** (RFC 8693), for "
        "`portal` clients only: `subject_token` is the ID token a staff member's organisation "
        "issued to the portal, `subject_token_type=urn:ietf:params:oauth:token-type:id_token`. "
        "The gateway verifies it against the configured staff providers and opens a staff "
        "session: an access token (kind government or bank, the role and the scopes it "
        "grants, the person's name as actor), a refresh token that only this client may use, "
        "and the person as mapped. Each ID token is exchanged once."
    ),
    responses=problem_responses(400, 401, 422, 429, 503),
)
async def token(
    request: Request,
    db: DbSession,
    grant_type: Annotated[str | None, Form(max_length=128)] = None,
    scope: Annotated[str | None, Form(max_length=1024)] = None,
    audience: Annotated[str | None, Form(max_length=64)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    subject_token: Annotated[str | None, Form(max_length=MAX_ID_TOKEN_BYTES)] = None,
    subject_token_type: Annotated[str | None, Form(max_length=128)] = None,
    requested_token_type: Annotated[str | None, Form(max_length=128)] = None,
) -> JSONResponse:
    client = await _throttle(request, db)
    cid, secret = _client_credentials(request, client_id, client_secret)
    if grant_type not in ("client_credentials", TOKEN_EXCHANGE):
        raise OAuthError("unsupported_grant_type", f"Only client_credentials or {TOKEN_EXCHANGE}")
    if client is None:
        client = await _authenticated_client(request, db, cid, secret)
    if grant_type == TOKEN_EXCHANGE:
        exchange = TokenExchange(subject_token, subject_token_type, requested_token_type)
        return await _exchange(request, db, client, exchange, scope, audience)
    settings = _settings(request)
    grant = grant_for(client, scope, audience)
    identity = _identity(request)
    if grant.audience is None:
        ttl = settings.client_token_ttl
        access = identity.mint_access(grant.principal, ttl)
    else:
        ttl = min(settings.client_token_ttl, settings.service_token_ttl)
        access = identity.mint_internal(grant.principal, grant.audience, ttl)
    body = TokenResponse(access_token=access, expires_in=ttl, scope=" ".join(grant.scopes) or None)
    return JSONResponse(body.model_dump(exclude_none=True), headers=_NO_STORE)


@dataclass(frozen=True)
class TokenExchange:
    subject_token: str | None
    subject_token_type: str | None
    requested_token_type: str | None


def _staff_verifier(request: Request) -> StaffVerifier:
    verifier: StaffVerifier = request.app.state.staff_verifier
    return verifier


async def _exchange(
    request: Request,
    db: DbSession,
    client: Client,
    exchange: TokenExchange,
    scope: str | None,
    audience: str | None,
) -> JSONResponse:
    """RFC 8693 for staff sign-in: the portal's user's ID token for a staff session."""
    if client.kind != ClientKind.PORTAL:
        raise UnauthorizedClient("Only a portal client may exchange ID tokens")
    if not exchange.subject_token or exchange.subject_token_type != ID_TOKEN_TYPE:
        raise OAuthError(
            "invalid_request", f"Send subject_token and subject_token_type={ID_TOKEN_TYPE}"
        )
    if exchange.requested_token_type not in (None, ACCESS_TOKEN_TYPE):
        raise OAuthError("invalid_request", f"Only requested_token_type={ACCESS_TOKEN_TYPE}")
    if audience not in (None, "gateway"):
        raise OAuthError("invalid_target", "Staff sessions are for this gateway only")
    person = await _staff_verifier(request).verify(exchange.subject_token)
    granted = role_scopes(person.kind, person.role)
    refused = [s for s in (scope or "").split() if s not in granted]
    if refused:
        raise OAuthError("invalid_scope", f"Not granted to a {person.role}: {refused}")
    await consume_id_token(db, exchange.subject_token, person.expires_at)
    settings = _settings(request)
    issued = await sessions.open_staff_session(db, _identity(request), settings, person, client)
    return JSONResponse(_staff_body(issued, settings).model_dump(), headers=_NO_STORE)


def _staff_body(issued: sessions.IssuedSession, settings: GatewaySettings) -> StaffSessionTokens:
    principal, session = issued.principal, issued.session
    provider = next(p.name for p in settings.staff_providers if p.issuer == session.issuer)
    return StaffSessionTokens(
        access_token=issued.access_token,
        expires_in=issued.access_expires_in,
        scope=" ".join(principal.scopes),
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
        staff=StaffRef(
            sub=principal.sub,
            name=principal.act or principal.sub,
            kind="bank" if principal.kind is PrincipalKind.BANK else "government",
            bank_id=principal.bank_id,
            role=principal.role or "viewer",
            provider=provider,
        ),
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
            name=issued.session.company_name or "",
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
    await _throttle(request, db)
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
    db: WritingSession,  # a GET that creates the login session
    ssotoken: Annotated[str, Query(min_length=1, max_length=512)],
    state: Annotated[str | None, Query(max_length=128)] = None,
    goto: Annotated[str | None, Query(max_length=1024)] = None,
) -> RedirectResponse:
    await _throttle(request, db)
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
    response_model=SessionTokens | StaffSessionTokens,
    summary="A new access token (and a new refresh token) for a session",
    description=(
        "Enterprise sessions: the refresh token in the body, or the refresh cookie. Staff "
        "sessions: the client that exchanged the ID token authenticates as well (HTTP Basic), "
        "since the refresh token was issued to it (RFC 6749 section 6). A refresh token works "
        "once; presenting a used one again revokes the session."
    ),
    responses=problem_responses(401, 422, 429),
)
async def refresh(
    request: Request, db: DbSession, body: RefreshRequest | None = None
) -> JSONResponse:
    client = await _throttle(request, db)
    presented = (body.refresh_token if body else None) or _refresh_cookie(request)
    if not presented:
        raise Unauthorized("A refresh token is required")
    settings = _settings(request)
    header = request.headers.get("authorization")
    # Only Basic means a client authenticating; a mini-app backend may send its bearer.
    if client is None and header is not None and header.partition(" ")[0].lower() == "basic":
        client = await _authenticated_client(request, db, *_basic_credentials(header))
    issued = await sessions.refresh_session(
        db, _identity(request), settings, presented, client=client
    )
    if issued.session.kind != PrincipalKind.ENTERPRISE.value:
        return JSONResponse(_staff_body(issued, settings).model_dump(), headers=_NO_STORE)
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
