"""A hot read path's few plain asyncpg connections, each lent to one read at a time.

For the reads answered before routing (`shared.hot`), which send one statement and need
none of SQLAlchemy's session machinery: its checkout, transaction bookkeeping and close
cost 150-170 µs of CPU per read against ~20 µs here (issue 11's profiles of credit's and
policy's dashboard parts). The connections are read-only (the server refuses a write).

Not `asyncpg.Pool`: measured on the score read (issue 11), its acquire and release cost
60 µs of CPU with no query at all, and a pooled query 250 µs against 120 µs on a connection
held directly (the release is shielded in a task of its own: another event-loop turn per
read). What the read path needs from a pool is small: at most `size` connections, a broken
one never lent again, waiting when all are lent. Everything here runs on the event loop's
thread, between awaits, so the bookkeeping needs no lock.

A connection a read gives back after an error or a cancellation is closed, not reused:
asyncpg may still be in the middle of that query's protocol exchange. A connection the
server closed (PostgreSQL restarted) is noticed and replaced when next lent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from shared.db import plain_url
from shared.settings import ComponentSettings


class Connections:
    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # idle, lent and being opened
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    @classmethod
    async def open(cls, url: str, size: int) -> Connections:
        """With one connection made now, so a database that cannot be reached stops the
        startup rather than the first read."""
        conns = cls(url, size)
        conns._idle.append(await conns._connect())
        conns._open = 1
        return conns

    async def acquire(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the read connections are closed")  # as asyncpg's
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._open -= 1
            if self._open < self.size:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            await self._wait()

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.url, server_settings={"default_transaction_read_only": "on"}
        )

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """One statement on a lent connection (its own snapshot: no transaction)."""
        async with lent(self) as conn:
            row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
        return row

    async def _wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then cancelled: pass the turn on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: asyncpg.Connection) -> None:
        """Give back a connection whose read completed."""
        if self._closed or conn.is_closed():
            self.discard(conn)
            return
        self._idle.append(conn)
        self._wake()

    def discard(self, conn: asyncpg.Connection) -> None:
        """Close a connection whose read failed or was cancelled; its slot is free again."""
        conn.terminate()
        self._open -= 1
        self._wake()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.gather(*(c.close(timeout=5) for c in idle), return_exceptions=True)


@asynccontextmanager
async def lent(connections: Connections) -> AsyncIterator[asyncpg.Connection]:
    """A connection for one read: given back when the read completes, closed when it does
    not (an error or a cancellation may leave asyncpg mid-exchange)."""
    conn = await connections.acquire()
    try:
        yield conn
    except BaseException:
        connections.discard(conn)
        raise
    connections.release(conn)


async def open_read_connections(app: FastAPI) -> None:
    """`app.state.read_connections`, half the size of the database pool (docs/deploy.md)."""
    settings: ComponentSettings = app.state.settings
    app.state.read_connections = await Connections.open(
        plain_url(app.state.database_url), max(2, settings.db_pool_size // 2)
    )


async def close_read_connections(app: FastAPI) -> None:
    connections: Connections | None = getattr(app.state, "read_connections", None)
    if connections is not None:
        await connections.close()
