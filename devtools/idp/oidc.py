"""The development OpenID Connect provider: staff sign-in, simulated.

Government staff and bank officers sign in through their organisation's OpenID Connect
provider (浙政钉 for Zhejiang government staff, each bank its own). In development this
provider stands in for all of them, over the same protocol (OpenID Connect Core 1.0,
authorization code flow):

* `GET /.well-known/openid-configuration`: discovery.
* `GET /oidc/authorize`: `response_type=code`, a registered `client_id`, its `redirect_uri`
  exactly as registered, `scope` with `openid`, PKCE `code_challenge` with
  `code_challenge_method=S256` (mandatory; `plain` is refused), `state` and `nonce` carried
  through. It answers with the staff page: the demo staff accounts, each with a 登录 button.
* `POST /oidc/login`: the button. A code goes back to the client's `redirect_uri` with
  `state` and `iss` (RFC 9207).
* `POST /oidc/token`: `grant_type=authorization_code` with the client authenticated by
  `client_secret_basic` or `client_secret_post`. The code is single-use, lives
  `IDP_CODE_TTL` seconds, and is bound to its client and `redirect_uri`; `code_verifier`
  must match the challenge. A code presented twice also ends the access token issued for it
  (RFC 6749 section 4.1.2). Answers an ID token (ES256, the provider's own key), an access
  token for userinfo, and `expires_in`.
* `GET /oidc/jwks`: the ID-token signing keys. `GET|POST /oidc/userinfo`: the claims, for
  the access token.

ID tokens carry `iss`, `sub`, `aud`, `exp`, `iat`, `auth_time`, `nonce`, `at_hash`, `name`,
`preferred_username`, `org` (`government` or the bank id) and `roles` (`operator` or
`viewer`); the gateway maps `org` and `roles` (GATEWAY_STAFF_PROVIDERS).

Written by hand: authlib's authorization-server parts are bound to Flask and Django, and this
is a simulator of the outside world, a few routes over in-memory state. What a library does
well is taken from one: PKCE's S256 transform from authlib (RFC 7636), the JWT signing and
keys from joserfc. State lives in one process's memory, bounded; the provider refuses to
start in production (see `devtools.idp.settings`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import KeySet

from devtools.idp.settings import IdpSettings, OidcClient
from devtools.idp.staff import StaffAccount
from gateway.auth.clients import parse_basic
from shared.auth.keys import load_or_create_key_set

ALGORITHM = "ES256"
# RFC 7636 section 4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Pending sign-ins, codes and access tokens each kept to this many: a flood of authorize
# requests cannot grow the process without bound.
MAX_ENTRIES = 10_000

T = TypeVar("T")


class Expiring(Generic[T]):
    """Values by random key, each until its deadline; the oldest dropped beyond a bound."""

    def __init__(self, ttl: float, limit: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.limit = limit
        self._items: dict[str, tuple[float, T]] = {}

    def add(self, value: T) -> str:
        now = time.monotonic()
        for key in [k for k, (deadline, _) in self._items.items() if deadline < now]:
            del self._items[key]
        while len(self._items) >= self.limit:
            del self._items[next(iter(self._items))]
        key = secrets.token_urlsafe(32)
        self._items[key] = (now + self.ttl, value)
        return key

    def get(self, key: str) -> T | None:
        entry = self._items.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def pop(self, key: str) -> T | None:
        value = self.get(key)
        self._items.pop(key, None)
        return value

    def discard(self, key: str) -> None:
        self._items.pop(key, None)


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str


@dataclass
class IssuedCode:
    request: AuthorizationRequest
    account: StaffAccount
    auth_time: int
    used: bool = False
    access_token: str | None = None


@dataclass(frozen=True)
class Grant:
    """What an access token lets userinfo tell."""

    account: StaffAccount
    scope: str


class OAuthFailure(Exception):
    """An error answered as RFC 6749 section 5.2 JSON."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def _oauth_error(exc: OAuthFailure, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})},
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode(params)))


def _at_hash(access_token: str) -> str:
    # OpenID Connect Core 3.1.3.6: the left half of the SHA-256 of the access token.
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _verifier_ok(verifier: str) -> bool:
    return 43 <= len(verifier) <= 128 and set(verifier) <= _VERIFIER_CHARS


