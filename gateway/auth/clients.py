"""OAuth 2 client credentials (RFC 6749 section 4.4) for the government portal, bank
systems and our own services; and the clients that exchange their users' ID tokens.

**Kinds.** A `government`, `bank` or `service` client gets tokens of its own by client
credentials. A `portal` client is a relying party for staff: it may exchange a staff member's
ID token (RFC 8693, `gateway.auth.staff`) and refresh the sessions it opened, and it gets
nothing by client credentials, because what it does it does as the person signed in.

**Secrets.** A client secret is 256 random bits made by us (`new_secret`), not a password a
person chose: nothing can be guessed from a fast digest of it, so it is stored as
HMAC-SHA256 under a server key (`GATEWAY_CLIENT_SECRET_HMAC_KEY`) and compared in constant time.
A slow password hash bought nothing here and made every failed try cost the gateway about
200 ms and 64 MiB (argon2), a cheap way to exhaust it (issue 10). The server key means a
copy of the table alone does not even let one test a candidate. Secrets stored by argon2
before this change still verify, once, and are then rewritten in the new form.

**Failures per client.** Beyond `GATEWAY_CLIENT_FAILURE_LIMIT` failed tries a client id is
locked (429 with `Retry-After`) until the window has room again, right secret or not, so a
distributed guesser gets that many tries per window in all. The trade-off is that anyone
can lock a client id by failing on purpose; so the lock does not apply at addresses from
which that client authenticated in the last day: a bank's system keeps working from where it
always works while an attacker elsewhere holds the lock. A client moving to a new address
during an attack waits for the window (minutes), never longer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote_plus

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.identity import client_key
from gateway.models import Client
from gateway.ratelimit import RateLimiter
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import ProblemError, TooManyRequests

SCHEME = "hmac-sha256$"
_LEGACY = PasswordHasher()
_NO_CLIENT = SCHEME + "0" * 64
KEY_FILE = Path("keys") / "client-secret.key"
# A success from an address keeps it usable for the client during a lock this long.
KNOWN_ADDRESS = "1/day"


class ClientKind(StrEnum):
    GOVERNMENT = "government"
    BANK = "bank"
    SERVICE = "service"
    PORTAL = "portal"


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


class UnauthorizedClient(OAuthError):
    """RFC 6749 section 5.2: the client may not use this grant type."""

    status = 400
    slug = "unauthorized-client"
    title = "The client may not use this grant"

    def __init__(self, detail: str) -> None:
        super().__init__("unauthorized_client", detail)


class ClientLocked(TooManyRequests):
    slug = "client-locked"
    title = "Too many failed authentications for this client"


def parse_basic(header: str) -> tuple[str, str] | None:
    """HTTP Basic client credentials (RFC 7617), each part form-urlencoded first (RFC 6749
    section 2.3.1). None when the scheme is not Basic; ValueError when they are malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        # binascii.Error for bad Base64; ValueError for non-ASCII bytes in the header
        # (found by the reliability suite: `Basic caf\xe9` was a 500).
        raise ValueError("malformed Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise ValueError("malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def load_or_create_secret_key(var_dir: Path, *, create: bool = True) -> bytes:
    """The development server key under `var_dir/keys`, made once (like the signing key)."""
    path = var_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        raise RuntimeError(f"no client-secret key: set GATEWAY_CLIENT_SECRET_HMAC_KEY (or {path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    try:
        # Whole or not at all, and the first of two processes starting together wins.
        os.link(tmp, path)
    except FileExistsError:
        key = path.read_bytes().strip()
    finally:
        tmp.unlink()
    return key


def secret_key_from_env(var_dir: Path, *, create: bool = True) -> bytes:
    """For the tools beside the gateway (demo bootstrap, clients CLI): the same key the
    gateway uses, from `GATEWAY_CLIENT_SECRET_HMAC_KEY` or else the development key file."""
    configured = os.environ.get("GATEWAY_CLIENT_SECRET_HMAC_KEY", "").strip()
    if configured:
        return configured.encode()
    return load_or_create_secret_key(var_dir, create=create)


def hash_secret(key: bytes, secret: str) -> str:
    digest = hmac.new(key, secret.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
    return SCHEME + digest


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _legacy_verify(stored: str, secret: str) -> bool:
    try:
        return _LEGACY.verify(stored, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_secret(key: bytes, stored: str, secret: str) -> bool:
    if stored.startswith(SCHEME):
        return hmac.compare_digest(stored, hash_secret(key, secret))
    if stored.startswith("$argon2"):
        # Only hashes from before the HMAC form; slow by design, so off the event loop.
        return await asyncio.to_thread(_legacy_verify, stored, secret)
    return False


async def authenticate_client(db: AsyncSession, key: bytes, client_id: str, secret: str) -> Client:
    client = await db.get(Client, client_id) if len(client_id) <= 64 else None
    if client is None:
        # The same digest and comparison as for a known client: no timing tells ids apart.
        hmac.compare_digest(hash_secret(key, secret), _NO_CLIENT)
        raise InvalidClient()
    if not await verify_secret(key, client.secret_hash, secret) or client.disabled_at is not None:
        raise InvalidClient()
    if not client.secret_hash.startswith(SCHEME):
        client.secret_hash = hash_secret(key, secret)  # upgraded within this request
        await db.flush()
    return client


class ClientLockout:
    """The per-client failure limit and its lock (see the module docstring)."""

    def __init__(self, limiter: RateLimiter, failure_limit: str) -> None:
        self.limiter = limiter
        self.failure_limit = failure_limit

    @staticmethod
    def _failures(client_id: str) -> str:
        return f"client-fail:{client_key(client_id)}"

    @staticmethod
    def _known(client_id: str, address: str) -> str:
        return f"client-ok:{client_key(client_id)}:{address}"

    async def check(self, client_id: str, address: str) -> None:
        retry_after = await self.limiter.exhausted(self.failure_limit, self._failures(client_id))
        if retry_after is None:
            return
        if await self.limiter.exhausted(KNOWN_ADDRESS, self._known(client_id, address)) is not None:
            return  # where the client works from: the lock is not for it
        raise ClientLocked(
            f"Too many failed tries for this client; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    async def failed(self, client_id: str) -> None:
        await self.limiter.record(self.failure_limit, self._failures(client_id))

    async def succeeded(self, client_id: str, address: str) -> None:
        await self.limiter.record(KNOWN_ADDRESS, self._known(client_id, address))


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
    if client.kind == ClientKind.PORTAL:
        raise UnauthorizedClient(
            "A portal client gets no token of its own: it exchanges its users' ID tokens "
            "(grant_type=urn:ietf:params:oauth:grant-type:token-exchange)"
        )
    kind = PrincipalKind(client.kind)
    if kind is PrincipalKind.SERVICE:
        # A service gets internal tokens for its registered audiences and nothing else: a
        # gateway token would open the whole public API to a leaked service secret.
        if audience is None or audience not in client.audiences:
            raise OAuthError(
                "invalid_target",
                f"A service client asks for audience=<service>, one of {client.audiences}",
            )
    elif audience is not None and audience != "gateway":
        # Everyone else calls through the gateway, which mints those tokens per request.
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
    key: bytes,
    *,
    client_id: str,
    name: str,
    kind: ClientKind | PrincipalKind,
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
    client.kind = ClientKind(kind.value).value
    client.bank_id = bank_id
    client.secret_hash = hash_secret(key, secret)
    client.scopes = scopes
    client.audiences = audiences or []
    client.disabled_at = None
    await db.flush()
    return client


async def secret_matches(db: AsyncSession, key: bytes, client_id: str, secret: str) -> bool:
    row = await db.scalar(select(Client.secret_hash).where(Client.client_id == client_id))
    return row is not None and await verify_secret(key, row, secret)
