"""The outcome queries: append, a loan's history, the latest state per loan, aggregates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import RowMapping, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.models import LoanOutcome
from services.credit.outcomes.schemas import BAD_STATES


async def append(session: AsyncSession, values: dict[str, Any]) -> LoanOutcome | None:
    """The new report, or None when the natural key or the Idempotency-Key already exists
    (two unique indexes: ON CONFLICT without a target covers both)."""
    new_id = await session.scalar(
        insert(LoanOutcome).values(**values).on_conflict_do_nothing().returning(LoanOutcome.id)
    )
    return None if new_id is None else await session.get(LoanOutcome, new_id)


async def by_key(session: AsyncSession, bank_id: str, key: str) -> LoanOutcome | None:
    return await session.scalar(
        select(LoanOutcome).where(
            LoanOutcome.bank_id == bank_id, LoanOutcome.idempotency_key == key
        )
    )


async def by_natural_key(
    session: AsyncSession, application_id: uuid.UUID, as_of: date, state: str
) -> LoanOutcome | None:
    return await session.scalar(
        select(LoanOutcome).where(
            LoanOutcome.application_id == application_id,
            LoanOutcome.as_of == as_of,
            LoanOutcome.state == state,
        )
    )


async def history(session: AsyncSession, application_id: uuid.UUID) -> Sequence[LoanOutcome]:
    return (
        await session.scalars(
            select(LoanOutcome)
            .where(LoanOutcome.application_id == application_id)
            .order_by(LoanOutcome.as_of, LoanOutcome.id)
        )
    ).all()


# The latest report per loan: the last date, and on one date the report recorded last.
_LATEST = (
    "SELECT DISTINCT ON (application_id) * FROM credit.loan_outcomes WHERE {where} "
    "ORDER BY application_id, as_of DESC, id DESC"
)


async def latest(
    session: AsyncSession,
    where: str,
    params: dict[str, Any],
    limit: int,
    offset: int,
    state: str | None = None,
) -> tuple[Sequence[RowMapping], int]:
    """A page of the latest report per loan; `state` filters on that latest report."""
    inner = _LATEST.format(where=where)
    if state is not None:
        inner = f"SELECT * FROM ({inner}) d WHERE d.state = :state"
        params = {**params, "state": state}
    total = await session.scalar(text(f"SELECT count(*) FROM ({inner}) l"), params) or 0
    rows = (
        (
            await session.execute(
                text(
                    f"SELECT * FROM ({inner}) l ORDER BY as_of DESC, id DESC "
                    "LIMIT :limit OFFSET :offset"
                ),
                {**params, "limit": limit, "offset": offset},
            )
        )
        .mappings()
        .all()
    )
    return rows, int(total)


async def state_counts(
    session: AsyncSession, where: str, params: dict[str, Any]
) -> Sequence[RowMapping]:
    inner = _LATEST.format(where=where)
    return (
        (
            await session.execute(
                text(
                    f"SELECT state, count(*) AS loans, coalesce(sum(outstanding), 0) AS "
                    f"outstanding, count(*) FILTER (WHERE synthetic) AS synthetic "
                    f"FROM ({inner}) l GROUP BY state"
                ),
                params,
            )
        )
        .mappings()
        .all()
    )


_BAD = "(" + ", ".join(f"'{s}'" for s in BAD_STATES) + ")"


async def performance(
    session: AsyncSession, where: str, params: dict[str, Any]
) -> Sequence[RowMapping]:
    """Per enterprise (and bank) within the window: loans, bad, synthetic.

    `params` holds `ws`/`we`, the window's first and last day."""
    return (
        (
            await session.execute(
                text(
                    "SELECT uscc, bank_id, count(DISTINCT application_id) AS loans, "
                    f"bool_or(state IN {_BAD}) AS bad, bool_or(synthetic) AS synthetic, "
                    "max(id) AS last_id FROM credit.loan_outcomes "
                    f"WHERE {where} AND as_of BETWEEN :ws AND :we "
                    "GROUP BY uscc, bank_id ORDER BY uscc, bank_id"
                ),
                params,
            )
        )
        .mappings()
        .all()
    )


async def decisions(session: AsyncSession, period: int) -> tuple[list[str], list[str]]:
    """(approved, rejected): enterprises whose decided applications on `period`'s scores
    include an approval, and those whose decided applications were all rejected."""
    rows = await session.execute(
        text(
            "SELECT uscc, bool_or(status IN ('approved', 'disbursed', 'closed')) AS ok "
            "FROM credit.applications WHERE period = :p "
            "AND status IN ('approved', 'rejected', 'disbursed', 'closed') "
            "GROUP BY uscc ORDER BY uscc"
        ),
        {"p": period},
    )
    approved: list[str] = []
    rejected: list[str] = []
    for uscc, ok in rows:
        (approved if ok else rejected).append(uscc)
    return approved, rejected


async def with_line(session: AsyncSession, run_id: uuid.UUID) -> list[str]:
    rows = await session.execute(
        text("SELECT DISTINCT uscc FROM credit.credit_lines WHERE run_id = :r ORDER BY uscc"),
        {"r": run_id},
    )
    return [r[0] for r in rows]
