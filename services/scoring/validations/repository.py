"""A run's scores and the enterprises' groupings as numpy columns, read in one query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES
from services.scoring.models import EvaluationRun

_SCORES = (
    "SELECT e.uscc, s.scored, s.total, s.tier, s.stage, s.values, s.dimension_scores, "
    "e.industry, e.district, e.founded_on FROM scoring.scores s "
    "JOIN scoring.enterprises e ON e.id = s.enterprise_id WHERE s.run_id = $1 ORDER BY e.uscc"
)


@dataclass(frozen=True, slots=True)
class RunColumns:
    run: EvaluationRun
    uscc: npt.NDArray[Any]
    score: npt.NDArray[np.float64]  # NaN: not scored
    tier: npt.NDArray[np.int64]  # 0: not scored
    stage: npt.NDArray[np.int64]  # -1: no revenue
    characteristics: dict[str, npt.NDArray[np.float64]]
    industry: npt.NDArray[Any]
    district: npt.NDArray[Any]
    founded_on: npt.NDArray[np.datetime64]


def _matrix(rows: list[Any], col: int, width: int) -> npt.NDArray[np.float64]:
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        v = r[col]
        if v:
            out[i, : len(v)] = v
    return out


async def run_columns(session: AsyncSession, run: EvaluationRun) -> RunColumns:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    rows = await driver.fetch(_SCORES, run.id)
    scored = np.array([bool(r[1]) for r in rows], dtype=bool)
    score = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
    score[~scored] = np.nan
    tier = np.array([r[3] or 0 for r in rows], dtype=np.int64)
    tier[~scored] = 0
    values = _matrix(rows, 5, len(INDICATOR_CODES))
    dims = _matrix(rows, 6, len(DIMENSIONS))
    chars = {f"indicator:{c}": values[:, i] for i, c in enumerate(INDICATOR_CODES)}
    chars.update({f"dimension:{d.value}": dims[:, i] for i, d in enumerate(DIMENSIONS)})
    return RunColumns(
        run=run,
        uscc=np.array([r[0] for r in rows], dtype=object),
        score=score,
        tier=tier,
        stage=np.array([r[4] for r in rows], dtype=np.int64),
        characteristics=chars,
        industry=np.array([r[7] or "unknown" for r in rows], dtype=object),
        district=np.array([r[8] or "unknown" for r in rows], dtype=object),
        founded_on=np.array([r[9] for r in rows], dtype="datetime64[D]"),
    )


async def published_run(session: AsyncSession, period: int) -> EvaluationRun | None:
    run: EvaluationRun | None = await session.scalar(
        select(EvaluationRun).where(
            EvaluationRun.period == period, EvaluationRun.status == "published"
        )
    )
    return run


async def latest_run_of(session: AsyncSession, version: str, period: int) -> EvaluationRun | None:
    """The latest finished run of `version` on `period`, shadow runs included."""
    run: EvaluationRun | None = await session.scalar(
        select(EvaluationRun)
        .where(
            EvaluationRun.period == period,
            EvaluationRun.model_version == version,
            EvaluationRun.status.in_(("completed", "in_notice", "published", "superseded")),
        )
        .order_by(EvaluationRun.created_at.desc())
        .limit(1)
    )
    return run


async def run_by_id(session: AsyncSession, run_id: uuid.UUID) -> EvaluationRun | None:
    return await session.get(EvaluationRun, run_id)
