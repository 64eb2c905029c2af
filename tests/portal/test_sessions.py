"""Portal sessions: the id only as a digest, tokens encrypted, idle and absolute ends,
key rotation, and the cookie's name and flags decided by settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text, update

from portal.models import PortalSession
from portal.security import session_cookie, state_cookie
from portal.sessions import GatewayTokens, Principal, SessionStore, digest, token_cipher
from portal.settings import PortalSettings
from shared.db import create_engine, create_sessionmaker

PRINCIPAL = Principal(
    kind="enterprise", display_name="杭州甲科技有限公司", uscc="91330108MA27XK0A1M"
)


def settings(**values: object) -> PortalSettings:
    base: dict[str, object] = {
        "environment": "test",
        "session_keys": Fernet.generate_key().decode(),
    }
    return PortalSettings(**{**base, **values})  # type: ignore[arg-type]


def tokens() -> GatewayTokens:
    return GatewayTokens("access-abc", datetime.now(UTC) + timedelta(minutes=15), "refresh-xyz")


@pytest.fixture
async def store(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    s = settings(session_idle_seconds=600, session_absolute_seconds=3600)
    yield SessionStore(create_sessionmaker(engine), token_cipher(s), s)
    await engine.dispose()


async def test_only_a_digest_and_ciphertexts_are_stored(store: SessionStore) -> None:
    session_id, session = await store.create(PRINCIPAL, tokens())
    assert len(session_id) >= 43  # 32 random bytes
    async with store.maker() as db:
        row = (await db.scalars(select(PortalSession))).one()
        raw = (await db.execute(text("SELECT * FROM portal.sessions"))).mappings().one()
    assert row.id_hash == digest(session_id) != session_id
    stored = b"".join(v for v in raw.values() if isinstance(v, bytes))
    assert b"access-abc" not in stored and b"refresh-xyz" not in stored
    loaded = await store.load(session_id)
    assert loaded is not None
    assert loaded.tokens.access_token == "access-abc"
    assert loaded.tokens.refresh_token == "refresh-xyz"
    assert loaded.principal == PRINCIPAL
    assert loaded.csrf_token == session.csrf_token and len(loaded.csrf_token) >= 43
    assert await store.load(digest(session_id)) is None  # the digest opens nothing


async def test_idle_and_absolute_ends(store: SessionStore) -> None:
    idle_id, _ = await store.create(PRINCIPAL, tokens())
    old_id, _ = await store.create(PRINCIPAL, tokens())
    live_id, _ = await store.create(PRINCIPAL, tokens())
    now = datetime.now(UTC)
    async with store.maker() as db, db.begin():
        await db.execute(
            update(PortalSession)
            .where(PortalSession.id_hash == digest(idle_id))
            .values(last_seen_at=now - timedelta(seconds=601))
        )
        await db.execute(
            update(PortalSession)
            .where(PortalSession.id_hash == digest(old_id))
            .values(expires_at=now - timedelta(seconds=1))
        )
    assert await store.sweep() == 2
    assert await store.load(idle_id) is None
    assert await store.load(old_id) is None
    assert await store.load(live_id) is not None


async def test_an_expired_session_is_deleted_when_presented(store: SessionStore) -> None:
    session_id, _ = await store.create(PRINCIPAL, tokens())
    async with store.maker() as db, db.begin():
        await db.execute(
            update(PortalSession).values(last_seen_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert await store.load(session_id) is None
    async with store.maker() as db:
        assert (await db.scalars(select(PortalSession))).first() is None


async def test_key_rotation_keeps_sessions_and_removal_ends_them(database_url: str) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    engine = create_engine(database_url)
    try:
        maker = create_sessionmaker(engine)
        first = settings(session_keys=old)
        session_id, _ = await SessionStore(maker, token_cipher(first), first).create(
            PRINCIPAL, tokens()
        )
        rotated = settings(session_keys=f"{new},{old}")
        loaded = await SessionStore(maker, token_cipher(rotated), rotated).load(session_id)
        assert loaded is not None and loaded.tokens.access_token == "access-abc"
        dropped = settings(session_keys=new)
        assert await SessionStore(maker, token_cipher(dropped), dropped).load(session_id) is None
    finally:
        await engine.dispose()


def test_cookie_names_follow_the_secure_setting() -> None:
    dev = PortalSettings(environment="development", session_key_file="/nonexistent/k")
    assert not dev.secure_cookies
    assert session_cookie(dev) == "portal_session"
    assert state_cookie(dev) == "portal_esso_state"
    prod = settings(
        environment="production",
        public_url="https://portal.example.gov.cn",
        database_url="postgresql://db/portal",
    )
    assert prod.secure_cookies
    # `__Host-` requires Secure, Path=/ and no Domain: only then does the browser accept it.
    assert session_cookie(prod) == "__Host-portal_session"
    assert state_cookie(prod) == "__Host-portal_esso_state"


def test_settings_refuse_missing_keys_and_plain_http_in_production() -> None:
    with pytest.raises(ValueError, match="session_keys"):
        PortalSettings(environment="test")
    with pytest.raises(ValueError, match="https"):
        settings(environment="production", database_url="postgresql://db/portal")
    with pytest.raises(ValueError, match="Fernet"):
        token_cipher(settings(session_keys="not-a-key"))
