"""OAuth 2 client credentials (RFC 6749 section 4.4) for the government portal, bank
systems and our own services.

Secrets are argon2id hashes. Verifying one costs tens of milliseconds on purpose, so it runs
in a worker thread (the event loop keeps serving) and an unknown client id costs the same as
a wrong secret (no way to tell which client ids exist by timing).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Client
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import ProblemError

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

CLIENT_KINDS = (PrincipalKind.GOVERNMENT, PrincipalKind.BANK, PrincipalKind.SERVICE)


class OAuthError(ProblemError):
    """A token-endpoint error: problem+json carrying the OAuth `error` code as a member."""

    slug = "oauth-error"
    title = "Token request refused"

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail, error=error)


class InvalidClient(OAuthError):
    status = 401
    slug = "invalid-client"
    title = "Client authentication failed"

    def __init__(self, detail: str = "Unknown client or wrong secret") -> None:
        super().__init__("invalid_client", detail)
        self.headers["WWW-Authenticate"] = 'Basic realm="gateway"'


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _verify(stored: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def authenticate_client(db: AsyncSession, client_id: str, secret: str) -> Client:
    client = await db.get(Client, client_id) if len(client_id) <= 64 else None
    stored = client.secret_hash if client is not None else _DUMMY_HASH
    ok = await asyncio.to_thread(_verify, stored, secret)
    if client is None or not ok or client.disabled_at is not None:
        raise InvalidClient()
    return client


@dataclass(frozen=True)
class Grant:
    principal: Principal
    audience: str | None  # None: a gateway access token
    scopes: list[str]


def grant_for(client: Client, scope: str | None, audience: str | None) -> Grant:
    allowed = list(client.scopes)
    if scope is None or not scope.strip():
        scopes = allowed
    else:
        requested = scope.split()
        refused = [s for s in requested if s not in allowed]
        if refused:
            raise OAuthError("invalid_scope", f"Scopes not granted to this client: {refused}")
        scopes = requested
    kind = PrincipalKind(client.kind)
    if audience is not None and audience != "gateway":
        # Only our own services get a token straight for another service; everyone else
        # calls through the gateway, which mints those tokens per request.
        if kind is not PrincipalKind.SERVICE or audience not in client.audiences:
            raise OAuthError("invalid_target", f"This client may not get tokens for {audience!r}")
    else:
        audience = None
    principal = Principal(
        sub=client.client_id,
        kind=kind,
        bank_id=client.bank_id if kind is PrincipalKind.BANK else None,
        scopes=scopes,
    )
    return Grant(principal, audience, scopes)


async def upsert_client(
    db: AsyncSession,
    *,
    client_id: str,
    name: str,
    kind: PrincipalKind,
    secret: str,
    scopes: list[str],
    bank_id: str | None = None,
    audiences: list[str] | None = None,
) -> Client:
    client = await db.get(Client, client_id)
    if client is None:
        client = Client(client_id=client_id)
        db.add(client)
    client.name = name
    client.kind = kind.value
    client.bank_id = bank_id
    client.secret_hash = hash_secret(secret)
    client.scopes = scopes
    client.audiences = audiences or []
    client.disabled_at = None
    await db.flush()
    return client


async def secret_matches(db: AsyncSession, client_id: str, secret: str) -> bool:
    row = await db.scalar(select(Client.secret_hash).where(Client.client_id == client_id))
    return row is not None and await asyncio.to_thread(_verify, row, secret)
