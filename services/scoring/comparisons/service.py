"""A run compared with another (默认: the published run of its period, else of the previous
period): tiers on both sides, the tier migration matrix (governance.migration_matrix), the
biggest movers, and what credit and policy would change if it were published."""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

from fastapi import FastAPI
from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.comparisons import downstream, repository
from services.scoring.comparisons.schemas import (
    Changes,
    ComparisonOut,
    DownstreamPart,
    Mover,
    Movers,
    RunSide,
    Standing,
    TierCount,
)
from services.scoring.evaluations.service import readable_run
from services.scoring.governance import migration_matrix
from services.scoring.models import EvaluationRun
from services.scoring.scores.service import num, stage_name
from services.scoring.specs.service import SpecCache
from shared.errors import NotFound

Basis = Literal["given", "published_same_period", "published_previous_period"]


class NoBaseline(NotFound):
    slug = "no-baseline"
    title = "Nothing to compare with: no published run of this or an earlier period"


async def baseline(
    session: AsyncSession, run: EvaluationRun, against: uuid.UUID | None
) -> tuple[EvaluationRun, Basis]:
    if against is not None:
        return await readable_run(session, against), "given"
    same: EvaluationRun | None = await session.scalar(
        select(EvaluationRun).where(
            EvaluationRun.period == run.period,
            EvaluationRun.status == "published",
            EvaluationRun.id != run.id,
        )
    )
    if same is not None:
        return same, "published_same_period"
    previous: EvaluationRun | None = await session.scalar(
        select(EvaluationRun)
        .where(EvaluationRun.period < run.period, EvaluationRun.status == "published")
        .order_by(EvaluationRun.period.desc())
        .limit(1)
    )
    if previous is None:
        raise NoBaseline(f"Pass against=<run id> to compare run {run.id} with another")
    return previous, "published_previous_period"


async def side(session: AsyncSession, run: EvaluationRun) -> RunSide:
    counts = await repository.tier_counts(session, run.id)
    return RunSide(
        run_id=run.id,
        period=run.period,
        model_version=run.model_version,
        status=run.status,
        enterprises=sum(c for _, c in counts),
        scored=sum(c for t, c in counts if t is not None),
        tiers=[TierCount(tier=t, count=c) for t, c in counts],
    )


async def movers(
    session: AsyncSession,
    against: EvaluationRun,
    run: EvaluationRun,
    direction: Literal["up", "down"],
    limit: int,
    offset: int,
) -> Movers:
    rows, total = await repository.movers(session, against.id, run.id, direction, limit, offset)

    def standing(r: RowMapping, p: str) -> Standing:
        return Standing(
            stage=stage_name(r[f"{p}_stage"]),
            total=num(r[f"{p}_total"]),
            rank=r[f"{p}_rank"],
            percentile=num(r[f"{p}_percentile"]),
            tier=r[f"{p}_tier"],
        )

    items = []
    for row in rows:
        before, after = standing(row, "a"), standing(row, "b")
        assert before.total is not None and after.total is not None
        items.append(
            Mover(
                uscc=row["uscc"],
                name=row["name"],
                before=before,
                after=after,
                delta_total=after.total - before.total,
                delta_tier=(after.tier or 0) - (before.tier or 0),
            )
        )
    return Movers(items=items, total=total)


async def compare(
    app: FastAPI,
    session: AsyncSession,
    specs: SpecCache,
    run_id: uuid.UUID,
    against_id: uuid.UUID | None,
    limit: int,
    offset: int,
    *,
    with_downstream: bool = True,
) -> ComparisonOut:
    run = await readable_run(session, run_id)
    against, basis = await baseline(session, run, against_id)
    body = {"run_id": str(run.id), "limit": limit, "offset": offset}
    # The what-ifs run while the database answers the rest.
    calls = [
        asyncio.create_task(downstream.what_if(app, name, body))
        for name in (("credit", "policy") if with_downstream else ())
    ]
    try:
        run_side, against_side = await side(session, run), await side(session, against)
        before, after = await repository.paired_tiers(session, against.id, run.id)
        spec_run = await specs.get(session, run.model_version)
        spec_against = await specs.get(session, against.model_version)
        n_tiers = max(len(spec_run.tier_bands), len(spec_against.tier_bands))
        migration = migration_matrix(before, after, n_tiers=n_tiers)
        changes = Changes(**await repository.changes(session, against.id, run.id))
        up = await movers(session, against, run, "up", limit, offset)
        down = await movers(session, against, run, "down", limit, offset)
    except BaseException:
        for call in calls:
            call.cancel()
        raise
    skipped = DownstreamPart(status="unavailable", problem={"detail": "not asked"})
    credit, policy = await asyncio.gather(*calls) if calls else (skipped, skipped)
    return ComparisonOut(
        run=run_side,
        against=against_side,
        basis=basis,
        migration=migration.to_dict(),
        changes=changes,
        movers_up=up,
        movers_down=down,
        limit=limit,
        offset=offset,
        credit=credit,
        policy=policy,
    )
