"""Engine, sessions and the one-transaction-per-request rule.

Engines and session factories are made once in the lifespan. A request gets one session
through `DbSession`; services may `flush()` but never `commit()`. `CommittingRoute` commits
that session after the endpoint returns and *before* the response is sent: code after `yield`
in a dependency runs only after the response has gone out (FastAPI >= 0.118), so a commit
there could fail while the client already holds a 200.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """Metadata for a service's declarative base: its own schema, our naming convention.

    Use as `class Base(DeclarativeBase): metadata = schema_metadata("credit")` (a class
    statement, not a factory, so mypy sees a real base class).
    """
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def asyncpg_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def plain_url(url: str) -> str:
    """The libpq form of a URL (for asyncpg.connect and psql)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, for a read sent without SQLAlchemy's
    statement machinery (compilation cache, result proxy, the greenlet hop: half of a hot
    read's statement cost in issue 11's profiles).

    Unlike `raw_connection` nothing is run first: a read on it sees what the session's
    transaction sees when one has begun (same connection), and when none has, the session
    has written nothing there to see. Flush the session first if it holds ORM changes.
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction (for COPY).

    SQLAlchemy begins the database transaction lazily, on its first statement; one is run
    first so that what is sent on the raw connection (ON COMMIT DROP tables, COPY) is part
    of it.
    """
    await session.execute(text("SELECT 1"))
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


# A pooled connection handed back less than this long ago is taken as alive without a ping.
PING_AFTER_IDLE = 1.0
_RETURNED = "returned_at"


def _returned(
    dbapi_connection: Any, record: ConnectionPoolEntry, *_: PoolProxiedConnection | None
) -> None:
    record.info[_RETURNED] = time.monotonic()


def _check_alive(
    dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection
) -> None:
    """A connection's liveness, checked as it leaves the pool, cheaply when it can be.

    SQLAlchemy's `pool_pre_ping` pings on every checkout, and its asyncpg ping is three round
    trips (BEGIN, an empty statement, ROLLBACK): on a read of one indexed row that was a tenth
    of the service's CPU and more of the database's (issue 11's profile of the dashboard).
    Here, as HikariCP does (its `aliveBypassWindowMs`), a connection that was in use within
    the last `PING_AFTER_IDLE` seconds is taken as alive, unless asyncpg already knows its
    socket is closed (a restarted or stopped server closes it, and the event loop sees that
    while the connection sits in the pool); one idle for longer is pinged. A connection found
    dead raises `DisconnectionError`, on which the pool discards it and checks out another
    (SQLAlchemy's documented pessimistic-disconnect recipe). A server that dies within the
    window is met by the query itself: SQLAlchemy then invalidates the pool, and the request
    fails as it would have failed a moment later anyway.
    """
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the connection was closed while in the pool")
    returned = record.info.get(_RETURNED)
    if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError(f"the pooled connection did not answer: {exc}") from exc


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, read_only: bool = False
) -> AsyncEngine:
    """A pooled engine. `read_only`: for the sessions of GET and HEAD requests (`_session`):
    each statement its own transaction (no BEGIN and COMMIT round trips around a read), on
    connections the server itself keeps read-only (`default_transaction_read_only`), so a
    read that tried to write would fail loudly rather than commit statement by statement."""
    options: dict[str, Any] = {}
    if read_only:
        options = {
            "isolation_level": "AUTOCOMMIT",
            "connect_args": {"server_settings": {"default_transaction_read_only": "on"}},
        }
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        **options,
    )
    event.listen(engine.sync_engine.pool, "checkout", _check_alive)
    event.listen(engine.sync_engine.pool, "checkin", _returned)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


# Requests that only read. Under READ COMMITTED, which every session here uses, each statement
# sees its own snapshot with or without a transaction around it, so a read loses nothing by
# running outside one; it saves two round trips (BEGIN, COMMIT) of its three or four, which
# on the mini-app's reads was about a tenth of the service's CPU and more of the server's
# (issue 11). A route that must see one snapshot across statements says so itself.
_READS = frozenset({"GET", "HEAD"})


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    state = request.app.state
    maker: async_sessionmaker[AsyncSession] = state.sessionmaker
    if request.method in _READS:
        maker = getattr(state, "read_sessionmaker", None) or maker
    async for session in _opened(request, maker):
        yield session


async def _writing_session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in _opened(request, request.app.state.sessionmaker):
        yield session


async def _opened(
    request: Request, maker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        request.state.db_session = session
        try:
            yield session
        finally:
            # Whatever was not committed by the route (an error) is discarded.
            if session.in_transaction():
                await session.rollback()


DbSession = Annotated[AsyncSession, Depends(_session)]
# A session in one transaction whatever the method: for the rare GET that writes (a login
# provider's redirect back, which creates the session), committed by `CommittingRoute`.
WritingSession = Annotated[AsyncSession, Depends(_writing_session)]


class CommittingRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def commit_then_respond(request: Request) -> Response:
            response = await handler(request)
            session: AsyncSession | None = getattr(request.state, "db_session", None)
            if session is not None and session.in_transaction() and response.status_code < 400:
                await session.commit()
            return response

        return commit_then_respond
