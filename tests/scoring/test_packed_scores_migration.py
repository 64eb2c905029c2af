"""The migration that packs each score's dimension percentiles, points and value sources
into one bytea keeps every number to the bit (NaN, -0.0, the extremes, a subnormal), reads
what a short or NULL array lacked as NaN (a source as 0, "none recorded"), and its downgrade
gives the arrays back."""

from __future__ import annotations

import asyncio
import math
import struct
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic import command

from services.scoring.app import MIGRATIONS
from services.scoring.scores.packed import PACKED, unpack
from shared.db import plain_url
from shared.migrations import alembic_config, upgrade
from tests.databases import database_at

BEFORE = "3f9a0c2e7b51"  # the last revision with the three arrays
RUN = uuid.UUID("00000000-0000-4000-8000-000000000001")
NAN = float("nan")
ODD = [-0.0, 5e-324, -1.7976931348623157e308, 2.2250738585072014e-308, 1 / 3, NAN]
POINTS = [float(k) / 7 for k in range(18)] + ODD
ROWS = [
    # enterprise, dimension_percentiles, points, value_sources
    (1, [0.25, 0.5, 0.75, 1.0], POINTS, list(range(100, 124))),
    (2, [NAN] * 4, [0.0] * 24, None),
    (3, [0.5], POINTS[:3], [7, 8]),
]


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack(">d", v) if v == v else b"nan" for v in values]


@pytest.fixture
async def old_database(admin_url: str) -> AsyncIterator[str]:
    async with database_at(admin_url, MIGRATIONS, "scoring", BEFORE) as url:
        yield url


async def _old_rows(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO scoring.scoring_models (version, spec, status, created_by) "
        "VALUES ('t', '{}', 'draft', 't')"
    )
    await conn.execute(
        "INSERT INTO scoring.evaluation_runs (id, period, model_version, status, shadow, "
        "enterprise_count, scored_count, excluded_count, merges, cohort_stats, created_by) "
        "VALUES ($1, 2025, 't', 'completed', false, 3, 3, 0, '[]', '{}', 't')",
        RUN,
    )
    await conn.execute(
        f"CREATE TABLE scoring.scores_t PARTITION OF scoring.scores FOR VALUES IN ('{RUN}')"
    )
    await conn.executemany(
        "INSERT INTO scoring.scores (run_id, enterprise_id, stage, cohort, scored, "
        "dimension_scores, dimension_percentiles, points, values, value_sources) "
        "VALUES ($1, $2, 0, 0, true, '{1,2,3,4}', $3, $4, '{}', $5)",
        [(RUN, *row) for row in ROWS],
    )


async def test_scores_packed_and_back(old_database: str) -> None:
    conn = await asyncpg.connect(plain_url(old_database))
    try:
        await _old_rows(conn)
        await asyncio.to_thread(upgrade, MIGRATIONS, old_database, "scoring")
        packed = {
            r[0]: r[1] for r in await conn.fetch("SELECT enterprise_id, packed FROM scoring.scores")
        }
        for enterprise, dims, points, sources in ROWS:
            assert len(packed[enterprise]) == PACKED.size
            got_dims, got_points, got_sources = unpack(packed[enterprise])
            assert _bits(list(got_dims)) == _bits(dims + [NAN] * (4 - len(dims)))
            assert _bits(list(got_points)) == _bits(points + [NAN] * (24 - len(points)))
            assert list(got_sources) == (sources or []) + [0] * (24 - len(sources or []))
        assert math.copysign(1.0, unpack(packed[1])[1][18]) == -1.0  # -0.0 kept

        cfg = alembic_config(MIGRATIONS, old_database, "scoring")
        await asyncio.to_thread(command.downgrade, cfg, BEFORE)
        back = {
            r[0]: r[1:]
            for r in await conn.fetch(
                "SELECT enterprise_id, dimension_percentiles, points, value_sources "
                "FROM scoring.scores"
            )
        }
        for enterprise, *_ in ROWS:
            got = unpack(packed[enterprise])
            assert _bits(back[enterprise][0]) == _bits(list(got[0]))
            assert _bits(back[enterprise][1]) == _bits(list(got[1]))
            assert back[enterprise][2] == list(got[2])
        assert math.copysign(1.0, back[1][1][18]) == -1.0
        assert await conn.fetchval("SELECT to_regproc('scoring._unpack_f8')") is None
    finally:
        await conn.close()
