"""Gateway sessions of enterprises logged in through the enterprise code.

A session is bound to one USCC. Its access tokens are short-lived gateway JWTs carrying the
session id (`sid`); its refresh tokens are opaque random strings, stored as digests and
rotated on every use. Presenting a refresh token a second time means it was copied: the
whole session is revoked (RFC 9700 section 4.14.2).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.esso import EssoRefused, EssoUser
from gateway.auth.identity import Identity
from gateway.models import ConsumedSsoToken, LoginSession, RefreshToken
from gateway.settings import GatewaySettings
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Unauthorized


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedSession:
    session_id: uuid.UUID
    principal: Principal
    company_name: str
    access_token: str
    access_expires_in: int
    refresh_token: str
    refresh_expires_in: int


def enterprise_principal(session: LoginSession) -> Principal:
    return Principal(
        sub=f"esso:{session.esso_user_id}",
        kind=PrincipalKind.ENTERPRISE,
        uscc=session.uscc,
        act=session.act,
    )


# The provider's ssotokens live minutes; a week of memory refuses every replay it would still
# accept, and keeps the table to a week of logins.
CONSUMED_MEMORY = timedelta(days=7)


async def purge_consumed_ssotokens(db: AsyncSession, older_than: timedelta) -> int:
    result = await db.execute(
        delete(ConsumedSsoToken).where(ConsumedSsoToken.consumed_at < func.now() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def consume_ssotoken(db: AsyncSession, ssotoken: str) -> None:
    """Refuse an ssotoken seen before; concurrent duplicates wait on the unique key."""
    if secrets.randbelow(100) == 0:  # now and then, not on every login
        await purge_consumed_ssotokens(db, CONSUMED_MEMORY)
    inserted = await db.execute(
        insert(ConsumedSsoToken)
        .values(token_hash=digest(ssotoken))
        .on_conflict_do_nothing(index_elements=["token_hash"])
        .returning(ConsumedSsoToken.token_hash)
    )
    if inserted.first() is None:
        raise EssoRefused("This ssotoken has already been used")


async def _new_refresh(db: AsyncSession, session_id: uuid.UUID, expires_at: datetime) -> str:
    token = secrets.token_urlsafe(32)
    db.add(RefreshToken(token_hash=digest(token), session_id=session_id, expires_at=expires_at))
    await db.flush()
    return token


def _issue(
    identity: Identity,
    settings: GatewaySettings,
    session: LoginSession,
    refresh: str,
) -> IssuedSession:
    principal = enterprise_principal(session)
    access = identity.mint_access(principal, settings.access_token_ttl, session_id=str(session.id))
    return IssuedSession(
        session_id=session.id,
        principal=principal,
        company_name=session.company_name,
        access_token=access,
        access_expires_in=settings.access_token_ttl,
        refresh_token=refresh,
        refresh_expires_in=max(0, int(session.expires_at.timestamp() - time.time())),
    )


async def open_session(
    db: AsyncSession, identity: Identity, settings: GatewaySettings, user: EssoUser
) -> IssuedSession:
    now = datetime.now(UTC)
    session = LoginSession(
        id=uuid.uuid4(),
        uscc=user.uscc,
        company_name=user.company_name,
        esso_user_id=user.user_id,
        act=user.attn_name,
        real_level=user.real_level,
        login_type=user.login_type,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl),
    )
    db.add(session)
    await db.flush()
    refresh = await _new_refresh(db, session.id, session.expires_at)
    return _issue(identity, settings, session, refresh)


async def refresh_session(
    db: AsyncSession, identity: Identity, settings: GatewaySettings, refresh_token: str
) -> IssuedSession:
    row = await db.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == digest(refresh_token))
        .with_for_update()
    )
    if row is None:
        raise Unauthorized("Unknown refresh token")
    session = await db.get(LoginSession, row.session_id, with_for_update=True)
    now = datetime.now(UTC)
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        raise Unauthorized("This session has ended; log in again")
    if row.used_at is not None:
        await revoke_session(db, identity, settings, session)
        # The revocation must stick although this request fails.
        await db.commit()
        raise Unauthorized("Refresh token reused: the session has been revoked")
    if row.expires_at <= now:
        raise Unauthorized("Refresh token expired; log in again")
    row.used_at = now
    refresh = await _new_refresh(db, session.id, session.expires_at)
    return _issue(identity, settings, session, refresh)


async def revoke_session(
    db: AsyncSession, identity: Identity, settings: GatewaySettings, session: LoginSession
) -> None:
    now = datetime.now(UTC)
    if session.revoked_at is None:
        session.revoked_at = now
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.session_id == session.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    # Access tokens of the session live at most access_token_ttl more.
    await identity.revocations.revoke(
        db, str(session.id), time.time() + settings.access_token_ttl + 60
    )


async def session_by_refresh(db: AsyncSession, refresh_token: str) -> LoginSession | None:
    row = await db.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token))
    )
    return await db.get(LoginSession, row.session_id) if row is not None else None
