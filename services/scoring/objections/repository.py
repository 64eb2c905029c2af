"""Objections and their evidence in the database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from services.scoring.models import Objection, ObjectionEvidence


async def evidence_of(
    session: AsyncSession, objection_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ObjectionEvidence]]:
    out: dict[uuid.UUID, list[ObjectionEvidence]] = {i: [] for i in objection_ids}
    if not objection_ids:
        return out
    rows = await session.scalars(
        select(ObjectionEvidence)
        .where(ObjectionEvidence.objection_id.in_(objection_ids))
        .order_by(ObjectionEvidence.created_at, ObjectionEvidence.id)
    )
    for e in rows:
        out[e.objection_id].append(e)
    return out


async def evidence_count(session: AsyncSession, objection_id: uuid.UUID) -> int:
    count: int = (
        await session.execute(
            select(func.count())
            .select_from(ObjectionEvidence)
            .where(ObjectionEvidence.objection_id == objection_id)
        )
    ).scalar_one()
    return count


async def evidence_file(
    session: AsyncSession, objection_id: uuid.UUID, evidence_id: uuid.UUID
) -> ObjectionEvidence | None:
    result: ObjectionEvidence | None = await session.scalar(
        select(ObjectionEvidence)
        .options(undefer(ObjectionEvidence.content))
        .where(ObjectionEvidence.id == evidence_id, ObjectionEvidence.objection_id == objection_id)
    )
    return result


async def objections_of_run(session: AsyncSession, run_id: uuid.UUID, uscc: str) -> int:
    """How many objections (any status) one enterprise has raised against one run."""
    count: int = (
        await session.execute(
            select(func.count())
            .select_from(Objection)
            .where(Objection.run_id == run_id, Objection.uscc == uscc)
        )
    ).scalar_one()
    return count


async def open_objection(
    session: AsyncSession, run_id: uuid.UUID, uscc: str, field: str
) -> Objection | None:
    result: Objection | None = await session.scalar(
        select(Objection).where(
            Objection.run_id == run_id,
            Objection.uscc == uscc,
            Objection.field == field,
            Objection.status == "open",
        )
    )
    return result


async def listing(
    session: AsyncSession,
    *,
    run_id: uuid.UUID | None,
    uscc: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Objection], int]:
    query = select(Objection)
    if run_id is not None:
        query = query.where(Objection.run_id == run_id)
    if uscc is not None:
        query = query.where(Objection.uscc == uscc)
    if status is not None:
        query = query.where(Objection.status == status)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.scalars(
        query.order_by(Objection.created_at.desc(), Objection.id).limit(limit).offset(offset)
    )
    return rows.all(), total
