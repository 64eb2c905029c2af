"""Tokens for calls between services (credit and policy reading the scoring service).

In a deployment the gateway issues them: the service authenticates with its own client
credentials (`POST /v1/auth/token`, `grant_type=client_credentials`, `audience=<service>`)
and caches each token until shortly before it expires. In tests and for the development CLI
a local issuer can stand in.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx

from shared.auth.principal import Principal
from shared.auth.tokens import TokenIssuer
from shared.errors import ServiceUnavailable


class TokenSource(Protocol):
    async def token(self, audience: str) -> str: ...


class LocalTokenSource:
    def __init__(self, issuer: TokenIssuer, principal: Principal) -> None:
        self.issuer = issuer
        self.principal = principal

    async def token(self, audience: str) -> str:
        return self.issuer.mint(self.principal, audience)


class GatewayTokenSource:
    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_margin: float = 30.0,
    ) -> None:
        self.client = client
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_margin = refresh_margin
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    async def token(self, audience: str) -> str:
        cached = self._cache.get(audience)
        if cached and cached[1] - self.refresh_margin > time.monotonic():
            return cached[0]
        async with self._lock:
            cached = self._cache.get(audience)
            if cached and cached[1] - self.refresh_margin > time.monotonic():
                return cached[0]
            try:
                resp = await self.client.post(
                    self.token_url,
                    data={"grant_type": "client_credentials", "audience": audience},
                    auth=(self.client_id, self.client_secret),
                )
                resp.raise_for_status()
                body = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ServiceUnavailable("Could not obtain a service token") from exc
            token = str(body["access_token"])
            self._cache[audience] = (token, time.monotonic() + float(body.get("expires_in", 60)))
            return token
