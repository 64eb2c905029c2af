"""Server-side sessions: the browser holds a random id, the portal holds the rest.

The id is 32 random bytes (256 bits) in an HttpOnly cookie; the table stores its SHA-256
digest only. The gateway's access and refresh tokens are encrypted with Fernet (MultiFernet,
so keys rotate: the first key encrypts, the others still decrypt). A session ends when it has
been idle too long, at its absolute end, at logout, or when the gateway refuses to refresh it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.models import PortalSession
from portal.settings import PortalSettings

# Writes of last_seen_at are spared for requests this close together.
TOUCH_EVERY = timedelta(seconds=60)


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """The development key: made once, kept under var/keys (mode 0600)."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    path.with_suffix(".tmp").replace(path)
    return key


def token_cipher(settings: PortalSettings) -> MultiFernet:
    if settings.session_keys is not None:
        keys = [k.strip() for k in settings.session_keys.get_secret_value().split(",")]
        raw = [k.encode() for k in keys if k]
    else:
        raw = [load_or_create_key(settings.session_key_file)]
    try:
        return MultiFernet([Fernet(k) for k in raw])
    except ValueError as exc:
        raise ValueError("session_keys must be Fernet keys (32 url-safe base64 bytes)") from exc


@dataclass(frozen=True)
class Principal:
    """Who is signed in, as the portal's pages and guards see them."""

    kind: str  # enterprise | government | bank
    display_name: str
    uscc: str | None = None
    bank_id: str | None = None
    role: str | None = None  # staff: viewer | operator
    actor: str | None = None

    @property
    def is_enterprise(self) -> bool:
        return self.kind == "enterprise"

    @property
    def is_staff(self) -> bool:
        return self.kind in ("government", "bank")


@dataclass
class GatewayTokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str | None


@dataclass
class Session:
    """A loaded session: what a request may use."""

    id_hash: str
    principal: Principal
    csrf_token: str
    tokens: GatewayTokens
    expires_at: datetime


class SessionEnded(Exception):
    """The session is gone (expired, logged out, or the gateway refused to renew it)."""


class SessionStore:
    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        cipher: MultiFernet,
        settings: PortalSettings,
    ) -> None:
        self.maker = maker
        self.cipher = cipher
        self.idle = timedelta(seconds=settings.session_idle_seconds)
        self.absolute = timedelta(seconds=settings.session_absolute_seconds)

    def _seal(self, value: str) -> bytes:
        return self.cipher.encrypt(value.encode())

    def _open(self, value: bytes) -> str:
        return self.cipher.decrypt(value).decode()

    async def create(self, principal: Principal, tokens: GatewayTokens) -> tuple[str, Session]:
        """A new session (a login): returns the id for the cookie, never stored as such."""
        session_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = PortalSession(
            id_hash=digest(session_id),
            kind=principal.kind,
            uscc=principal.uscc,
            bank_id=principal.bank_id,
            role=principal.role,
            display_name=principal.display_name,
            actor=principal.actor,
            csrf_token=secrets.token_urlsafe(32),
            access_token=self._seal(tokens.access_token),
            refresh_token=self._seal(tokens.refresh_token) if tokens.refresh_token else None,
            access_expires_at=tokens.access_expires_at,
            last_seen_at=now,
            expires_at=now + self.absolute,
        )
        async with self.maker() as db, db.begin():
            db.add(row)
        return session_id, self._loaded(row)

    def _loaded(self, row: PortalSession) -> Session:
        try:
            access = self._open(row.access_token)
            refresh = self._open(row.refresh_token) if row.refresh_token else None
        except InvalidToken as exc:
            # The key that sealed it is gone (rotated out): the person signs in again.
            raise SessionEnded("session keys changed") from exc
        return Session(
            id_hash=row.id_hash,
            principal=Principal(
                kind=row.kind,
                display_name=row.display_name,
                uscc=row.uscc,
                bank_id=row.bank_id,
                role=row.role,
                actor=row.actor,
            ),
            csrf_token=row.csrf_token,
            tokens=GatewayTokens(access, row.access_expires_at, refresh),
            expires_at=row.expires_at,
        )

    def _alive(self, row: PortalSession, now: datetime) -> bool:
        return row.expires_at > now and row.last_seen_at + self.idle > now

    async def load(self, session_id: str) -> Session | None:
        """The live session for a cookie value, its idle clock reset; None when there is none."""
        if not session_id or len(session_id) > 128:
            return None
        key = digest(session_id)
        now = datetime.now(UTC)
        async with self.maker() as db, db.begin():
            row = await db.get(PortalSession, key)
            if row is None:
                return None
            if not self._alive(row, now):
                await db.delete(row)
                return None
            if now - row.last_seen_at >= TOUCH_EVERY:
                row.last_seen_at = now
            try:
                return self._loaded(row)
            except SessionEnded:
                await db.delete(row)
                return None

    async def delete(self, id_hash: str) -> None:
        async with self.maker() as db, db.begin():
            await db.execute(delete(PortalSession).where(PortalSession.id_hash == id_hash))

    async def replace_tokens(
        self, db: AsyncSession, row: PortalSession, tokens: GatewayTokens
    ) -> None:
        row.access_token = self._seal(tokens.access_token)
        if tokens.refresh_token is not None:
            row.refresh_token = self._seal(tokens.refresh_token)
        row.access_expires_at = tokens.access_expires_at
        await db.flush()

    async def locked_row(self, db: AsyncSession, id_hash: str) -> PortalSession | None:
        """The row under a lock, so two requests of one session never refresh at once: the
        gateway treats a refresh token presented twice as stolen and ends the session."""
        return (
            await db.scalars(
                select(PortalSession).where(PortalSession.id_hash == id_hash).with_for_update()
            )
        ).first()

    def tokens_of(self, row: PortalSession) -> GatewayTokens:
        return self._loaded(row).tokens

    async def sweep(self) -> int:
        """Delete every expired session; returns how many."""
        now = datetime.now(UTC)
        async with self.maker() as db, db.begin():
            result = await db.execute(
                delete(PortalSession).where(
                    or_(
                        PortalSession.expires_at <= now,
                        PortalSession.last_seen_at <= now - self.idle,
                    )
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)
