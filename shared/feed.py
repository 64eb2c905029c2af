"""Reading another service's event feed from a cursor of one's own.

The producer keeps an outbox feed (`GET /v1/events?after=<id>`); each consumer stores how far
it has read in its own schema and moves the cursor in the same transaction as the work an
event caused, so an event is applied exactly once even across restarts and replicas (the row
lock serialises them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, String, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column


class ConsumerCursorMixin:
    """Columns of a service's `consumer_cursors` table (one row per feed it reads)."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def lock_cursor(session: AsyncSession, model: Any, name: str) -> int:
    """The cursor's position, locked until the transaction ends (created at 0 if new)."""
    await session.execute(insert(model).values(name=name, position=0).on_conflict_do_nothing())
    stmt = select(model).where(model.name == name).with_for_update()
    position: int = (await session.scalars(stmt)).one().position
    return position


async def advance_cursor(session: AsyncSession, model: Any, name: str, position: int) -> None:
    cursor = await session.get(model, name)
    assert cursor is not None, "lock_cursor first"
    cursor.position = position
    cursor.updated_at = datetime.now(UTC)
