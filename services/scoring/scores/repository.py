"""The read side's queries over stored scores (`scoring.scores`, partitioned by run).

Plain SQL: the score arrays are read as they are stored (PostgreSQL arrays, 1-based), and
every list is a keyset or offset page of one run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import INDICATOR_CODES, PROFILE_CODES
from services.scoring.models import EvaluationRun
from services.scoring.scores.packed import unpacked

_GROWTH_COL = INDICATOR_CODES.index("revenue_growth") + 1  # PostgreSQL arrays start at 1
_QUALIFIED_COL = INDICATOR_CODES.index("qualified") + 1
FACT_COLUMNS = (*INDICATOR_CODES, *PROFILE_CODES)


async def cohort_stats(session: AsyncSession, run_id: uuid.UUID) -> dict[str, Any]:
    stats: dict[str, Any] = (
        await session.execute(select(EvaluationRun.cohort_stats).where(EvaluationRun.id == run_id))
    ).scalar_one()
    return stats


async def score_row(
    session: AsyncSession, run_id: uuid.UUID, enterprise_id: int
) -> dict[str, Any] | None:
    """The stored row, its packed fields apart (`packed.unpacked`)."""
    row = (
        (
            await session.execute(
                text("SELECT * FROM scoring.scores WHERE run_id = :r AND enterprise_id = :e"),
                {"r": run_id, "e": enterprise_id},
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else unpacked(row)


# The enterprise's score in every published run (the read path runs it as well, with $1).
HISTORY_SQL = (
    "SELECT r.id, r.period, r.model_version, s.stage, s.scored, s.exclusion, "
    "s.total, s.rank, s.cohort_size, s.percentile, s.tier, s.dimension_scores "
    "FROM scoring.evaluation_runs r JOIN scoring.scores s ON s.run_id = r.id "
    "WHERE r.status = 'published' AND s.enterprise_id = {enterprise} ORDER BY r.period"
)


async def history_rows(session: AsyncSession, enterprise_id: int) -> Sequence[RowMapping]:
    """The enterprise's score in every published run, oldest period first."""
    return (
        (
            await session.execute(
                text(HISTORY_SQL.format(enterprise=":e")),
                {"e": enterprise_id},
            )
        )
        .mappings()
        .all()
    )


USCC_PREFIX = re.compile(r"[0-9A-Za-z]{1,18}")


def _like(q: str) -> str:
    """A LIKE pattern matching `q` literally anywhere (its own % and _ are not wildcards)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def ranking(
    session: AsyncSession,
    run_id: uuid.UUID,
    stage: int,
    limit: int,
    offset: int,
    q: str | None = None,
) -> tuple[Sequence[RowMapping], int]:
    """One page of a stage's scored enterprises, best first, and how many there are; with
    `q`, only those whose name contains it or whose USCC starts with it (ranks stay the
    stage's)."""
    params: dict[str, object] = {"r": run_id, "s": stage, "limit": limit, "offset": offset}
    where = "s.run_id = :r AND s.stage = :s AND s.scored"
    if q:
        params["like"] = _like(q)
        if USCC_PREFIX.fullmatch(q):
            where += " AND (e.name ILIKE :like ESCAPE '\\' OR e.uscc LIKE :prefix)"
            params["prefix"] = q.upper() + "%"
        else:
            where += " AND e.name ILIKE :like ESCAPE '\\'"
    base = "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
    count_sql = (
        "SELECT count(*) FROM scoring.scores s WHERE run_id = :r AND stage = :s AND scored"
        if not q
        else f"SELECT count(*) {base}WHERE {where}"
    )
    total: int = (await session.execute(text(count_sql), params)).scalar_one()
    rows = (
        (
            await session.execute(
                text(
                    "SELECT e.uscc, e.name, s.stage, s.total, s.rank, s.tier, s.percentile "
                    f"{base}WHERE {where} "
                    "ORDER BY s.rank, e.uscc LIMIT :limit OFFSET :offset"
                ),
                params,
            )
        )
        .mappings()
        .all()
    )
    return rows, total


async def hidden_champions(
    session: AsyncSession,
    run: EvaluationRun,
    min_tier: int,
    min_growth: float,
    limit: int,
    offset: int,
) -> tuple[Sequence[RowMapping], int]:
    """Scored enterprises without any qualification, in a top tier or growing fast."""
    base = (
        "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
        "JOIN scoring.facts f ON f.uscc = e.uscc AND f.period = :p "
        "WHERE s.run_id = :r AND s.scored AND cardinality(f.qualifications) = 0 "
        f"AND coalesce(s.values[{_QUALIFIED_COL}], 0) = 0 "
        f"AND (s.tier >= :t OR s.values[{_GROWTH_COL}] >= :g) "
    )
    params = {
        "r": run.id,
        "p": run.period,
        "t": min_tier,
        "g": min_growth,
        "limit": limit,
        "offset": offset,
    }
    total: int = (await session.execute(text("SELECT count(*) " + base), params)).scalar_one()
    rows = (
        (
            await session.execute(
                text(
                    "SELECT e.uscc, e.name, s.stage, s.total, s.tier, s.percentile, "
                    f"s.values[{_GROWTH_COL}] AS growth "
                    + base
                    + "ORDER BY s.percentile DESC, e.uscc LIMIT :limit OFFSET :offset"
                ),
                params,
            )
        )
        .mappings()
        .all()
    )
    return rows, total


async def run_rows(
    session: AsyncSession,
    run: EvaluationRun,
    after: str | None,
    limit: int,
    *,
    with_facts: bool,
) -> list[dict[str, Any]]:
    """A keyset page of a run's scores in USCC order, with the period's facts if asked (the
    packed fields apart, `packed.unpacked`)."""
    fact_cols = ""
    if with_facts:
        fact_cols = ", " + ", ".join(f'f."{c}"' for c in FACT_COLUMNS) + ", e.founded_on"
    rows = (
        (
            await session.execute(
                text(
                    "SELECT e.uscc, e.name, s.stage, s.cohort, s.scored, s.exclusion, s.total, "
                    "s.rank, s.cohort_size, s.percentile, s.tier, s.dimension_scores, "
                    f"s.packed{fact_cols} "
                    "FROM scoring.scores s JOIN scoring.enterprises e ON e.id = s.enterprise_id "
                    + (
                        "LEFT JOIN scoring.facts f ON f.uscc = e.uscc AND f.period = :period "
                        if fact_cols
                        else ""
                    )
                    + "WHERE s.run_id = :run AND (CAST(:after AS text) IS NULL OR e.uscc > :after) "
                    "ORDER BY e.uscc LIMIT :limit"
                ),
                {"run": run.id, "after": after, "limit": limit, "period": run.period},
            )
        )
        .mappings()
        .all()
    )
    return [unpacked(r) for r in rows]
