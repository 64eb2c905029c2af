"""The audit log (审计记录): who did what to which run, objection or value, and when.

Written in the transaction of the change it records, so a change and its record commit or
roll back together; never updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import AuditEvent


async def record(
    session: AsyncSession,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object,
    **detail: Any,
) -> None:
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            detail=detail,
        )
    )
    await session.flush()


async def events(
    session: AsyncSession,
    subject_type: str | None,
    subject_id: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[AuditEvent], int]:
    query = select(AuditEvent)
    if subject_type is not None:
        query = query.where(AuditEvent.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset))
    return rows.all(), total
