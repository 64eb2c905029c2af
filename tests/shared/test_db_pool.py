"""The pool's liveness check (`shared.db.create_engine`): a connection the server closed is
never handed to a request, and a live one is reused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared import db
from shared.db import CommittingRoute, DbSession, WritingSession
from shared.errors import install_problem_handlers


async def _backend_pid(engine: AsyncEngine) -> int:
    async with db.create_sessionmaker(engine)() as session:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        return int(pid)


async def _terminate(database_url: str, pid: int) -> None:
    conn = await asyncpg.connect(db.plain_url(database_url))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_a_live_connection_is_reused(database_url: str) -> None:
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first
    finally:
        await engine.dispose()


@pytest.mark.parametrize("idle", [0.0, 0.3])
async def test_a_connection_the_server_closed_is_replaced_not_used(
    database_url: str, idle: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # idle 0.3 s with a window of 0.1 s: the idle connection is pinged; idle 0: within the
    # window, the closed socket alone must give it away.
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.1 if idle else 60.0)
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        await _terminate(database_url, first)
        await asyncio.sleep(max(idle, 0.2))  # the event loop reads the server's goodbye
        second = await _backend_pid(engine)
        assert second != first
        assert await _backend_pid(engine) == second
    finally:
        await engine.dispose()


async def test_get_requests_read_outside_a_transaction_and_cannot_write(database_url: str) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    app.router.route_class = CommittingRoute
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    read_engine = db.create_engine(database_url, pool_size=1, max_overflow=0, read_only=True)
    app.state.sessionmaker = db.create_sessionmaker(engine)
    app.state.read_sessionmaker = db.create_sessionmaker(read_engine)

    async def state(session: AsyncSession) -> dict[str, object]:
        # now() is the transaction's start: two statements apart in time see the same one
        # only inside one transaction.
        first = (await session.execute(text("SELECT now(), pg_sleep(0.02)"))).one()[0]
        row = (
            await session.execute(text("SELECT current_setting('transaction_read_only'), now()"))
        ).one()
        return {"read_only": row[0], "own_transaction": row[1] != first}

    @app.get("/read")
    async def read(session: DbSession) -> dict[str, object]:
        return await state(session)

    @app.post("/write")
    async def write(session: DbSession) -> dict[str, object]:
        await session.execute(text("CREATE TABLE IF NOT EXISTS pool_probe (x int)"))
        await session.execute(text("INSERT INTO pool_probe VALUES (1)"))
        return await state(session)

    @app.get("/sneaky")
    async def sneaky(session: DbSession) -> None:
        await session.execute(text("INSERT INTO pool_probe VALUES (2)"))

    @app.get("/callback")
    async def callback(session: WritingSession) -> dict[str, object]:
        await session.execute(text("INSERT INTO pool_probe VALUES (3)"))
        return await state(session)

    try:
        async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as c:
            # A read: read-only, and each statement its own transaction (no BEGIN around it).
            assert (await c.get("/read")).json() == {"read_only": "on", "own_transaction": True}
            assert (await c.post("/write")).json() == {"read_only": "off", "own_transaction": False}
            r = await c.get("/sneaky")  # a GET that writes is refused by the server...
            assert r.status_code >= 500 and r.headers["content-type"] == "application/problem+json"
            assert (await c.get("/callback")).json()["read_only"] == "off"  # ...unless it says so
        async with db.create_sessionmaker(engine)() as session:
            rows = (await session.execute(text("SELECT x FROM pool_probe ORDER BY x"))).scalars()
            assert list(rows) == [1, 3]
    finally:
        await read_engine.dispose()
        await engine.dispose()
