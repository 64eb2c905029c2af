"""Tables of the gateway (schema `gateway`): API clients, login sessions and their refresh
tokens, revocations, and the enterprise-code tokens and staff ID tokens already consumed.

Secrets and tokens are never stored in clear: client secrets as argon2 hashes, refresh
tokens and ssotokens as SHA-256 digests (they are long random values, so a fast hash is
enough and lets us look them up by equality).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("gateway")


class Client(Base):
    """An OAuth 2 client: the government portal, a bank system, one of our services, or a
    staff relying party (`portal`: it exchanges its users' ID tokens, and gets no token of
    its own)."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))  # government | bank | service | portal
    bank_id: Mapped[str | None] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Services a `service` client may get a direct internal token for.
    audiences: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginSession(Base):
    """A person's session: an enterprise's legal person logged in through the enterprise code
    (ESSO), or a staff member (government or bank) signed in at their organisation's OpenID
    Connect provider, whose ID token a portal exchanged."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint("kind IN ('enterprise', 'government', 'bank')", name="kind"),
        CheckConstraint(
            "kind <> 'enterprise' OR (uscc IS NOT NULL AND esso_user_id IS NOT NULL)",
            name="enterprise_fields",
        ),
        CheckConstraint(
            "kind = 'enterprise' OR (role IN ('viewer', 'operator') AND issuer IS NOT NULL "
            "AND subject IS NOT NULL AND client_id IS NOT NULL)",
            name="staff_fields",
        ),
        CheckConstraint("(kind = 'bank') = (bank_id IS NOT NULL)", name="bank_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), server_default="enterprise")
    uscc: Mapped[str | None] = mapped_column(String(18), index=True)
    company_name: Mapped[str | None] = mapped_column(Text)
    esso_user_id: Mapped[str | None] = mapped_column(Text)
    # The person: the legal representative, or the staff member's name.
    act: Mapped[str] = mapped_column(Text)
    real_level: Mapped[int | None] = mapped_column(SmallInteger)
    login_type: Mapped[str | None] = mapped_column(Text)
    # Staff: the organisation (bank), role, who vouched for the person (issuer, subject),
    # and the relying party that exchanged the ID token (refreshes must come from it).
    bank_id: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    issuer: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    client_id: Mapped[str | None] = mapped_column(String(64))
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


class ConsumedIdToken(Base):
    """A staff ID token already exchanged: refused if presented again until it expires."""

    __tablename__ = "consumed_id_tokens"
    __table_args__ = (Index("ix_consumed_id_tokens_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
