"""The migration to push sets keeps every push as it was (id, enterprise, rule, title, status,
run, time, read mark) behind the view `policy.pushes`; new ids continue after the old ones; the
downgrade gives the rows back as a table."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from alembic import command

from services.policy.app import MIGRATIONS
from shared.db import plain_url
from shared.migrations import alembic_config, upgrade
from tests.databases import database_at

BEFORE = "3c5f1e8a9d27"  # the last revision with a row per push
A, B = "91330106MA2HXFY97H", "9144030071526726XG"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RUN1, RUN2 = uuid.uuid4(), uuid.uuid4()
ROWS = "SELECT id, uscc, rule_key, title, status, run_id, created_at, read_at FROM policy.pushes"


@pytest.fixture
async def old_database(admin_url: str) -> AsyncIterator[str]:
    async with database_at(admin_url, MIGRATIONS, "policy", BEFORE) as url:
        yield url


async def test_pushes_survive_the_migration_both_ways(old_database: str) -> None:
    conn = await asyncpg.connect(plain_url(old_database))
    try:
        pushes = [
            (A, "pool:hnte", "高新技术企业培育库", 0, RUN1, T0, None),
            (A, "policy:rd_subsidy", "研发补助", 1, RUN1, T0, T0 + timedelta(days=1)),
            (B, "pool:hnte", "高新技术企业培育库", 1, RUN1, T0, None),
            (B, "pool:hnte", "高新技术企业培育库", 0, RUN2, T0 + timedelta(days=30), None),
            (A, "pool:hnte", "高新技术企业培育库(新)", 0, None, T0 + timedelta(days=40), None),
        ]
        await conn.executemany(
            "INSERT INTO policy.pushes (uscc, rule_key, title, status, run_id, created_at, "
            "read_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            pushes,
        )
        before = sorted(tuple(r) for r in await conn.fetch(ROWS))
    finally:
        await conn.close()

    await asyncio.to_thread(upgrade, MIGRATIONS, old_database, "policy")
    conn = await asyncpg.connect(plain_url(old_database))
    try:
        assert sorted(tuple(r) for r in await conn.fetch(ROWS)) == before
        next_id = await conn.fetchval("SELECT nextval('policy.push_ids')")
        assert next_id == max(r[0] for r in before) + 1
    finally:
        await conn.close()

    cfg = alembic_config(MIGRATIONS, old_database, "policy")
    await asyncio.to_thread(command.downgrade, cfg, BEFORE)
    conn = await asyncpg.connect(plain_url(old_database))
    try:
        assert sorted(tuple(r) for r in await conn.fetch(ROWS)) == before
        kind = await conn.fetchval(
            "SELECT relkind::text FROM pg_class WHERE oid = 'policy.pushes'::regclass"
        )
        assert kind == "r"
    finally:
        await conn.close()
