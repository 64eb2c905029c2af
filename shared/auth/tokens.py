"""Minting and verifying internal tokens.

Written on joserfc (JWS/JWT/JWK); what is ours is the policy: ES256 only (so `alg: none` and
HMAC-with-the-public-key confusions are refused before any key is tried), an audience per
service, a short expiry, and a JWKS cache that refetches when it meets an unknown key id so a
rotation at the issuer is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.util import urlsafe_b64decode

from shared.auth.principal import Principal
from shared.errors import Unauthorized

ALGORITHM = "ES256"
DEFAULT_TTL = 120
CLOCK_LEEWAY = 5


class TokenIssuer:
    def __init__(self, key_set: KeySet, issuer: str, ttl: int = DEFAULT_TTL) -> None:
        self.key_set = key_set
        self.issuer = issuer
        self.ttl = ttl

    @property
    def signing_key_id(self) -> str:
        kid = next(iter(self.key_set.keys)).kid
        assert kid is not None
        return kid

    def mint(
        self,
        principal: Principal,
        audience: str,
        ttl: int | None = None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """`extra` adds claims beside the principal's (the gateway's session id `sid`)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now - 1,
            "exp": now + (ttl or self.ttl),
            "jti": uuid.uuid4().hex,
            **principal.model_dump(exclude_none=True),
        }
        header = {"alg": ALGORITHM, "kid": self.signing_key_id, "typ": "JWT"}
        return jwt.encode(header, claims, next(iter(self.key_set.keys)))

    def jwks(self) -> dict[str, Any]:
        return dict(self.key_set.as_dict(private=False))


JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


class JwksCache:
    """Public keys of the issuer, fetched with httpx (never blocking I/O), cached."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        max_age: float = 300.0,
        min_refetch_interval: float = 10.0,
    ) -> None:
        self._fetch = fetch
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval

    @classmethod
    def from_url(cls, client: httpx.AsyncClient, url: str) -> JwksCache:
        async def fetch() -> dict[str, Any]:
            resp = await client.get(url)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data

        return cls(fetch)

    @classmethod
    def from_file(cls, path: Path) -> JwksCache:
        async def fetch() -> dict[str, Any]:
            data = json.loads(await asyncio.to_thread(path.read_text))
            # Accept a private key file too: publish only the public halves.
            return dict(KeySet.import_key_set(data).as_dict(private=False))

        return cls(fetch, max_age=5.0, min_refetch_interval=1.0)

    @classmethod
    def static(cls, jwks: dict[str, Any]) -> JwksCache:
        async def fetch() -> dict[str, Any]:
            return jwks

        return cls(fetch)

    async def _refresh(self) -> None:
        data = await self._fetch()
        self._keys = KeySet.import_key_set(cast(Any, data))
        self._fetched_at = time.monotonic()

    async def get(self, kid: str | None) -> KeySet:
        now = time.monotonic()
        stale = self._keys is None or now - self._fetched_at > self.max_age
        unknown = self._keys is not None and kid is not None and not _has_kid(self._keys, kid)
        if stale or (unknown and now - self._fetched_at > self.min_refetch_interval):
            try:
                await self._refresh()
            except Exception as exc:  # the issuer unreachable: keep what we had
                if self._keys is None:
                    raise Unauthorized("The token issuer's keys are unavailable") from exc
        assert self._keys is not None
        return self._keys


def _has_kid(key_set: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in key_set.keys)


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        header_b64 = token.split(".", 1)[0]
        header: dict[str, Any] = json.loads(urlsafe_b64decode(header_b64.encode()))
    except Exception as exc:
        raise Unauthorized("Malformed token") from exc
    if not isinstance(header, dict):
        raise Unauthorized("Malformed token")
    return header


class VerifiedCache:
    """Tokens already verified, by the SHA-256 of the token, until they expire.

    A signature check is the largest CPU cost of an authenticated request, and the gateway
    reuses an internal token for most of its short life, so each is checked once, not per
    request. Bounded: when full, the expired entries go, and if none had, all of them (one
    verification each refills it). An entry is kept no longer than the token's own `exp`
    (without the clock leeway a fresh verification allows). A key dropped from the issuer's
    JWKS stops new tokens at once; one verified before keeps working until it expires, as
    it would have had it been checked a moment earlier.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: dict[bytes, tuple[float, Any]] = {}

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.time():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: bytes, expires_at: float, value: Any) -> None:
        if len(self._entries) >= self.size:
            now = time.time()
            for k in [k for k, (exp, _) in self._entries.items() if exp <= now]:
                del self._entries[k]
            if len(self._entries) >= self.size:
                self._entries.clear()
        self._entries[key] = (expires_at, value)

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)


class TokenVerifier:
    def __init__(self, jwks: JwksCache, issuer: str, audience: str) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self._verified = VerifiedCache()
        self._claims = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )

    async def verify(self, token: str) -> Principal:
        key = VerifiedCache.key(token)
        cached: Principal | None = self._verified.get(key)
        if cached is not None:
            return cached.model_copy(deep=True)
        claims = await self.verify_claims(token)
        try:
            principal = Principal.model_validate(claims)
        except ValueError as exc:
            raise Unauthorized("Token claims do not describe a principal") from exc
        self._verified.put(key, float(claims["exp"]), principal.model_copy(deep=True))
        return principal

    async def verify_claims(self, token: str) -> dict[str, Any]:
        """The verified claims, all of them (the gateway also reads `sid` and `jti`)."""
        if token.count(".") != 2:
            raise Unauthorized("Malformed token")
        header = _unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized("Token algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("Token has no key id")
        keys = await self.jwks.get(kid)
        if not _has_kid(keys, kid):
            raise Unauthorized("Token signed by an unknown key")
        try:
            decoded = jwt.decode(token, keys, algorithms=[ALGORITHM])
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise Unauthorized(f"Token refused: {exc.description or exc.error}") from exc
        except ValueError as exc:
            raise Unauthorized("Token refused") from exc
        return dict(decoded.claims)
