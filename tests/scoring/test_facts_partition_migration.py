"""The migration that partitions `facts` by period keeps every row, each in its period's
partition, and its downgrade gives them back in one table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic import command

from services.scoring.app import MIGRATIONS
from shared.db import plain_url
from shared.migrations import alembic_config, upgrade
from tests.databases import database_at

BEFORE = "5b7e2c9a1d40"  # the last revision with one facts table
ROWS = [
    ("91330106MA2HXFY97H", 2024, 1, 1.5, ["hnte"]),
    ("91330106MA2HXFY97H", 2025, 1, None, []),
    ("9144030071526726XG", 2025, 2, 2.5, ["hnte", "srdi"]),
]
SELECT = (
    "SELECT uscc, period, enterprise_id, rd_expense, qualifications, sources "
    "FROM scoring.facts ORDER BY uscc, period"
)


@pytest.fixture
async def old_database(admin_url: str) -> AsyncIterator[str]:
    async with database_at(admin_url, MIGRATIONS, "scoring", BEFORE) as url:
        yield url


async def test_facts_partitioned_by_period_and_back(old_database: str) -> None:
    conn = await asyncpg.connect(plain_url(old_database))
    try:
        await conn.executemany(
            "INSERT INTO scoring.facts (uscc, period, enterprise_id, rd_expense, "
            "qualifications, sources) VALUES ($1, $2, $3, $4, $5, ARRAY[7, NULL, 8])",
            ROWS,
        )
        before = [tuple(r) for r in await conn.fetch(SELECT)]
        await asyncio.to_thread(upgrade, MIGRATIONS, old_database, "scoring")
        assert [tuple(r) for r in await conn.fetch(SELECT)] == before
        partitions = await conn.fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'scoring.facts'::regclass ORDER BY c.relname"
        )
        assert [(p["relname"], p["bound"]) for p in partitions] == [
            ("facts_2024", "FOR VALUES IN ('2024')"),
            ("facts_2025", "FOR VALUES IN ('2025')"),
        ]
        assert await conn.fetchval("SELECT count(*) FROM scoring.facts_2025") == 2
        cfg = alembic_config(MIGRATIONS, old_database, "scoring")
        await asyncio.to_thread(command.downgrade, cfg, BEFORE)
        assert [tuple(r) for r in await conn.fetch(SELECT)] == before
        assert await conn.fetchval("SELECT to_regclass('scoring.facts_2025')") is None
        assert await conn.fetchval("SELECT to_regclass('scoring.ix_facts_period')") is not None
    finally:
        await conn.close()
