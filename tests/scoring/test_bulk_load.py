"""The bulk loader writes exactly what the import API writes for the same data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from devtools.demo import from_demo
from services.scoring.imports.bulk import bulk_load
from tests.platform import Platform
from tests.scoring_fixtures import demo, import_period

N, SEED = 150, 4


async def snapshot(platform: Platform) -> list[Any]:
    async with platform.fastapi["scoring"].state.engine.connect() as conn:
        facts = (
            await conn.execute(
                text(
                    "SELECT f.*, e.name, e.founded_on, e.industry, e.legal_rep "
                    "FROM scoring.facts f JOIN scoring.enterprises e USING (uscc) "
                    "ORDER BY f.uscc"
                )
            )
        ).mappings()
        drop = {"import_id", "updated_at", "enterprise_id", "sources"}
        return [{k: v for k, v in r.items() if k not in drop} for r in facts]


async def test_bulk_load_equals_csv_import(platform: Platform, database_url: str) -> None:
    await platform.start("scoring")
    await import_period(platform, N, SEED, 2025)
    via_api = await snapshot(platform)
    async with platform.fastapi["scoring"].state.engine.begin() as conn:
        await conn.execute(text("TRUNCATE scoring.facts, scoring.enterprises CASCADE"))
    maker = platform.fastapi["scoring"].state.sessionmaker
    async with maker() as session, session.begin():
        counts = await bulk_load(session, from_demo(demo(N, SEED), 2025))
    assert counts == (N, 0, 0)
    via_bulk = await snapshot(platform)
    assert len(via_bulk) == N
    for a, b in zip(via_api, via_bulk, strict=True):
        assert a == b
    async with maker() as session, session.begin():
        assert await bulk_load(session, from_demo(demo(N, SEED), 2025)) == (0, 0, N)