_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>工作人员登录 (development)</title>
<style>body{{font-family:sans-serif;max-width:44rem;margin:2rem auto}}
li{{margin:.6rem 0}} .note{{color:#a00}} .role{{color:#555}}</style></head><body>
<h1>工作人员统一身份认证 (development simulator)</h1>
<p class="note">Development OpenID Connect provider: no real identities. It stands in for
浙政钉 and each bank's own sign-in. Choose a demo account.</p>
{body}</body></html>"""

_ROLE_LABELS = {"operator": "经办 (operator)", "viewer": "只读 (viewer)"}


def _staff_page(request_id: str, client: OidcClient, accounts: tuple[StaffAccount, ...]) -> str:
    items = []
    for account in accounts:
        items.append(
            '<li><form method="post" action="/oidc/login">'
            f'<input type="hidden" name="request" value="{html.escape(request_id)}">'
            f'<input type="hidden" name="account" value="{html.escape(account.subject)}">'
            f"<b>{html.escape(account.name)}</b> · {html.escape(account.org_label)} "
            f'<span class="role">{html.escape(_ROLE_LABELS[account.role])}</span> '
            f'<button type="submit">以{html.escape(account.name)}身份登录</button>'
            "</form></li>"
        )
    body = (
        f"<p>Signing in to <b>{html.escape(client.name or client.client_id)}</b>.</p>"
        f"<ul>{''.join(items)}</ul>"
    )
    return _PAGE.format(body=body)


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(body=f'<p class="note">{html.escape(message)}</p>'), status_code=status
    )


@dataclass
class OidcProvider:
    settings: IdpSettings
    accounts: tuple[StaffAccount, ...]
    keys: KeySet = field(init=False)
    pending: Expiring[AuthorizationRequest] = field(init=False)
    codes: Expiring[IssuedCode] = field(init=False)
    tokens: Expiring[Grant] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = load_or_create_key_set(self.settings.oidc_key_file)
        # A sign-in page left open this long is still usable.
        self.pending = Expiring(600)
        # A used code is remembered until it expires, so a replay is told apart.
        self.codes = Expiring(self.settings.code_ttl)
        self.tokens = Expiring(self.settings.access_token_ttl)

    @property
    def issuer(self) -> str:
        return self.settings.issuer.rstrip("/")

    def client(self, client_id: str) -> OidcClient | None:
        return next((c for c in self.settings.oidc_clients if c.client_id == client_id), None)

    def account(self, subject: str) -> StaffAccount | None:
        return next((a for a in self.accounts if a.subject == subject), None)

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oidc/authorize",
            "token_endpoint": f"{base}/oidc/token",
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "jwks_uri": f"{base}/oidc/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "name",
                "preferred_username",
                "org",
                "roles",
            ],
            "authorization_response_iss_parameter_supported": True,
        }

    def id_token(self, issued: IssuedCode, access_token: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            **issued.account.claims(),
            "iss": self.issuer,
            "aud": issued.request.client_id,
            "iat": now,
            "exp": now + self.settings.id_token_ttl,
            "auth_time": issued.auth_time,
            "at_hash": _at_hash(access_token),
        }
        if issued.request.nonce is not None:
            claims["nonce"] = issued.request.nonce
        key = next(iter(self.keys.keys))
        return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key)

    def authenticate_client(
        self, authorization: str | None, client_id: str | None, client_secret: str | None
    ) -> OidcClient:
        """client_secret_basic or client_secret_post (RFC 6749 section 2.3.1), not both."""
        if authorization is not None:
            if client_secret is not None:
                raise OAuthFailure("invalid_request", "Use one client authentication method")
            try:
                basic = parse_basic(authorization)
            except ValueError:
                raise OAuthFailure("invalid_client", "Malformed Basic credentials", 401) from None
            if basic is None:
                raise OAuthFailure("invalid_client", "Use HTTP Basic", 401)
            basic_id, basic_secret = basic
            if client_id is not None and client_id != basic_id:
                raise OAuthFailure("invalid_request", "client_id differs from the Basic one")
            client_id, client_secret = basic_id, basic_secret
        if not client_id or client_secret is None:
            raise OAuthFailure("invalid_client", "Client authentication is required", 401)
        client = self.client(client_id)
        expected = client.secret.get_secret_value() if client is not None else ""
        # Compared even for an unknown client: no timing tells client ids apart.
        matches = secrets.compare_digest(expected.encode(), client_secret.encode())
        if client is None or not matches:
            raise OAuthFailure("invalid_client", "Unknown client or wrong secret", 401)
        return client

    def redeem(
        self, client: OidcClient, code: str, redirect_uri: str | None, verifier: str | None
    ) -> dict[str, Any]:
        issued = self.codes.get(code)
        if issued is None:
            raise OAuthFailure("invalid_grant", "Unknown or expired code")
        if issued.used:
            # A code presented twice was copied: what it gave is withdrawn too.
            if issued.access_token is not None:
                self.tokens.discard(issued.access_token)
            self.codes.discard(code)
            raise OAuthFailure("invalid_grant", "This code has already been used")
        # Single use from here on, whatever the outcome: a stolen code tried with a wrong
        # verifier is burnt.
        issued.used = True
        request = issued.request
        if request.client_id != client.client_id:
            raise OAuthFailure("invalid_grant", "This code was issued to another client")
        if redirect_uri != request.redirect_uri:
            raise OAuthFailure("invalid_grant", "redirect_uri differs from the authorization's")
        if not verifier:
            raise OAuthFailure("invalid_grant", "code_verifier is required (PKCE)")
        if not _verifier_ok(verifier) or not secrets.compare_digest(
            create_s256_code_challenge(verifier), request.code_challenge
        ):
            raise OAuthFailure("invalid_grant", "code_verifier does not match the challenge")
        access_token = self.tokens.add(Grant(issued.account, request.scope))
        issued.access_token = access_token
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
            "scope": request.scope,
            "id_token": self.id_token(issued, access_token),
        }

    def userinfo(self, grant: Grant) -> dict[str, Any]:
        claims = grant.account.claims()
        if "profile" not in grant.scope.split():
            return {"sub": claims["sub"]}
        return claims


def _authorize_check(
    provider: OidcProvider, params: dict[str, str]
) -> tuple[OidcClient, AuthorizationRequest] | HTMLResponse | RedirectResponse:
    """The request, or what to answer: a page when the client or redirect_uri is not one we
    know (RFC 6749 section 4.1.2.1: never redirect there), else an error redirect."""
    client = provider.client(params.get("client_id", ""))
    if client is None:
        return _error_page("Unknown client_id: this application is not registered.")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        return _error_page("redirect_uri is not one registered for this application.")
    state = params.get("state")

    def refuse(error: str, description: str) -> RedirectResponse:
        answer = {"error": error, "error_description": description, "iss": provider.issuer}
        if state is not None:
            answer["state"] = state
        return RedirectResponse(_with_query(redirect_uri, answer), status_code=303)

    if params.get("response_type") != "code":
        return refuse("unsupported_response_type", "Only response_type=code")
    scope = params.get("scope", "")
    if "openid" not in scope.split():
        return refuse("invalid_scope", "scope must include openid")
    challenge = params.get("code_challenge")
    if not challenge:
        return refuse("invalid_request", "PKCE is required: code_challenge (S256)")
    if params.get("code_challenge_method") != "S256":
        return refuse("invalid_request", "code_challenge_method must be S256")
    if not _verifier_ok(challenge) or len(challenge) != 43:
        return refuse("invalid_request", "code_challenge is not an S256 challenge")
    for name in ("state", "nonce"):
        if len(params.get(name) or "") > 512:
            return refuse("invalid_request", f"{name} is too long")
    return client, AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(s for s in scope.split() if s in ("openid", "profile")),
        state=state,
        nonce=params.get("nonce"),
        code_challenge=challenge,
    )


def _single_params(request: Request) -> dict[str, str] | HTMLResponse:
    """Parameters read as sent: a repeated one is refused rather than one picked."""
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            return _error_page(f"Parameter {key} is repeated.")
        if len(value) > 2048:
            return _error_page(f"Parameter {key} is too long.")
        params[key] = value
    return params


def _sign_in(
    provider: OidcProvider, request_id: str, account: str
) -> HTMLResponse | RedirectResponse:
    """The demo account chosen: back to the client with a code."""
    auth_request = provider.pending.pop(request_id)
    if auth_request is None:
        return _error_page("This sign-in has expired or was used; start again.")
    person = provider.account(account)
    if person is None:
        return _error_page("No such demo account.", 404)
    code = provider.codes.add(IssuedCode(auth_request, person, int(time.time())))
    answer = {"code": code, "iss": provider.issuer}
    if auth_request.state is not None:
        answer["state"] = auth_request.state
    return RedirectResponse(_with_query(auth_request.redirect_uri, answer), status_code=303)


@dataclass(frozen=True)
class TokenRequest:
    authorization: str | None
    grant_type: str | None
    code: str | None
    redirect_uri: str | None
    code_verifier: str | None
    client_id: str | None
    client_secret: str | None


def _token_answer(provider: OidcProvider, req: TokenRequest) -> JSONResponse:
    try:
        client = provider.authenticate_client(req.authorization, req.client_id, req.client_secret)
        if req.grant_type != "authorization_code":
            raise OAuthFailure("unsupported_grant_type", "Only authorization_code")
        if not req.code:
            raise OAuthFailure("invalid_request", "code is required")
        body = provider.redeem(client, req.code, req.redirect_uri, req.code_verifier)
    except OAuthFailure as exc:
        challenge = (
            {"WWW-Authenticate": 'Basic realm="idp"'}
            if exc.status == 401 and req.authorization is not None
            else None
        )
        return _oauth_error(exc, challenge)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _userinfo_answer(provider: OidcProvider, authorization: str) -> JSONResponse:
    scheme, _, value = authorization.partition(" ")
    grant = provider.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        return JSONResponse(
            {"error": "invalid_token", "error_description": "Unknown or expired token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return JSONResponse(provider.userinfo(grant), headers={"Cache-Control": "no-store"})


def oidc_router(provider: OidcProvider) -> APIRouter:
    router = APIRouter(tags=["openid-connect"])

    @router.get("/.well-known/openid-configuration")
    async def discovery() -> JSONResponse:
        return JSONResponse(provider.discovery())

    @router.get("/oidc/jwks")
    async def jwks() -> JSONResponse:
        return JSONResponse(dict(provider.keys.as_dict(private=False)))

    @router.get("/oidc/authorize", response_model=None)
    async def authorize(request: Request) -> HTMLResponse | RedirectResponse:
        params = _single_params(request)
        if not isinstance(params, dict):
            return params
        checked = _authorize_check(provider, params)
        if not isinstance(checked, tuple):
            return checked
        client, auth_request = checked
        request_id = provider.pending.add(auth_request)
        return HTMLResponse(_staff_page(request_id, client, provider.accounts))

    @router.post("/oidc/login", response_model=None)
    async def login(
        request_id: Annotated[str, Form(alias="request", max_length=128)],
        account: Annotated[str, Form(max_length=64)],
    ) -> HTMLResponse | RedirectResponse:
        return _sign_in(provider, request_id, account)

    @router.post("/oidc/token")
    async def token(
        request: Request,
        grant_type: Annotated[str | None, Form(max_length=64)] = None,
        code: Annotated[str | None, Form(max_length=256)] = None,
        redirect_uri: Annotated[str | None, Form(max_length=2048)] = None,
        code_verifier: Annotated[str | None, Form(max_length=256)] = None,
        client_id: Annotated[str | None, Form(max_length=128)] = None,
        client_secret: Annotated[str | None, Form(max_length=256)] = None,
    ) -> JSONResponse:
        req = TokenRequest(
            request.headers.get("authorization"),
            grant_type,
            code,
            redirect_uri,
            code_verifier,
            client_id,
            client_secret,
        )
        return _token_answer(provider, req)

    async def userinfo(request: Request) -> JSONResponse:
        return _userinfo_answer(provider, request.headers.get("authorization", ""))

    add: Callable[..., Any] = router.add_api_route
    add("/oidc/userinfo", userinfo, methods=["GET", "POST"])
    return router
