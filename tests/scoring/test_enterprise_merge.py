"""`merge_enterprises`: an UPDATE of the changed rows and a plain INSERT of the new ones, with
the upsert's result, also when another transaction inserts one of the new usccs meanwhile."""

from __future__ import annotations

import asyncio

import asyncpg

from services.scoring.imports.repository import merge_enterprises
from shared.db import plain_url

STAGE = "SELECT uscc, name, industry FROM stage"
A, B, C = "91330100MA00000001", "91330100MA00000002", "91330100MA00000003"


async def _stage(conn: asyncpg.Connection, rows: list[tuple[str, str, str | None]]) -> None:
    await conn.execute("CREATE TEMP TABLE stage (uscc text, name text, industry text)")
    await conn.executemany("INSERT INTO stage VALUES ($1, $2, $3)", rows)


async def _enterprises(conn: asyncpg.Connection) -> list[tuple[str, str, str | None]]:
    rows = await conn.fetch("SELECT uscc, name, industry FROM scoring.enterprises ORDER BY uscc")
    return [(r["uscc"], r["name"], r["industry"]) for r in rows]


async def test_updates_changed_inserts_new_and_keeps_unchanged(database_url: str) -> None:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute(
            "INSERT INTO scoring.enterprises (uscc, name, industry) "
            f"VALUES ('{A}', 'old', 'software'), ('{B}', 'same', 'chips')"
        )
        before = await conn.fetchval(
            f"SELECT updated_at FROM scoring.enterprises WHERE uscc = '{B}'"
        )
        await _stage(conn, [(A, "new", None), (B, "same", "chips"), (C, "added", "bio")])
        async with conn.transaction():
            await merge_enterprises(conn, STAGE, ("name", "industry"), coalesced=("industry",))
        # A NULL of a coalesced column keeps the value on record.
        assert await _enterprises(conn) == [
            (A, "new", "software"),
            (B, "same", "chips"),
            (C, "added", "bio"),
        ]
        after = await conn.fetchval(
            f"SELECT updated_at FROM scoring.enterprises WHERE uscc = '{B}'"
        )
        assert after == before  # unchanged: not written
        async with conn.transaction():
            await merge_enterprises(
                conn, STAGE.replace("industry", "NULL AS industry"), ("name", "industry")
            )
        assert (await _enterprises(conn))[0] == (A, "new", None)  # not coalesced: NULL set
    finally:
        await conn.close()


async def test_a_concurrent_insert_falls_back_to_the_upsert(database_url: str) -> None:
    other = await asyncpg.connect(plain_url(database_url))
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await _stage(conn, [(A, "ours", "software"), (C, "added", None)])
        tx = other.transaction()
        await tx.start()
        await other.execute(
            f"INSERT INTO scoring.enterprises (uscc, name) VALUES ('{A}', 'theirs')"
        )

        async def merge() -> None:
            async with conn.transaction():
                await merge_enterprises(conn, STAGE, ("name", "industry"))

        task = asyncio.create_task(merge())
        # Our INSERT waits on their uncommitted row in the primary key, then fails on it.
        for _ in range(200):
            waiting = await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                conn.get_server_pid(),
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the merge never waited on the other transaction's row"
        await tx.commit()
        await task
        assert await _enterprises(conn) == [(A, "ours", "software"), (C, "added", None)]
    finally:
        await conn.close()
        await other.close()
