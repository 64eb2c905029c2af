"""The hot reads' own connections (services/credit/connections.py), against a real
PostgreSQL: a copy of scoring's, read-only."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.credit.connections import Connections
from shared.db import plain_url


async def _backends(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return count
    finally:
        await conn.close()


async def test_at_most_size_connections_and_waiting_for_one(database_url: str) -> None:
    url = plain_url(database_url)
    conns = await Connections.open(url, 2)
    try:
        first, second = await conns.acquire(), await conns.acquire()
        assert first is not second and await _backends(url) == 2
        third = asyncio.ensure_future(conns.acquire())
        await asyncio.sleep(0.05)
        assert not third.done()  # all lent: it waits
        conns.release(first)
        assert await asyncio.wait_for(third, 5) is first
        assert await _backends(url) == 2
        conns.release(second)
        conns.release(await third)
    finally:
        await conns.close()


async def test_a_failed_read_closes_its_connection_and_frees_its_slot(database_url: str) -> None:
    url = plain_url(database_url)
    conns = await Connections.open(url, 1)
    try:
        conn = await conns.acquire()
        waiting = asyncio.ensure_future(conns.acquire())
        await asyncio.sleep(0.05)
        conns.discard(conn)  # what a read does after an error or a cancellation
        assert conn.is_closed()
        fresh = await asyncio.wait_for(waiting, 5)
        assert fresh is not conn and await fresh.fetchval("SELECT 1") == 1
        conns.release(fresh)
    finally:
        await conns.close()


async def test_a_connection_the_server_closed_is_replaced(database_url: str) -> None:
    url = plain_url(database_url)
    conns = await Connections.open(url, 1)
    try:
        conn = await conns.acquire()
        pid = conn.get_server_pid()
        conns.release(conn)
        admin = await asyncpg.connect(url)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(50):  # until the client has read the server's goodbye
            if conn.is_closed():
                break
            await asyncio.sleep(0.02)
        again = await conns.acquire()
        assert again is not conn and await again.fetchval("SELECT 1") == 1
        conns.release(again)
    finally:
        await conns.close()


async def test_a_cancelled_waiter_does_not_lose_the_turn(database_url: str) -> None:
    url = plain_url(database_url)
    conns = await Connections.open(url, 1)
    try:
        conn = await conns.acquire()
        impatient = asyncio.ensure_future(conns.acquire())
        patient = asyncio.ensure_future(conns.acquire())
        await asyncio.sleep(0.05)
        conns.release(conn)  # wakes the first waiter...
        impatient.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await impatient
        assert await asyncio.wait_for(patient, 5) is conn
        conns.release(conn)
    finally:
        await conns.close()


async def test_closed_means_no_more_reads(database_url: str) -> None:
    url = plain_url(database_url)
    conns = await Connections.open(url, 2)
    lent = await conns.acquire()
    await conns.close()
    conns.release(lent)  # given back after the close: closed, not kept
    assert lent.is_closed()
    with pytest.raises(asyncpg.InterfaceError):
        await conns.acquire()


async def test_the_connections_read_only(database_url: str) -> None:
    conns = await Connections.open(plain_url(database_url), 1)
    try:
        assert await conns.fetchrow("SELECT 1 AS one") is not None
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conns.fetchrow("CREATE TABLE credit.should_not_exist (x int)")
        # The failed statement's connection was closed, and another one is made.
        row = await conns.fetchrow("SHOW default_transaction_read_only")
        assert row is not None and row[0] == "on"
    finally:
        await conns.close()
