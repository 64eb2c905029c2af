"""The validation's columnar read of a run (one COPY, pyarrow) against a row-by-row read of
the same rows, with the awkward rows written in: no industry, an empty or "N/A" district, no
founding date, a short indicator array, no dimension scores, NaN values, an unscored firm."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import text

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES
from services.scoring.models import EvaluationRun
from services.scoring.validations.repository import run_columns
from shared.db import create_sessionmaker
from tests.platform import Platform
from tests.scoring_fixtures import publish_demo

_ROWS = (
    "SELECT e.uscc, s.scored, s.total, s.tier, s.stage, s.values, s.dimension_scores, "
    "e.industry, e.district, e.founded_on FROM scoring.scores s "
    "JOIN scoring.enterprises e ON e.id = s.enterprise_id WHERE s.run_id = :run ORDER BY e.uscc"
)


def _matrix(rows: Sequence[Any], col: int, width: int) -> np.ndarray:
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        if r[col]:
            out[i, : len(r[col])] = r[col]
    return out


async def _awkward(conn: Any, run_id: str) -> None:
    ids = [
        r[0]
        for r in await conn.execute(
            text(
                "SELECT s.enterprise_id FROM scoring.scores s JOIN scoring.enterprises e "
                "ON e.id = s.enterprise_id WHERE s.run_id = :run AND s.scored ORDER BY e.uscc "
                "LIMIT 4"
            ),
            {"run": run_id},
        )
    ]
    statements = [
        "UPDATE scoring.enterprises SET industry = NULL, district = '' WHERE id = :a",
        "UPDATE scoring.enterprises SET founded_on = NULL, district = 'N/A' WHERE id = :b",
        "UPDATE scoring.scores SET values = ARRAY[1.5, 'NaN']::float8[], "
        "dimension_scores = ARRAY[]::float8[] WHERE run_id = :run AND enterprise_id = :c",
        "UPDATE scoring.scores SET scored = false, total = 'NaN' "
        "WHERE run_id = :run AND enterprise_id = :d",
    ]
    params = dict(zip("abcd", ids, strict=True), run=run_id)
    for sql in statements:
        await conn.execute(text(sql), params)


async def test_columns_equal_a_row_by_row_read(platform: Platform) -> None:
    run_id = await publish_demo(platform, n=60, seed=4, period=2025)
    engine = platform.fastapi["scoring"].state.engine
    async with engine.begin() as conn:
        await _awkward(conn, run_id)
    async with create_sessionmaker(engine)() as session:
        run = await session.get(EvaluationRun, uuid.UUID(run_id))
        assert run is not None
        cols = await run_columns(session, run)
        rows = (await session.execute(text(_ROWS), {"run": run_id})).all()

    scored = np.array([bool(r[1]) for r in rows])
    assert not scored.all() and cols.uscc.tolist() == [r[0] for r in rows]
    score = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
    score[~scored] = np.nan
    tier = np.array([r[3] or 0 for r in rows])
    tier[~scored] = 0
    np.testing.assert_array_equal(cols.score, score)
    np.testing.assert_array_equal(cols.tier, tier)
    np.testing.assert_array_equal(cols.stage, [r[4] for r in rows])
    values, dims = _matrix(rows, 5, len(INDICATOR_CODES)), _matrix(rows, 6, len(DIMENSIONS))
    for i, c in enumerate(INDICATOR_CODES):
        np.testing.assert_array_equal(cols.characteristics[f"indicator:{c}"], values[:, i])
    for i, d in enumerate(DIMENSIONS):
        np.testing.assert_array_equal(cols.characteristics[f"dimension:{d.value}"], dims[:, i])
    assert cols.industry.tolist() == [r[7] or "unknown" for r in rows]
    assert cols.district.tolist() == [r[8] or "unknown" for r in rows]
    assert "N/A" in cols.district.tolist() and "unknown" in cols.industry.tolist()
    np.testing.assert_array_equal(
        cols.founded_on, np.array([r[9] for r in rows], dtype="datetime64[D]")
    )
    assert np.isnat(cols.founded_on).any()
