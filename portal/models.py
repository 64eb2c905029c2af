"""Tables of the portal (schema `portal`): server-side sessions.

The browser holds only a long random session id; the table keys it by its SHA-256 digest, so
a copy of the table opens no session. The gateway tokens are encrypted (Fernet) with keys the
database never sees.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("portal")


class PortalSession(Base):
    """A signed-in person: an enterprise's legal person today, staff later (part 2)."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # enterprise | government | bank
    kind: Mapped[str] = mapped_column(String(16))
    uscc: Mapped[str | None] = mapped_column(String(18))
    bank_id: Mapped[str | None] = mapped_column(String(64))
    # Staff only: viewer | operator.
    role: Mapped[str | None] = mapped_column(String(16))
    # The enterprise's name, or the staff member's.
    display_name: Mapped[str] = mapped_column(Text)
    # The person acting: the legal representative, or the staff member.
    actor: Mapped[str | None] = mapped_column(Text)
    csrf_token: Mapped[str] = mapped_column(String(64))
    access_token: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The absolute end; the idle end is last_seen_at + the idle lifetime.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StaffLoginAttempt(Base):
    """A staff sign-in under way at an OpenID Connect provider: what the callback must find
    again. Keyed by the digest of a random id the browser holds in a short-lived cookie, so a
    callback only completes in the browser that started it (no login CSRF); the PKCE verifier
    is encrypted like the session tokens. Deleted when used, or swept once expired."""

    __tablename__ = "staff_logins"
    __table_args__ = (Index("ix_staff_logins_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
