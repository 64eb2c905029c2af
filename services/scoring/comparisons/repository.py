"""The comparison's queries: two runs' scores joined by enterprise, in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession


async def tier_counts(session: AsyncSession, run_id: uuid.UUID) -> list[tuple[int | None, int]]:
    rows = await session.execute(
        text(
            "SELECT CASE WHEN scored THEN tier END AS tier, count(*) FROM scoring.scores "
            "WHERE run_id = :r GROUP BY 1 ORDER BY 1 DESC NULLS LAST"
        ),
        {"r": run_id},
    )
    return [(r[0], int(r[1])) for r in rows]


async def paired_tiers(
    session: AsyncSession, against: uuid.UUID, run: uuid.UUID
) -> tuple[list[int], list[int]]:
    """The tiers (0: not scored) of the enterprises in both runs, as two aligned lists."""
    row = (
        await session.execute(
            text(
                "SELECT coalesce(array_agg(CASE WHEN a.scored THEN a.tier ELSE 0 END "
                "ORDER BY a.enterprise_id), '{}'), "
                "coalesce(array_agg(CASE WHEN b.scored THEN b.tier ELSE 0 END "
                "ORDER BY a.enterprise_id), '{}') "
                "FROM scoring.scores a JOIN scoring.scores b "
                "ON b.enterprise_id = a.enterprise_id AND b.run_id = :run "
                "WHERE a.run_id = :against"
            ),
            {"against": against, "run": run},
        )
    ).one()
    return list(row[0]), list(row[1])


async def changes(session: AsyncSession, against: uuid.UUID, run: uuid.UUID) -> dict[str, int]:
    row = (
        (
            await session.execute(
                text(
                    "SELECT count(*) FILTER (WHERE a.run_id IS NULL) AS only_in_run, "
                    "count(*) FILTER (WHERE b.run_id IS NULL) AS only_in_against, "
                    "count(*) FILTER (WHERE NOT a.scored AND b.scored) AS became_scored, "
                    "count(*) FILTER (WHERE a.scored AND NOT b.scored) AS became_unscored "
                    "FROM (SELECT * FROM scoring.scores WHERE run_id = :against) a "
                    "FULL JOIN (SELECT * FROM scoring.scores WHERE run_id = :run) b "
                    "ON b.enterprise_id = a.enterprise_id"
                ),
                {"against": against, "run": run},
            )
        )
        .mappings()
        .one()
    )
    return {k: int(v) for k, v in row.items()}


async def movers(
    session: AsyncSession,
    against: uuid.UUID,
    run: uuid.UUID,
    direction: Literal["up", "down"],
    limit: int,
    offset: int,
) -> tuple[Sequence[RowMapping], int]:
    """Enterprises scored in both runs whose total rose (or fell), the largest change first
    (rounded to 1e-9 like every tie, so sums in another order are no change)."""
    delta = "round((b.total - a.total)::numeric, 9)"
    sign = ">" if direction == "up" else "<"
    order = "DESC" if direction == "up" else "ASC"
    base = (
        "FROM scoring.scores a JOIN scoring.scores b "
        "ON b.enterprise_id = a.enterprise_id AND b.run_id = :run "
        "JOIN scoring.enterprises e ON e.id = a.enterprise_id "
        f"WHERE a.run_id = :against AND a.scored AND b.scored AND {delta} {sign} 0 "
    )
    params: dict[str, Any] = {"against": against, "run": run, "limit": limit, "offset": offset}
    total: int = (await session.execute(text("SELECT count(*) " + base), params)).scalar_one()
    rows = (
        (
            await session.execute(
                text(
                    "SELECT e.uscc, e.name, a.stage AS a_stage, a.total AS a_total, "
                    "a.rank AS a_rank, a.percentile AS a_percentile, a.tier AS a_tier, "
                    "b.stage AS b_stage, b.total AS b_total, b.rank AS b_rank, "
                    "b.percentile AS b_percentile, b.tier AS b_tier "
                    + base
                    + f"ORDER BY {delta} {order}, e.uscc LIMIT :limit OFFSET :offset"
                ),
                params,
            )
        )
        .mappings()
        .all()
    )
    return rows, total
