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


PrincipalKey = tuple[str, str, str | None, str | None, tuple[str, ...], str | None, str | None]


class InternalTokens:
    """The gateway's internal tokens, one per principal and audience, reused for most of
    their life instead of signed anew per request (an ES256 signature was a third of the
    gateway's CPU per proxied request).

    A token is handed out again while more than a quarter of its lifetime (and at least
    `min_left` seconds) remains, so a service never receives one about to expire. Reuse
    changes nothing a service can tell: the claims are those a fresh token would carry
    except `iat`/`jti`, and nothing checks a `jti` twice. Revocation is unaffected: the
    gateway checks the caller on every request before it asks for a token. Bounded: when
    full, the cache is emptied (a signature each refills it).
    """

    def __init__(self, issuer: TokenIssuer, size: int = 10_000, min_left: float = 10.0) -> None:
        self.issuer = issuer
        self.size = size
        self.min_left = min_left
        self._tokens: dict[tuple[PrincipalKey, str, int], tuple[str, float]] = {}

    @staticmethod
    def _key(p: Principal) -> PrincipalKey:
        return (p.sub, p.kind.value, p.uscc, p.bank_id, tuple(p.scopes), p.act, p.role)

    def token(self, principal: Principal, audience: str, ttl: int) -> str:
        key = (self._key(principal), audience, ttl)
        now = time.time()
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        token = self.issuer.mint(principal, audience, ttl=ttl)
        if len(self._tokens) >= self.size:
            self._tokens.clear()
        self._tokens[key] = (token, now + ttl - max(ttl / 4, self.min_left))
        return token


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
