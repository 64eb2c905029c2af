"""The bulk loader writes exactly what the import API writes for the same data."""

from __future__ import annotations

from typing import Any

import numpy as np
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


async def _rows(platform: Platform) -> list[dict[str, Any]]:
    """Every stored facts row (all columns but the load time), with its source as an index
    into the sources of the load, so two loads' rows compare."""
    async with platform.fastapi["scoring"].state.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT f.*, (SELECT max(id) FROM scoring.sources) AS last_source "
                    "FROM scoring.facts f ORDER BY f.uscc"
                )
            )
        ).mappings()
        out = []
        for r in rows:
            row = {k: v for k, v in r.items() if k not in ("updated_at", "last_source")}
            row["sources"] = [s == r["last_source"] for s in r["sources"]]
            out.append(row)
        return out


async def test_first_load_into_a_fresh_partition_equals_the_insert(
    platform: Platform, database_url: str
) -> None:
    """A period's first bulk load goes by COPY straight into a new partition; what it stores
    is exactly what the insert of staged rows stores (the path of a period whose partition
    exists), tags outside the vocabulary, missing values and ids included."""
    await platform.start("scoring")
    engine = platform.fastapi["scoring"].state.engine
    maker = platform.fastapi["scoring"].state.sessionmaker
    bulk = from_demo(demo(N, SEED), 2025)
    tags = dict(bulk.tags)
    for code, masks in tags.items():
        odd = masks.astype(np.int32)
        odd[:3] = (-1, 1 << len(bulk.vocabularies[code]), 0)
        tags[code] = odd
    bulk.tags = tags
    assert np.isnan(bulk.indicators).any()

    async with engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT to_regclass('scoring.facts_2025')"))
        ).scalar() is None
    async with maker() as session, session.begin():
        assert await bulk_load(session, bulk) == (N, 0, 0)
    async with engine.connect() as conn:
        attached = await conn.execute(
            text(
                "SELECT count(*) FROM pg_inherits "
                "WHERE inhparent = 'scoring.facts'::regclass "
                "AND inhrelid = 'scoring.facts_2025'::regclass"
            )
        )
        assert attached.scalar() == 1
    fresh = await _rows(platform)

    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE scoring.facts, scoring.enterprises RESTART IDENTITY"))
    async with maker() as session, session.begin():
        assert await bulk_load(session, bulk) == (N, 0, 0)
    inserted = await _rows(platform)
    assert len(fresh) == N
    assert fresh == inserted
    async with maker() as session, session.begin():
        assert await bulk_load(session, bulk) == (0, 0, N)


async def test_enterprise_texts_arrive_as_given(platform: Platform, database_url: str) -> None:
    """The enterprises' texts go to PostgreSQL as CSV: separators, quotes, line breaks,
    backslashes and non-ASCII arrive as given, an empty text as an empty string, a missing
    date or column as NULL."""
    await platform.start("scoring")
    bulk = from_demo(demo(N, SEED), 2025)
    assert bulk.founded_on is not None and bulk.district is not None
    name = bulk.name.astype(object)
    name[:5] = ['a,"b"\nc', "", "\\N", 'x\\,"', "杭州,滨江 \r\n有限公司"]
    bulk.name = name.astype(str)
    district = bulk.district.astype(object)
    district[:2] = ["", "NULL"]
    bulk.district = district.astype(str)
    founded = bulk.founded_on.copy()
    founded[0] = np.datetime64("NaT")
    bulk.founded_on = founded
    bulk.legal_rep = None
    maker = platform.fastapi["scoring"].state.sessionmaker
    async with maker() as session, session.begin():
        assert await bulk_load(session, bulk) == (N, 0, 0)
    async with platform.fastapi["scoring"].state.engine.connect() as conn:
        stored = {
            r.uscc: r
            for r in await conn.execute(
                text(
                    "SELECT uscc, name, founded_on, industry, district, legal_rep "
                    "FROM scoring.enterprises"
                )
            )
        }
    assert len(stored) == N
    for i, uscc in enumerate(bulk.uscc.tolist()):
        row = stored[uscc]
        assert row.name == bulk.name[i]
        assert row.district == bulk.district[i]
        assert row.industry == (None if bulk.industry is None else bulk.industry[i])
        assert row.legal_rep is None
        day = bulk.founded_on[i]
        assert row.founded_on == (None if np.isnat(day) else day.astype("datetime64[D]").item())


async def _mismatched_ids(platform: Platform, period: int) -> int:
    async with platform.fastapi["scoring"].state.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM scoring.facts f LEFT JOIN scoring.enterprises e "
                        "ON e.uscc = f.uscc WHERE f.period = :p "
                        "AND e.id IS DISTINCT FROM f.enterprise_id"
                    ),
                    {"p": period},
                )
            ).scalar_one()
        )


async def test_a_first_load_gives_each_row_its_enterprise_id(
    platform: Platform, database_url: str
) -> None:
    """A period's first load takes its enterprises' ids from the merge's own writes when it
    wrote every one (all new, or all changed), and from the table otherwise (some unchanged):
    each facts row gets its own enterprise's id either way."""
    await platform.start("scoring")
    maker = platform.fastapi["scoring"].state.sessionmaker
    data = demo(N, SEED)
    first = from_demo(data, 2024)
    async with maker() as session, session.begin():
        assert await bulk_load(session, first) == (N, 0, 0)  # all new
    assert await _mismatched_ids(platform, 2024) == 0

    some = from_demo(data, 2025)
    some.name = np.where(np.arange(N) % 3 == 0, np.char.add(some.name, " (new)"), some.name)
    async with maker() as session, session.begin():
        assert await bulk_load(session, some) == (N, 0, 0)  # some changed, some not
    assert await _mismatched_ids(platform, 2025) == 0

    every = from_demo(data, 2025)
    every.period = 2026
    every.name = np.char.add(every.name, " (renamed)")
    async with maker() as session, session.begin():
        assert await bulk_load(session, every) == (N, 0, 0)  # every one changed
    assert await _mismatched_ids(platform, 2026) == 0
    async with platform.fastapi["scoring"].state.engine.connect() as conn:
        renamed = (
            await conn.execute(
                text("SELECT count(*) FROM scoring.enterprises WHERE name LIKE '% (renamed)'")
            )
        ).scalar_one()
    assert renamed == N
