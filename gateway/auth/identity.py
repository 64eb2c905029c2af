"""Who is calling the gateway, and the tokens that say so.

Callers present a gateway access token: an ES256 JWT from our own issuer with audience
`gateway` (so it is useless against a service directly, and a service's token is useless
here). Browsers carry the same token in an HttpOnly cookie. The gateway never forwards it:
each upstream call gets a fresh internal token for that one service.

Revocation without a database round trip per request: revoked session and token ids live in
memory, and a background poll picks up those revoked by other replicas every few seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import Revocation
from shared.auth.principal import Principal, PrincipalKind
from shared.auth.service_tokens import InternalTokens
from shared.auth.tokens import TokenIssuer, TokenVerifier, VerifiedCache
from shared.errors import Forbidden, Unauthorized

GATEWAY_AUDIENCE = "gateway"
ACCESS_COOKIE = "ip_access"
REFRESH_COOKIE = "ip_refresh"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = structlog.get_logger("gateway.identity")


@dataclass(frozen=True)
class Caller:
    principal: Principal
    claims: dict[str, Any]
    via_cookie: bool

    @property
    def session_id(self) -> str | None:
        sid = self.claims.get("sid")
        return sid if isinstance(sid, str) else None

    @property
    def token_id(self) -> str:
        return str(self.claims["jti"])

    @property
    def expires_at(self) -> float:
        return float(self.claims["exp"])


CLIENT_PREFIX = "client:"


def client_key(client_id: str) -> str:
    # Client ids are up to 64 characters; the revocation key must fit beside a nonce.
    return hashlib.sha256(client_id.encode()).hexdigest()[:24]


def client_revocation_id(client_id: str) -> str:
    """A revocation row that ends every token the client got before now (disable, rotate)."""
    return f"{CLIENT_PREFIX}{client_key(client_id)}:{secrets.token_hex(8)}"


class RevocationList:
    def __init__(self) -> None:
        self._revoked: dict[str, float] = {}
        # Client key -> (tokens issued before this second are refused, until when to remember).
        self._clients: dict[str, tuple[int, float]] = {}
        self._since = datetime.fromtimestamp(0, UTC)

    def is_revoked(self, *ids: str | None) -> bool:
        return any(i is not None and i in self._revoked for i in ids)

    def client_token_revoked(self, client_id: str, issued_at: object) -> bool:
        entry = self._clients.get(client_key(client_id))
        if entry is None:
            return False
        # Whole seconds: a token issued in the second of a rotation, after it, stays valid.
        return not isinstance(issued_at, int) or issued_at < entry[0]

    def _add_client(self, token_id: str, revoked_at: datetime, expires_at: float) -> None:
        key = token_id[len(CLIENT_PREFIX) :].split(":", 1)[0]
        second = int(revoked_at.timestamp())
        previous = self._clients.get(key)
        if previous is None or previous[0] < second:
            self._clients[key] = (second, expires_at)

    def add(self, token_id: str, expires_at: float) -> None:
        self._revoked[token_id] = expires_at

    async def revoke(self, db: AsyncSession, token_id: str, expires_at: float) -> None:
        """Record in the database (for the other replicas) and here at once."""
        expires = datetime.fromtimestamp(expires_at, UTC)
        await db.execute(
            insert(Revocation)
            .values(token_id=token_id, expires_at=expires)
            .on_conflict_do_nothing(index_elements=["token_id"])
        )
        self.add(token_id, expires_at)

    async def poll(self, maker: async_sessionmaker[AsyncSession]) -> None:
        now = time.time()
        # Overlap the window a little: a row committed late with an earlier revoked_at.
        since = self._since - timedelta(seconds=5)
        async with maker() as db:
            rows = await db.execute(
                select(Revocation.token_id, Revocation.expires_at, Revocation.revoked_at).where(
                    Revocation.revoked_at > since, Revocation.expires_at > datetime.now(UTC)
                )
            )
            for token_id, expires_at, revoked_at in rows:
                if token_id.startswith(CLIENT_PREFIX):
                    self._add_client(token_id, revoked_at, expires_at.timestamp())
                else:
                    self._revoked[token_id] = expires_at.timestamp()
                self._since = max(self._since, revoked_at)
        for token_id in [k for k, exp in self._revoked.items() if exp < now]:
            del self._revoked[token_id]
        for key in [k for k, (_, exp) in self._clients.items() if exp < now]:
            del self._clients[key]

    async def run(self, maker: async_sessionmaker[AsyncSession], every: float) -> None:
        while True:
            try:
                await self.poll(maker)
            except Exception as exc:  # the database away for a moment: keep what we know
                log.warning("revocation poll failed", error=type(exc).__name__)
            await asyncio.sleep(every)


class Identity:
    """Mints the gateway's tokens and recognises its callers."""

    def __init__(
        self,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        revocations: RevocationList,
        cache_size: int = 10_000,
        access_cookie: str = ACCESS_COOKIE,
    ) -> None:
        self.issuer = issuer
        self.verifier = verifier
        self.revocations = revocations
        # `__Host-ip_access` on a secure deployment; only that name is read there.
        self.access_cookie = access_cookie
        # A token already verified is not verified again until it expires: a signature check
        # is the largest CPU cost of a proxied request. Keyed by the token's digest, bounded.
        # Revocation (a session, a token, a disabled or rotated client) is still checked on
        # every request, against the cached claims.
        self._verified = VerifiedCache(cache_size)
        self._internal = InternalTokens(issuer, cache_size)

    def mint_access(self, principal: Principal, ttl: int, *, session_id: str | None = None) -> str:
        extra = {"sid": session_id} if session_id else None
        return self.issuer.mint(principal, GATEWAY_AUDIENCE, ttl=ttl, extra=extra)

    def mint_internal(self, principal: Principal, audience: str, ttl: int) -> str:
        """An internal token for one service: the same one for the same principal and
        audience for most of its life (see `InternalTokens`)."""
        return self._internal.token(principal, audience, ttl)

    async def authenticate(self, request: Request) -> Caller | None:
        """The caller, None when anonymous; a bad or revoked token is a 401."""
        token: str | None = None
        via_cookie = False
        auth = request.headers.get("authorization")
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("Use a bearer token")
            token = value.strip()
        else:
            token = request.cookies.get(self.access_cookie)
            via_cookie = token is not None
        if token is None:
            return None
        key = VerifiedCache.key(token)
        caller: Caller | None = self._verified.get(key)
        if caller is None:
            claims = await self.verifier.verify_claims(token)
            try:
                principal = Principal.model_validate(claims)
            except ValueError as exc:
                raise Unauthorized("Token claims do not describe a principal") from exc
            caller = Caller(principal, claims, via_cookie)
            self._verified.put(key, caller.expires_at, caller)
        elif caller.via_cookie != via_cookie:
            caller = Caller(caller.principal, caller.claims, via_cookie)
        if self.revocations.is_revoked(caller.session_id, caller.token_id):
            raise Unauthorized("This session has ended; log in again")
        # A client's tokens (no session): a person's session is revoked by its own id.
        if (
            caller.session_id is None
            and caller.principal.kind is not PrincipalKind.ENTERPRISE
            and self.revocations.client_token_revoked(
                caller.principal.sub, caller.claims.get("iat")
            )
        ):
            raise Unauthorized("This client's tokens were revoked; get a new one")
        if via_cookie and request.method in _UNSAFE:
            _check_same_origin(request)
        return caller

    async def require(self, request: Request) -> Caller:
        caller = await self.authenticate(request)
        if caller is None:
            raise Unauthorized("Log in or present a bearer token")
        return caller


def _check_same_origin(request: Request) -> None:
    # Cookies ride along on cross-site requests; a state-changing one must come from our own
    # pages. SameSite=Lax already stops most; this closes the rest (and old browsers).
    origin = request.headers.get("origin")
    public: str = request.app.state.settings.public_url
    if origin is not None and origin.rstrip("/") != public.rstrip("/"):
        raise Forbidden("Cross-site request refused")


def get_identity(app: FastAPI) -> Identity:
    identity: Identity = app.state.identity
    return identity
