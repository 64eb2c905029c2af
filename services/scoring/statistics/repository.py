"""Aggregates over one run's scores, in SQL: a few grouped queries rather than reading the
run's rows (a period has tens of thousands of enterprises)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.statistics.schemas import BIN_WIDTH, BINS


async def stage_rows(session: AsyncSession, run_id: uuid.UUID) -> Sequence[RowMapping]:
    result = await session.execute(
        text(
            """
            SELECT stage,
                   count(*) AS enterprises,
                   count(*) FILTER (WHERE scored) AS scored,
                   count(*) FILTER (WHERE exclusion IS NOT NULL) AS excluded,
                   avg(total) FILTER (WHERE scored) AS mean_total,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY total)
                       FILTER (WHERE scored) AS median_total
            FROM scoring.scores WHERE run_id = :r GROUP BY stage ORDER BY stage
            """
        ),
        {"r": run_id},
    )
    return result.mappings().all()


async def histogram_rows(session: AsyncSession, run_id: uuid.UUID) -> Sequence[RowMapping]:
    result = await session.execute(
        text(
            """
            SELECT stage, least(floor(total / :w)::int, :last) AS bin, count(*) AS n
            FROM scoring.scores WHERE run_id = :r AND scored AND total IS NOT NULL
            GROUP BY 1, 2
            """
        ),
        {"r": run_id, "w": BIN_WIDTH, "last": BINS - 1},
    )
    return result.mappings().all()


async def tier_rows(session: AsyncSession, run_id: uuid.UUID) -> Sequence[RowMapping]:
    result = await session.execute(
        text(
            "SELECT stage, tier, count(*) AS n FROM scoring.scores "
            "WHERE run_id = :r AND scored AND tier IS NOT NULL GROUP BY 1, 2"
        ),
        {"r": run_id},
    )
    return result.mappings().all()


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
