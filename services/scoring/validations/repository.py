"""A run's scores and the enterprises' groupings as numpy columns, read in one COPY.

At a million enterprises a row-by-row read (an asyncpg Record per firm, then a Python loop per
column) took longer than the validation it feeds. Here PostgreSQL writes the columns as CSV
(`COPY (SELECT ...) TO STDOUT`) into a temporary file, the indicator and dimension arrays
already split into one column each, and pyarrow's multithreaded reader turns the file into
typed columns: no Python object per firm.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES
from services.scoring.models import EvaluationRun

# Positions in the arrays are the catalogue's order (1-based in SQL); a missing element reads
# as NULL, and a stored NaN as NaN: both are "no value" to the statistics.
_VALUE_COLUMNS = tuple(f"v{i}" for i in range(len(INDICATOR_CODES)))
_DIMENSION_COLUMNS = tuple(f"d{i}" for i in range(len(DIMENSIONS)))
_SCORES = (
    "SELECT e.uscc, s.scored, s.total, s.tier, s.stage, "
    + ", ".join(f's."values"[{i + 1}] AS {c}' for i, c in enumerate(_VALUE_COLUMNS))
    + ", "
    + ", ".join(f"s.dimension_scores[{i + 1}] AS {c}" for i, c in enumerate(_DIMENSION_COLUMNS))
    + ", e.industry, e.district, e.founded_on FROM scoring.scores s "
    "JOIN scoring.enterprises e ON e.id = s.enterprise_id WHERE s.run_id = $1 ORDER BY e.uscc"
)
_TYPES: dict[str, pa.DataType] = {
    "uscc": pa.string(),
    "scored": pa.bool_(),
    "total": pa.float64(),
    "tier": pa.float64(),
    "stage": pa.int64(),
    **{c: pa.float64() for c in (*_VALUE_COLUMNS, *_DIMENSION_COLUMNS)},
    "industry": pa.string(),
    "district": pa.string(),
    "founded_on": pa.date32(),
}


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


def _read(path: Path) -> pa.Table:
    # Only COPY's NULL (an empty unquoted field) is missing: an industry called "N/A" is a
    # label, and PostgreSQL writes a float NaN as "NaN", which the reader parses as NaN.
    return pa_csv.read_csv(
        path,
        convert_options=pa_csv.ConvertOptions(
            column_types=_TYPES,
            null_values=[""],
            true_values=["t"],
            false_values=["f"],
            strings_can_be_null=True,
        ),
    )


def _floats(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    # A copy: pyarrow's zero-copy views are read-only and the caller masks unscored firms.
    return np.array(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _labels(table: pa.Table, name: str) -> npt.NDArray[Any]:
    column = table.column(name)
    missing = pc.or_kleene(pc.is_null(column), pc.equal(column, ""))
    filled = pc.if_else(missing, pa.scalar("unknown"), column)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=object)


def columns_of(run: EvaluationRun, table: pa.Table) -> RunColumns:
    """The numpy columns of the COPY's table (unscored firms: NaN score, tier 0)."""
    scored = np.asarray(table.column("scored").fill_null(False).to_numpy(zero_copy_only=False))
    score = _floats(table, "total")
    score[~scored] = np.nan
    tier = np.nan_to_num(_floats(table, "tier"), nan=0.0).astype(np.int64)
    tier[~scored] = 0
    chars = {
        f"indicator:{c}": _floats(table, col)
        for c, col in zip(INDICATOR_CODES, _VALUE_COLUMNS, strict=True)
    }
    chars.update(
        {
            f"dimension:{d.value}": _floats(table, col)
            for d, col in zip(DIMENSIONS, _DIMENSION_COLUMNS, strict=True)
        }
    )
    return RunColumns(
        run=run,
        uscc=np.asarray(table.column("uscc").to_numpy(zero_copy_only=False), dtype=object),
        score=score,
        tier=tier,
        stage=np.asarray(table.column("stage").to_numpy(zero_copy_only=False), dtype=np.int64),
        characteristics=chars,
        industry=_labels(table, "industry"),
        district=_labels(table, "district"),
        founded_on=np.asarray(
            table.column("founded_on").to_numpy(zero_copy_only=False), dtype="datetime64[D]"
        ),
    )


async def run_columns(session: AsyncSession, run: EvaluationRun) -> RunColumns:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    with tempfile.TemporaryDirectory(prefix="validation-") as tmp:
        path = Path(tmp) / "scores.csv"
        await driver.copy_from_query(_SCORES, run.id, output=path, format="csv", header=True)
        # The reader is CPU work for seconds at a million rows: off the event loop.
        table = await asyncio.to_thread(_read, path)
    return await asyncio.to_thread(columns_of, run, table)


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
