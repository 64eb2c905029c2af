"""Provenance (数据来源): the sources values come from, and the history of a value.

Precedence decides between writers of the same value: imports and the bulk loader rank
`IMPORT_PRECEDENCE`, a correction from an accepted objection `CORRECTION_PRECEDENCE`, and a
scheduled pull from a department's system ranks as configured for that system (a tax bureau
feed above imports, say). A writer leaves alone every value whose source outranks it.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import Source
from services.scoring.provenance import repository
from services.scoring.provenance.schemas import FactChangeOut, SourceOut, ValueHistory
from shared.errors import NotFound

IMPORT_PRECEDENCE = 50
CORRECTION_PRECEDENCE = 100


def period_end(period: int) -> date:
    """The date a period's facts refer to unless their source says otherwise."""
    return date(period, 12, 31)


async def add_source(
    session: AsyncSession,
    *,
    kind: str,
    precedence: int,
    created_by: str,
    period: int | None,
    as_of: date | None = None,
    system: str | None = None,
    import_id: uuid.UUID | None = None,
    objection_id: uuid.UUID | None = None,
    file_name: str | None = None,
    file_sha256: str | None = None,
) -> Source:
    source = Source(
        kind=kind,
        precedence=precedence,
        created_by=created_by,
        period=period,
        as_of=as_of if as_of is not None else (period_end(period) if period else None),
        system=system,
        import_id=import_id,
        objection_id=objection_id,
        file_name=file_name,
        file_sha256=file_sha256,
    )
    session.add(source)
    await session.flush()
    return source


def source_out(source: Source | None, *, with_person: bool) -> SourceOut | None:
    """A source as a reader sees it; who recorded it only for the government."""
    if source is None:
        return None
    out = SourceOut.model_validate(source, from_attributes=True)
    if not with_person:
        out.created_by = None
    return out


async def value_history(
    session: AsyncSession,
    uscc: str,
    period: int,
    field: str,
    limit: int,
    offset: int,
    *,
    with_person: bool,
) -> ValueHistory:
    current = await repository.current_value(session, uscc, period, field)
    if current is None:
        raise NotFound(f"No facts of {uscc} for {period}")
    rows, total = await repository.changes(session, uscc, period, field, limit, offset)
    ids = [current["source_id"]] + [i for r in rows for i in (r.old_source_id, r.source_id)]
    sources = await repository.sources_by_id(session, [i for i in ids if i])

    def out(source_id: int | None) -> SourceOut | None:
        return source_out(sources.get(source_id or 0), with_person=with_person)

    items = [
        FactChangeOut(
            old_value=r.old_value,
            new_value=r.new_value,
            old_source=out(r.old_source_id),
            source=out(r.source_id),
            changed_at=r.changed_at,
        )
        for r in rows
    ]
    nxt = offset + len(items)
    return ValueHistory(
        uscc=uscc,
        period=period,
        indicator=field,
        value=current["value"],
        source=out(current["source_id"]),
        changes=items,
        total=total,
        limit=limit,
        offset=offset,
        next_offset=nxt if nxt < total else None,
    )
