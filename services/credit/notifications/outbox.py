"""The outbox: a notification is written in the transaction of the change it reports.

So none is lost (the change and its message commit together) and none is sent for a change
that rolled back. The dispatcher delivers them as signed webhooks; banks may also pull them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.models import OutboxMessage


async def enqueue(session: AsyncSession, bank_id: str, type_: str, data: dict[str, Any]) -> None:
    session.add(OutboxMessage(bank_id=bank_id, type=type_, payload=data))
    await session.flush()
