"""The component application factory: what every service has in common.

`create_service_app` wires settings, the database (configured or embedded), the internal
token verifier, problem handlers, request ids, logs, metrics (on their own port, see
`shared.metrics`), `/healthz` and `/readyz`, and an outbound HTTP client, all made once in
the lifespan. A service adds its routers and, optionally, startup work (background
consumers) through `ServiceSpec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth.service_tokens import GatewayTokenSource, TokenSource
from shared.auth.tokens import JwksCache, TokenVerifier
from shared.db import create_engine, create_sessionmaker
from shared.docs import install_offline_docs
from shared.errors import install_problem_handlers
from shared.http import create_http_client
from shared.logging import (
    bind_request_id,
    configure_logging,
    unbind_request_id,
    with_request_id,
)
from shared.metrics import observe_request, route_template, serve_metrics
from shared.migrations import head_revisions, known_revisions
from shared.pg import resolve_database_url
from shared.settings import ComponentSettings
from shared.tracing import configure_tracing

Hook = Callable[[FastAPI], Awaitable[None]]
# Tracing is OpenTelemetry's FastAPI instrumentor (shared.tracing), switched on by the OTEL_*
# environment. FastAPI's own telemetry would add a second server span per request once a tracer
# provider is set, and asks whether it is enabled on every request (2.5 % of a proxied request
# in the gateway's profile): off for every component.
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    schema: str
    migrations_dir: Path
    routers: list[APIRouter]
    version: str = "1.0.0"
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    # Reads answered before routing when they can be (see `HotRoute`).
    hot_routes: list[HotRoute] = field(default_factory=list)


@dataclass
class Overrides:
    """What tests (and `make run`) inject instead of what settings would build."""

    jwks: JwksCache | None = None
    http_transport: httpx.AsyncBaseTransport | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _jwks(spec: ServiceSpec, settings: ComponentSettings, http: httpx.AsyncClient) -> JwksCache:
    if settings.jwks_url:
        return JwksCache.from_url(http, settings.jwks_url)
    if settings.jwks_file:
        return JwksCache.from_file(settings.jwks_file)
    raise RuntimeError(f"{spec.name}: set jwks_url or jwks_file (the token issuer)")


def _token_source(settings: ComponentSettings, http: httpx.AsyncClient) -> TokenSource | None:
    """Service tokens for calling other services, when the component has a client."""
    if settings.token_url and settings.client_id and settings.client_secret:
        return GatewayTokenSource(
            http, settings.token_url, settings.client_id, settings.client_secret.get_secret_value()
        )
    return None


def _open_state(
    app: FastAPI, spec: ServiceSpec, settings: ComponentSettings, overrides: Overrides
) -> AsyncEngine:
    """The database, the outbound client, token verification and service tokens."""
    url = resolve_database_url(settings.database_url, settings.var_dir)
    # Reads are most of the traffic, so most of the connections are the read pool's, all kept.
    # A pool's connections beyond `pool_size` are closed when handed back (SQLAlchemy's
    # QueuePool): with overflow, every burst above the pool size started and ended PostgreSQL
    # backends (issue 11: 70 sessions opened in 10 s of dashboards at 16 connections, a third
    # of the calls). A read waits for a kept connection instead; two cores gain nothing from
    # more concurrent statements. The same 30 connections in all (docs/deploy.md).
    engine = create_engine(
        url,
        pool_size=max(2, settings.db_pool_size // 2),
        max_overflow=settings.db_max_overflow,
    )
    app.state.settings = settings
    app.state.database_url = url
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    # GET and HEAD requests' sessions (shared.db._session).
    app.state.read_engine = create_engine(
        url,
        pool_size=settings.db_pool_size + settings.db_max_overflow // 2,
        max_overflow=0,
        read_only=True,
    )
    app.state.read_sessionmaker = create_sessionmaker(app.state.read_engine)
    app.state.http = create_http_client(transport=overrides.http_transport)
    app.state.heads = head_revisions(spec.migrations_dir)
    app.state.known_revisions = known_revisions(spec.migrations_dir)
    app.state.background = set()
    for key, value in overrides.extra.items():
        setattr(app.state, key, value)
    jwks = overrides.jwks if overrides.jwks is not None else _jwks(spec, settings, app.state.http)
    app.state.verifier = TokenVerifier(jwks, settings.token_issuer, audience=spec.name)
    if getattr(app.state, "token_source", None) is None:
        app.state.token_source = _token_source(settings, app.state.http)
    return engine


async def _close_state(app: FastAPI, spec: ServiceSpec, engine: AsyncEngine) -> None:
    for hook in spec.on_shutdown:
        with contextlib.suppress(Exception):
            await hook(app)
    for task in list(app.state.background):
        task.cancel()
    if app.state.background:
        await asyncio.gather(*app.state.background, return_exceptions=True)
    await app.state.http.aclose()
    await app.state.read_engine.dispose()
    await engine.dispose()


def create_service_app(
    spec: ServiceSpec, settings: ComponentSettings, overrides: Overrides | None = None
) -> FastAPI:
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(json=settings.json_logs, level=settings.log_level)
        engine = _open_state(app, spec, settings, overrides)
        stop_metrics = None
        try:
            if settings.metrics_port is not None:
                stop_metrics = serve_metrics(settings.metrics_host, settings.metrics_port)
            for hook in spec.on_startup:
                await hook(app)
            # After the hooks, which may make outbound clients of their own (the gateway's).
            configure_tracing(app, spec.name)
            yield
        finally:
            if stop_metrics is not None:
                await asyncio.to_thread(stop_metrics)
            await _close_state(app, spec, engine)

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_problem_handlers(app)
    install_offline_docs(app)
    app.include_router(health_router(spec))
    for router in spec.routers:
        app.include_router(router)
    check_hot_routes(app, spec.hot_routes)
    app.add_middleware(ServiceMiddleware, component=spec.name, root=app, hot_routes=spec.hot_routes)
    return app


HotHandler = Callable[[Scope, dict[str, str]], Awaitable[Response | None]]


@dataclass(frozen=True)
class HotRoute:
    """A read answered before FastAPI's routing and dependency solving, when it can be.

    The route stays an ordinary FastAPI route (`method path`): its OpenAPI entry, its
    validation, its errors and its authorization are that route's. The handler, given the
    scope and the path's parameters, answers only the plain successful case, with exactly
    the route's checks and answer; for anything else (no or bad token, a code that fails
    its check, a query parameter it does not handle, a row it cannot show) it returns None
    and the request goes on to the route as if the handler were not there. So a handler
    never answers an error: the route does, as it always did.
    """

    method: str
    path: str
    handler: HotHandler

    def compile(self) -> re.Pattern[str]:
        # Starlette's `{name}` matches one path segment.
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


class ServiceMiddleware:
    """What every component does around each request, in one pure-ASGI layer: the request id
    (`shared.logging`), the request metrics (`shared.metrics`), relative redirects, and the
    hot routes. One layer and one `send` wrapper instead of three: each layer is a coroutine
    and a closure per request and a call per message on the hot path.

    Redirects to this very site say only the path. Starlette's trailing-slash redirect
    (`/v1/me/` -> `/v1/me`) builds an absolute URL from the request's `Host` header, which
    the caller chooses: `Host: evil.example` came back as `Location: http://evil.example/v1/me`
    (issue 10), and behind the gateway a service's redirect named the service's own address.
    A relative reference means the same to the browser and reflects nothing. Redirects
    elsewhere (the login provider) are left alone.
    """

    def __init__(
        self, app: ASGIApp, component: str, root: ASGIApp, hot_routes: Sequence[HotRoute] = ()
    ) -> None:
        self.app = app
        self.component = component
        self.root = root
        self.hot = [(r.method, r.compile(), r.path, r.handler) for r in hot_routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid, token = bind_request_id(scope)
        rid_bytes = rid.encode()
        status = 500

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = message.get("headers", [])
                if 300 <= status < 400:
                    own = _own_origins(scope)
                    headers = [
                        (k, _relative(v, own) if k == b"location" else v) for k, v in headers
                    ]
                message["headers"] = with_request_id(headers, rid_bytes)
            await send(message)

        template = None
        try:
            hot = await self._hot(scope)
            if hot is not None:
                template, response = hot
                await response(scope, receive, wrapped)
            else:
                await self.app(scope, receive, wrapped)
        finally:
            unbind_request_id(token)
            observe_request(
                self.component,
                scope.get("method", "GET"),
                template or route_template(self.root, scope),
                status,
                time.perf_counter() - start,
            )

    async def _hot(self, scope: Scope) -> tuple[str, Response] | None:
        if not self.hot or scope.get("root_path"):
            return None
        method, path = scope["method"], scope["path"]
        for hot_method, pattern, template, handler in self.hot:
            if method != hot_method:
                continue
            match = pattern.match(path)
            if match is None:
                continue
            response = await handler(scope, match.groupdict())
            return None if response is None else (template, response)
        return None


def routed(routes: Sequence[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route routing chooses for `scope`: the first full match, looked into when it is
    an included router (FastAPI keeps those as `_IncludedRouter`, matched in turn)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.FULL:
            continue
        select = getattr(route, "_match", None)
        if select is None:
            return route
        chosen: BaseRoute | None = select(scope)[2]
        while chosen is not None and hasattr(chosen, "_match"):
            chosen = chosen._match(scope)[2]
        return chosen
    return None


def check_hot_routes(app: FastAPI, hot_routes: Sequence[HotRoute]) -> None:
    """Each hot route is a documented route of the app, and the one routing would choose
    for its paths (no earlier route shadows it), so falling through reaches that route."""
    for hot in hot_routes:
        sample = re.sub(r"\{\w+\}", "x", hot.path)
        scope: Scope = {"type": "http", "method": hot.method, "path": sample, "root_path": ""}
        chosen = routed(app.router.routes, scope)
        if not isinstance(chosen, APIRoute) or chosen.path != hot.path:
            raise RuntimeError(f"hot route {hot.method} {hot.path} is not the route it shadows")


def _own_origins(scope: Scope) -> set[bytes]:
    scheme = str(scope.get("scheme", "http")).encode()
    hosts = {v for k, v in scope.get("headers", []) if k == b"host"}
    server = scope.get("server")
    if server:
        hosts.add(f"{server[0]}:{server[1]}".encode())
    return {scheme + b"://" + h for h in hosts}


def _relative(location: bytes, own: set[bytes]) -> bytes:
    for origin in own:
        if location.startswith(origin) and location[len(origin) : len(origin) + 1] in (
            b"/",
            b"?",
            b"",
        ):
            rest = location[len(origin) :]
            return rest if rest.startswith(b"/") else b"/" + rest
    return location


def start_background(app: FastAPI, coro: Awaitable[None], name: str) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    task.set_name(name)
    app.state.background.add(task)
    task.add_done_callback(app.state.background.discard)


def health_router(spec: ServiceSpec) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database reachable and migrated to head")
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        ok = True
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                checks["database"] = "ok"
                rows = await conn.execute(
                    text(f'SELECT version_num FROM "{spec.schema}".alembic_version')
                )
                current = {r[0] for r in rows}
                heads = request.app.state.heads
                if current == heads:
                    checks["migrations"] = "ok"
                elif current and not current & request.app.state.known_revisions:
                    # Migrations run before a rollout: while old pods still serve, the schema
                    # is ahead of their code. Migrations are additive first, so they stay
                    # ready instead of dropping out of the Service all at once.
                    checks["migrations"] = "ahead"
                else:
                    ok = False
                    checks["migrations"] = f"at {sorted(current)}, head is {sorted(heads)}"
        except Exception as exc:
            ok = False
            checks.setdefault("database", f"unreachable: {type(exc).__name__}")
            checks.setdefault("migrations", "unknown")
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    return router
