"""The gateway: the platform's only public entry.

It logs enterprises in through the enterprise code (ESSO) and staff through their
organisation's OpenID Connect provider (an ID token exchanged by the portal), gives bank
systems, the government portal and our services tokens by client credentials, issues the
internal ES256 tokens every service verifies, and routes `/v1/{scoring,credit,policy}/...`
to the services with limits, timeouts and a breaker per upstream.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import httpx
from fastapi import FastAPI
from httpx_aiohttp import AiohttpTransport

from gateway.auth.clients import load_or_create_secret_key
from gateway.auth.esso import EssoClient
from gateway.auth.identity import ACCESS_COOKIE, GATEWAY_AUDIENCE, Identity, RevocationList
from gateway.auth.staff import StaffVerifier
from gateway.bodylimit import BodyLimitMiddleware
from gateway.proxy.http1 import Http1Pool
from gateway.proxy.router import ProxyFastPath
from gateway.proxy.upstreams import Http1Sender, Upstreams
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from shared.app import Overrides, ServiceSpec, create_service_app, start_background
from shared.auth.keys import load_or_create_key_set
from shared.auth.tokens import JwksCache, TokenIssuer, TokenVerifier
from shared.http import KEEPALIVE_EXPIRY, create_http_client

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "gateway"

DESCRIPTION = """\
The public API of the innovation-points platform (企业创新积分).

**Authentication**
* Enterprises (the legal person, through the enterprise code 企业码): browsers use
  `GET /v1/auth/esso/login`; mini-app backends post the provider's `ssotoken` to
  `POST /v1/auth/esso/exchange`. Both give an access token (also set as a cookie for
  browsers) and a refresh token (`POST /v1/auth/refresh`); `POST /v1/auth/logout` revokes.
* Government staff and bank officers, as persons: they sign in at their organisation's
  OpenID Connect provider through the web portal, which exchanges the ID token at
  `POST /v1/auth/token` (RFC 8693 token exchange, portal clients only) for a staff session
  with the person's role (viewer or operator); refresh and logout as above.
* Bank systems and the government portal: OAuth 2 client credentials at
  `POST /v1/auth/token`. Our own services get internal tokens there for the services they
  call (`audience=<service>`), never a token for this API.
* Send the access token as `Authorization: Bearer <token>`.

