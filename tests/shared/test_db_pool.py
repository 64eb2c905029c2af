"""The pool's liveness check (`shared.db.create_engine`): a connection the server closed is
never handed to a request, and a live one is reused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from shared import db


async def _backend_pid(engine: db.AsyncEngine) -> int:
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
