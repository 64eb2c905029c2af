"""Aggregates over one run's scores, in SQL: one grouped scan per run rather than reading the
run's rows (a period has tens of thousands of enterprises). The bins and tiers are fixed
constants, so the statement is built once, with no caller input in it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.statistics.schemas import BIN_WIDTH, BINS, TIERS


def _stage_sql() -> str:
    """One scan of the run's scores: per stage the counts, mean, median, each 10-point bin
    and each tier, as columns (`b0`..`b9`, `t1`..`t5`)."""
    bins = ",\n".join(
        f"count(*) FILTER (WHERE scored AND least(floor(total / {BIN_WIDTH})::int, {BINS - 1})"
        f" = {i}) AS b{i}"
        for i in range(BINS)
    )
    tiers = ",\n".join(
        f"count(*) FILTER (WHERE scored AND tier = {t}) AS t{t}" for t in range(1, TIERS + 1)
    )
    return f"""
        SELECT stage,
               count(*) AS enterprises,
               count(*) FILTER (WHERE scored) AS scored,
               count(*) FILTER (WHERE exclusion IS NOT NULL) AS excluded,
               avg(total) FILTER (WHERE scored) AS mean_total,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY total)
                   FILTER (WHERE scored) AS median_total,
               {bins},
               {tiers}
        FROM scoring.scores WHERE run_id = :r GROUP BY stage ORDER BY stage
    """


STAGE_SQL = text(_stage_sql())


async def stage_rows(session: AsyncSession, run_id: uuid.UUID) -> Sequence[RowMapping]:
    return (await session.execute(STAGE_SQL, {"r": run_id})).mappings().all()


async def migration(session: AsyncSession, run_id: uuid.UUID, previous: uuid.UUID) -> RowMapping:
    result = await session.execute(
        text(
            """
            SELECT count(*) AS compared,
                   count(*) FILTER (WHERE c.tier > p.tier) AS up,
                   count(*) FILTER (WHERE c.tier < p.tier) AS down,
                   count(*) FILTER (WHERE c.tier = p.tier) AS same
            FROM scoring.scores c
            JOIN scoring.scores p ON p.enterprise_id = c.enterprise_id AND p.run_id = :p
            WHERE c.run_id = :r AND c.scored AND p.scored
            """
        ),
        {"r": run_id, "p": previous},
    )
    return result.mappings().one()
