"""The assembled platform in one test process, for tests.

Every component is its real FastAPI app on a real (per-test) PostgreSQL database; calls
between components go through an httpx transport that routes by host name to the in-process
app, so `http://scoring/v1/...` from the credit service reaches the scoring app. Stopping a
component makes its host refuse connections, as a dead upstream would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from shared.app import Overrides
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.service_tokens import LocalTokenSource
from shared.auth.tokens import JwksCache, TokenIssuer
from shared.components import component, load


def _state_per_request(app: Any) -> Any:
    """Give each request its own copy of the lifespan state, as uvicorn does.

    asgi-lifespan hands every request the same `scope["state"]` dict, so concurrent requests
    would share `request.state` (and with it the request's database session).
    """

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            scope = {**scope, "state": dict(scope.get("state") or {})}
        await app(scope, receive, send)

    return wrapped


class RoutingTransport(httpx.AsyncBaseTransport):
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        app = self.platform.apps.get(request.url.host)
        if app is None:
            raise httpx.ConnectError(f"{request.url.host} is down", request=request)
        return await httpx.ASGITransport(app=app).handle_async_request(request)


@dataclass
class Platform:
    database_url: str
    issuer: TokenIssuer
    apps: dict[str, Any] = field(default_factory=dict)  # host -> ASGI app
    fastapi: dict[str, FastAPI] = field(default_factory=dict)
    managers: dict[str, LifespanManager] = field(default_factory=dict)
    settings_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def transport(self) -> RoutingTransport:
        return RoutingTransport(self)

    def settings_for(self, name: str, **values: Any) -> Any:
        cls = load(component(name).settings)
        return cls(
            database_url=self.database_url,
            environment="test",
            **{**self.settings_overrides.get(name, {}), **values},
        )

    async def start(self, *names: str, **settings: Any) -> None:
        for name in names:
            if name in self.apps:
                continue
            create_app: Callable[..., FastAPI] = load(component(name).factory)
            overrides = Overrides(
                jwks=JwksCache.static(self.issuer.jwks()),
                http_transport=self.transport,
                extra={
                    "token_source": LocalTokenSource(
                        self.issuer, Principal(sub=f"svc-{name}", kind=PrincipalKind.SERVICE)
                    ),
                    **self.extra.get(name, {}),
                },
            )
            app = create_app(self.settings_for(name, **settings), overrides)
            manager = LifespanManager(
                _state_per_request(app), startup_timeout=60, shutdown_timeout=30
            )
            await manager.__aenter__()
            self.apps[name] = manager.app
            self.fastapi[name] = app
            self.managers[name] = manager

    async def stop(self, name: str) -> None:
        manager = self.managers.pop(name, None)
        self.apps.pop(name, None)
        self.fastapi.pop(name, None)
        if manager is not None:
            await manager.__aexit__(None, None, None)

    async def stop_all(self) -> None:
        for name in list(self.managers):
            await self.stop(name)

    def token(
        self,
        kind: str,
        aud: str,
        *,
        uscc: str | None = None,
        bank_id: str | None = None,
        scopes: list[str] | None = None,
        sub: str | None = None,
    ) -> str:
        principal = Principal(
            sub=sub or uscc or bank_id or f"test-{kind}",
            kind=PrincipalKind(kind),
            uscc=uscc,
            bank_id=bank_id,
            scopes=scopes or [],
        )
        return self.issuer.mint(principal, aud)

    def client(
        self,
        name: str,
        kind: str | None = None,
        *,
        uscc: str | None = None,
        bank_id: str | None = None,
        scopes: list[str] | None = None,
    ) -> httpx.AsyncClient:
        """A client of one component, authenticated as the given principal (or anonymous)."""
        headers = {}
        if kind is not None:
            tok = self.token(kind, name, uscc=uscc, bank_id=bank_id, scopes=scopes)
            headers["Authorization"] = f"Bearer {tok}"
        return httpx.AsyncClient(
            transport=self.transport, base_url=f"http://{name}", headers=headers, timeout=60
        )
