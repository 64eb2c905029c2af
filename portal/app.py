"""The portal application: pages for legal persons now, staff pages in part 2.

It owns only its sessions (schema `portal`); everything else it shows comes from the
gateway's public API through one HTTP client made in the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from portal.deps import csrf_guard
from portal.errors import install_error_pages
from portal.gateway import BrowserAddressMiddleware, GatewayClient
from portal.oidc import StaffOidc
from portal.reference import ReferenceCache
from portal.security import SecurityHeadersMiddleware
from portal.sessions import SessionStore, token_cipher
from portal.settings import PortalSettings
from portal.web import STATIC
from shared.app import NO_NATIVE_TELEMETRY, Overrides, ServiceSpec, health_router
from shared.db import create_engine, create_sessionmaker
from shared.http import create_http_client
from shared.logging import RequestIdMiddleware, configure_logging
from shared.metrics import MetricsMiddleware, serve_metrics
from shared.migrations import head_revisions, known_revisions
from shared.pg import resolve_database_url

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "portal"


async def _sweep(store: SessionStore, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):  # the database away for a moment: next round
            await store.sweep()


def include_routes(app: FastAPI, health: APIRouter) -> None:
    from portal.routes import auth, bank, enterprise, governance, government, notice, staff

    app.include_router(health)
    app.include_router(auth.router)
    app.include_router(enterprise.router)
    app.include_router(notice.router)
    app.include_router(government.router)
    app.include_router(bank.router)
    app.include_router(governance.router)
    # Staff placeholders last, and only for paths no real page has claimed.
    claimed = {getattr(r, "path", None) for r in app.routes}
    for route in staff.placeholder.routes:
        if getattr(route, "path", None) not in claimed:
            app.router.routes.append(route)


def create_app(
    settings: PortalSettings | None = None, overrides: Overrides | None = None
) -> FastAPI:
    settings = settings or PortalSettings()
    overrides = overrides or Overrides()
    cipher = token_cipher(settings)  # a bad key fails at start, not at the first login

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(json=settings.json_logs, level=settings.log_level)
        url = resolve_database_url(settings.database_url, settings.var_dir)
        engine = create_engine(
            url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.heads = head_revisions(MIGRATIONS)
        app.state.known_revisions = known_revisions(MIGRATIONS)
        app.state.sessions = SessionStore(app.state.sessionmaker, cipher, settings)
        http = create_http_client(
            settings.gateway_url.rstrip("/"),
            timeout=settings.gateway_timeout,
            transport=overrides.http_transport,
        )
        app.state.gateway = GatewayClient(
            http, app.state.sessions, settings.refresh_margin_seconds, settings.gateway_client()
        )
        app.state.oidc = StaffOidc(
            settings, app.state.sessionmaker, cipher, transport=overrides.http_transport
        )
        app.state.reference = ReferenceCache(settings.reference_cache_seconds)
        sweeper = None
        if settings.session_sweep_seconds > 0:
            sweeper = asyncio.create_task(
                _sweep(app.state.sessions, settings.session_sweep_seconds)
            )
        # Metrics on their own internal port, never the public one (as every component).
        stop_metrics = None
        if settings.metrics_port is not None:
            stop_metrics = serve_metrics(settings.metrics_host, settings.metrics_port)
        try:
            yield
        finally:
            if stop_metrics is not None:
                await asyncio.to_thread(stop_metrics)
            if sweeper is not None:
                sweeper.cancel()
                await asyncio.gather(sweeper, return_exceptions=True)
            await http.aclose()
            await app.state.oidc.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Innovation points: portal",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(csrf_guard)],
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_error_pages(app)
    spec = ServiceSpec(
        name="portal",
        title="portal",
        description="",
        schema=SCHEMA,
        migrations_dir=MIGRATIONS,
        routers=[],
    )
    include_routes(app, health_router(spec))
    # Text assets compress well (ECharts: 1.1 MB → about 370 kB); pages are not compressed, as
    # they carry the CSRF token beside reflected input (BREACH).
    app.mount("/static", GZipMiddleware(STATIC, minimum_size=1024), name="static")
    app.add_middleware(MetricsMiddleware, component="portal", root=app)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(BrowserAddressMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
