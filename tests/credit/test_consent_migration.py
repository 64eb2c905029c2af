"""The consent migration applies the new rule to existing data: explicit consents stay, each
application gets the consent its state implies, a deleted consent stays deleted; and the
downgrade keeps what is in force in the old shape."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command

from services.credit.app import MIGRATIONS
from shared.db import plain_url
from shared.migrations import alembic_config, upgrade
from tests.credit.conftest import HZBANK, HZUB, ICBC, SEEDED_PRODUCTS
from tests.databases import database_at

BEFORE = "5b1e7c2a9d40"  # the last revision with one consent row per enterprise and bank
E1, E2, E3 = "91330106MA2HXFY97H", "9144030071526726XG", "91330108000000001X"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def old_database(admin_url: str) -> AsyncIterator[str]:
    """A database whose credit schema is at the revision before the consent change."""
    async with database_at(admin_url, MIGRATIONS, "credit", BEFORE) as url:
        yield url


async def _application(
    conn: asyncpg.Connection, uscc: str, bank: str, status: str, **times: Any
) -> uuid.UUID:
    app_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO credit.applications
            (id, uscc, enterprise_name, bank_id, product_id, product_version, status,
             requested_amount, requested_term_months, line_amount, run_id, period, stage,
             approved_term_months, created_by, created_at, updated_at, decided_at,
             disbursed_at, closed_at)
        VALUES ($1, $2, 'Demo Co', $3, $4, 1, $5, 100000, 12, 500000, $6, 2025, 'growth',
                $7, $13, $8, $9, $10, $11, $12)
        """,
        app_id,
        uscc,
        bank,
        uuid.UUID(SEEDED_PRODUCTS[bank]),
        status,
        uuid.uuid4(),
        times.get("term"),
        T0,
        times.get("updated", T0),
        times.get("decided"),
        times.get("disbursed"),
        times.get("closed"),
        uscc,
    )
    return app_id


async def _consents(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch("SELECT * FROM credit.consents ORDER BY uscc, bank_id"))
    finally:
        await conn.close()


async def test_existing_consents_follow_the_new_rule_and_back(old_database: str) -> None:
    url = old_database
    later = T0 + timedelta(days=10)
    conn = await asyncpg.connect(plain_url(url))
    try:
        # E1 consented to HZBANK on its own, then applied there (still open).
        await conn.execute(
            "INSERT INTO credit.consents (uscc, bank_id, granted_by, source, granted_at) "
            "VALUES ($1, $2, $3, 'explicit', $4)",
            E1,
            HZBANK,
            E1,
            T0 - timedelta(days=1),
        )
        open_e1 = await _application(conn, E1, HZBANK, "submitted")
        # E2 applied to ICBC five times; its one consent row came from applying.
        withdrawn = await _application(conn, E2, ICBC, "withdrawn", updated=later)
        rejected = await _application(conn, E2, ICBC, "rejected", decided=later, updated=later)
        disbursed = await _application(
            conn, E2, ICBC, "disbursed", term=120, decided=T0, disbursed=later, updated=later
        )
        closed = await _application(
            conn, E2, ICBC, "closed", term=6, decided=T0, disbursed=T0, closed=later, updated=later
        )
        await conn.execute(
            "INSERT INTO credit.consents (uscc, bank_id, granted_by, source) "
            "VALUES ($1, $2, $3, 'application')",
            E2,
            ICBC,
            E2,
        )
        # E3 withdrew its application to HZUB and then deleted the consent.
        await _application(conn, E3, HZUB, "withdrawn", updated=later)
        # E3's one-month loan from HZBANK ran out long ago, never closed.
        lapsed = await _application(
            conn, E3, HZBANK, "disbursed", term=1, decided=T0, disbursed=T0, updated=T0
        )
        await conn.execute(
            "INSERT INTO credit.consents (uscc, bank_id, granted_by, source) "
            "VALUES ($1, $2, $3, 'application')",
            E3,
            HZBANK,
            E3,
        )
    finally:
        await conn.close()

    await asyncio.to_thread(upgrade, MIGRATIONS, url, "credit")
    rows = {(r["uscc"], r["bank_id"], r["application_id"]): r for r in await _consents(url)}
    assert set(rows) == {
        (E1, HZBANK, None),
        (E1, HZBANK, open_e1),
        (E2, ICBC, withdrawn),
        (E2, ICBC, rejected),
        (E2, ICBC, disbursed),
        (E2, ICBC, closed),
        (E3, HZBANK, lapsed),
    }
    assert rows[(E3, HZBANK, lapsed)]["expires_at"] == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    explicit = rows[(E1, HZBANK, None)]
    assert explicit["basis"] == "explicit" and explicit["ended_at"] is None
    assert explicit["expires_at"] is None and explicit["granted_at"] == T0 - timedelta(days=1)
    ended = {
        app_id: (rows[(E2, ICBC, app_id)]["end_reason"], rows[(E2, ICBC, app_id)]["ended_at"])
        for app_id in (withdrawn, rejected, closed)
    }
    assert ended == {
        withdrawn: ("application_withdrawn", later),
        rejected: ("application_rejected", later),
        closed: ("loan_closed", later),
    }
    loan = rows[(E2, ICBC, disbursed)]
    assert loan["ended_at"] is None and loan["basis"] == "application"
    # Disbursed on 11 March 2026 for ten years.
    assert loan["expires_at"] == datetime(2036, 3, 11, 9, 0, tzinfo=UTC)
    opened = rows[(E1, HZBANK, open_e1)]
    assert opened["ended_at"] is None and opened["expires_at"] is None

    # Back: one row per enterprise and bank with something in force, explicit preferred; the
    # lapsed loan's consent is not in force, so the old shape has no row for it.
    cfg = alembic_config(MIGRATIONS, url, "credit")
    await asyncio.to_thread(command.downgrade, cfg, BEFORE)
    old = [(r["uscc"], r["bank_id"], r["source"]) for r in await _consents(url)]
    assert old == [(E1, HZBANK, "explicit"), (E2, ICBC, "application")]
    # And forward again: the same consents derived again, but the lapsed one, whose row the
    # downgrade dropped.
    await asyncio.to_thread(upgrade, MIGRATIONS, url, "credit")
    again = {(r["uscc"], r["bank_id"], r["application_id"]) for r in await _consents(url)}
    assert again == set(rows) - {(E3, HZBANK, lapsed)}