**The services, behind the gateway** (every method; the path after the prefix is the service's
own path under `/v1`, documented in that service's OpenAPI):
* `/v1/scoring/...` → the scoring service (e.g. `GET /v1/scoring/enterprises/{uscc}/score`)
* `/v1/credit/...` → the credit service, the financial supermarket (offers, applications)
* `/v1/policy/...` → the policy service (cultivation pools, matches, pushes)

The gateway strips the caller's credentials and any identity header and calls the service
with a short-lived internal token for that service alone. A service's problem answers come
back unchanged; when a service is down the gateway answers 502/503/504 problems, and 429
with `Retry-After` when a caller exceeds its rate limit. Every answer carries `X-Request-ID`.
"""


def _issuer(settings: GatewaySettings, overrides: Overrides) -> TokenIssuer:
    issuer = overrides.extra.get("issuer")
    if isinstance(issuer, TokenIssuer):
        return issuer
    return TokenIssuer(load_or_create_key_set(settings.key_file), settings.token_issuer)


def create_app(
    settings: GatewaySettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    from gateway import openapi as public_openapi
    from gateway.auth.router import router as auth_router
    from gateway.dashboard.router import router as dashboard_router
    from gateway.proxy.router import router as proxy_router

    settings = settings or GatewaySettings()
    overrides = overrides or Overrides()
    issuer = _issuer(settings, overrides)
    # The gateway verifies its own access tokens against its own keys, never a remote JWKS.
    overrides.jwks = JwksCache.static(issuer.jwks())

    async def startup(app: FastAPI) -> None:
        app.state.issuer = issuer
        revocations = RevocationList()
        # create_service_app made the verifier for audience "gateway" from the keys above.
        verifier: TokenVerifier = app.state.verifier
        assert verifier.audience == GATEWAY_AUDIENCE
        app.state.identity = Identity(
            issuer, verifier, revocations, access_cookie=settings.cookie(ACCESS_COOKIE, "/")[0]
        )
        key = settings.client_secret_hmac_key
        app.state.client_secret_hmac_key = (
            key.get_secret_value().encode()
            if key is not None and key.get_secret_value()
            else load_or_create_secret_key(settings.var_dir)
        )
        app.state.limiter = RateLimiter(settings.rate_limit_storage)
        # The hot path has its own HTTP/1.1 client (gateway.proxy.http1; aiohttp directly
        # with upstream_transport=aiohttp); the httpx client over an aiohttp pool serves
        # the rest (and the proxy while tracing is on).
        # Tests route the httpx client in-process and have no aiohttp session.
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
            keepalive_expiry=KEEPALIVE_EXPIRY,  # under the services' 5 s (shared.http)
        )
        session = fast = None
        if overrides.http_transport is None and settings.upstream_transport != "httpx":
            session = upstream_session(limits)
            if settings.upstream_transport == "http1":
                fast = Http1Sender(
                    Http1Pool(
                        limits.max_connections or 0,
                        limits.keepalive_expiry,
                        httpx.create_ssl_context(),
                    )
                )
        app.state.upstream_http = create_http_client(
            timeout=settings.upstream_timeout,
            connect_timeout=settings.upstream_connect_timeout,
            max_connections=settings.upstream_max_connections,
            transport=overrides.http_transport
            or (
                AiohttpTransport(limits=limits, client=session)
                if session is not None
                else httpx.AsyncHTTPTransport(limits=limits)
            ),
        )
        app.state.upstreams = Upstreams(
            settings,
            app.state.upstream_http,
            session,
            # configure_tracing runs after this hook: asked per call, not now.
            tracing=lambda: getattr(app.state, "tracer_provider", None) is not None,
            fast=fast,
        )
        app.state.staff_verifier = StaffVerifier.from_settings(settings, app.state.http)
        app.state.esso = EssoClient(
            app.state.http,
            settings.esso_query_url,
            settings.esso_project_id,
            settings.esso_project_secret.get_secret_value(),
            settings.esso_timeout,
            refuse_simulator=settings.environment == "production",
        )
        start_background(
            app,
            revocations.run(app.state.sessionmaker, settings.revocation_poll_seconds),
            "revocation-poll",
        )

    async def shutdown(app: FastAPI) -> None:
        fast = app.state.upstreams.fast
        if isinstance(fast, Http1Sender):
            await fast.pool.aclose()
        await app.state.upstream_http.aclose()

    spec = ServiceSpec(
        name="gateway",
        title="Innovation points: public API (gateway)",
        description=DESCRIPTION,
        schema=SCHEMA,
        migrations_dir=MIGRATIONS,
        # The proxy first: it is the hot path, and routes are matched in order.
        routers=[proxy_router(), auth_router, dashboard_router],
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    app = create_service_app(spec, settings, overrides)
    app.add_middleware(
        BodyLimitMiddleware,
        proxied_max=settings.max_body_bytes,
        import_max=settings.max_import_body_bytes,
    )
    # Outermost: proxied requests skip the router (see ProxyFastPath).
    app.add_middleware(
        ProxyFastPath,
        root=app,
        component=spec.name,
        proxied_max=settings.max_body_bytes,
        import_max=settings.max_import_body_bytes,
    )
    public_openapi.install(app)
    return app


def upstream_session(limits: httpx.Limits) -> aiohttp.ClientSession:
    """The aiohttp pool, as httpx-aiohttp made it for these limits (keep-alive expiry, TLS
    verification with httpx's defaults, no proxies from the environment)."""
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry,
        ssl=httpx.create_ssl_context(),
    )
    return aiohttp.ClientSession(connector=connector)
