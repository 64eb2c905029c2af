"""Tables of the gateway (schema `gateway`): API clients, login sessions and their refresh
tokens, revocations, and the enterprise-code tokens already consumed.

Secrets and tokens are never stored in clear: client secrets as argon2 hashes, refresh
tokens and ssotokens as SHA-256 digests (they are long random values, so a fast hash is
enough and lets us look them up by equality).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, ForeignKey, Index, SmallInteger, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("gateway")


class Client(Base):
    """An OAuth 2 client: the government portal, a bank system or one of our services."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # government | bank | service
    bank_id: Mapped[str | None] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Services a `service` client may get a direct internal token for.
    audiences: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginSession(Base):
    """An enterprise's legal person logged in through the enterprise code (ESSO)."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    company_name: Mapped[str] = mapped_column(Text)
    esso_user_id: Mapped[str] = mapped_column(Text)
    act: Mapped[str] = mapped_column(Text)
    real_level: Mapped[int] = mapped_column(SmallInteger)
    login_type: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    """One refresh token of a session; rotated on every use, a reuse revokes the session."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Revocation(Base):
    """A revoked session id or token id, until the tokens it covers have expired anyway."""

    __tablename__ = "revocations"
    __table_args__ = (Index("ix_revocations_revoked_at", "revoked_at"),)

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsumedSsoToken(Base):
    """An ssotoken already exchanged: refused if presented again, whatever the provider says."""

    __tablename__ = "consumed_ssotokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
