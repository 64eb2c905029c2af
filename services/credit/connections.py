"""The hot reads' few plain asyncpg connections, each lent to one read at a time.

A copy of scoring's (`services/scoring/scores/connections.py`; a service does not import
another), with the connections read-only as the GET requests' pool's are. Not a SQLAlchemy
pool, nor `asyncpg.Pool`: measured here (issue 11), a statement on a held asyncpg connection
costs ~21 µs of the service's CPU, through `asyncpg.Pool` ~115 µs, through the read engine's
checkout ~150-170 µs. What the hot reads need from a pool is small: at most `size`
connections, a broken one never lent again, waiting when all are lent. Everything here runs
on the event loop's thread, between awaits, so the bookkeeping needs no lock.

A connection a read gives back after an error or a cancellation is closed, not reused:
asyncpg may still be in the middle of that query's protocol exchange. A connection the
server closed (PostgreSQL restarted) is noticed and replaced when next lent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

# As `shared.db.create_engine(read_only=True)`: the server refuses a write on them.
_READ_ONLY = {"default_transaction_read_only": "on"}


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

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.url, server_settings=_READ_ONLY)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """One statement on a lent connection (its own snapshot: no transaction)."""
        conn = await self.acquire()
        try:
            row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
        except BaseException:
            self.discard(conn)
            raise
        self.release(conn)
        return row

    async def acquire(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the hot reads' connections are closed")
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
