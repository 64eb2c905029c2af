"""Gateway sessions of persons: enterprises' legal persons logged in through the enterprise
code, and staff signed in at their organisation's OpenID Connect provider.

An enterprise session is bound to one USCC; a staff session to one organisation (government,
or a bank) and one role. Access tokens are short-lived gateway JWTs carrying the session id
(`sid`); refresh tokens are opaque random strings, stored as digests and rotated on every
use. Presenting a refresh token a second time means it was copied: the whole session is
revoked (RFC 9700 section 4.14.2).

A staff session was opened by a confidential client (the portal) and its refresh tokens are
that client's: a refresh must authenticate as it (RFC 6749 section 6), so a refresh token
copied out of the portal is useless alone. Staff sessions also end sooner
(`GATEWAY_STAFF_SESSION_TTL`), since the person's organisation, not the gateway, decides
whether they still work there and in which role.
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

from gateway.auth.clients import InvalidClient
from gateway.auth.esso import EssoRefused, EssoUser
from gateway.auth.identity import Identity
from gateway.auth.staff import StaffPerson, principal_sub, role_scopes
from gateway.models import Client, ConsumedSsoToken, LoginSession, RefreshToken
from gateway.settings import GatewaySettings
from shared.auth.principal import Principal, PrincipalKind, Role
from shared.errors import Unauthorized


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedSession:
    session: LoginSession
    principal: Principal
    access_token: str
    access_expires_in: int
    refresh_token: str
    refresh_expires_in: int

    @property
    def session_id(self) -> uuid.UUID:
        return self.session.id


class StaffProviderGone(Unauthorized):
    slug = "staff-provider-gone"
    title = "The provider that signed this person in is no longer trusted"


def session_principal(session: LoginSession, settings: GatewaySettings) -> Principal:
    """The principal a session's access tokens carry."""
    if session.kind == PrincipalKind.ENTERPRISE.value:
        return Principal(
            sub=f"esso:{session.esso_user_id}",
            kind=PrincipalKind.ENTERPRISE,
            uscc=session.uscc,
            act=session.act,
        )
    # A provider removed from the configuration ends its people's sessions at their next
    # refresh: nothing it vouched for is renewed.
    provider = next((p for p in settings.staff_providers if p.issuer == session.issuer), None)
    if provider is None or session.subject is None:
        raise StaffProviderGone("The provider that signed you in is no longer trusted")
    kind = PrincipalKind(session.kind)
    role: Role = "operator" if session.role == "operator" else "viewer"
    return Principal(
        sub=principal_sub(provider.name, session.subject),
        kind=kind,
        bank_id=session.bank_id,
        act=session.act,
        role=role,
        scopes=role_scopes(kind, role),
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
    principal = session_principal(session, settings)
    access = identity.mint_access(principal, settings.access_token_ttl, session_id=str(session.id))
    return IssuedSession(
        session=session,
        principal=principal,
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


async def open_staff_session(
    db: AsyncSession,
    identity: Identity,
    settings: GatewaySettings,
    person: StaffPerson,
    client: Client,
) -> IssuedSession:
    now = datetime.now(UTC)
    ttl = min(settings.staff_session_ttl, settings.refresh_token_ttl)
    session = LoginSession(
        id=uuid.uuid4(),
        kind=person.kind.value,
        bank_id=person.bank_id,
        act=person.name,
        role=person.role,
        issuer=person.provider.issuer,
        subject=person.subject,
        client_id=client.client_id,
        expires_at=now + timedelta(seconds=ttl),
    )
    db.add(session)
    await db.flush()
    refresh = await _new_refresh(db, session.id, session.expires_at)
    return _issue(identity, settings, session, refresh)


async def refresh_session(
    db: AsyncSession,
    identity: Identity,
    settings: GatewaySettings,
    refresh_token: str,
    client: Client | None = None,
) -> IssuedSession:
    """`client`: the authenticated client presenting the token, if it authenticated. A
    session a client opened is refreshed only by that client."""
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
    if session.client_id is not None and (client is None or client.client_id != session.client_id):
        # Neither used nor revoked: the token was not the presenter's to use.
        raise InvalidClient("This refresh token was issued to a client: authenticate as it")
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
