"""Imports (数据导入) by the government portal: validate everything, write all or nothing.

A file with any problem is recorded as rejected (who tried what file, and every problem) and
writes no fact; a clean file is upserted in one transaction, as the source (file, sha256, who,
when, the date the values refer to) of every value it sets.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.imports import repository
from services.scoring.imports.parser import FileFormatError, detect_format, iter_rows, parse
from services.scoring.models import Import
from services.scoring.provenance import service as provenance
from services.scoring.provenance.repository import protected_sources
from shared.errors import NotFound, Unprocessable, UnsupportedMediaType


async def create_import(
    session: AsyncSession,
    *,
    content: bytes,
    filename: str,
    period: int | None,
    created_by: str,
    max_errors: int,
    as_of: date | None = None,
) -> Import:
    """Record the import and, when the file is clean, write its rows; check `status`."""
    try:
        fmt = detect_format(filename, content)
    except FileFormatError as exc:
        raise UnsupportedMediaType(str(exc)) from exc
    digest = hashlib.sha256(content).hexdigest()
    try:
        parsed = parse(iter_rows(fmt, content), period=period, max_errors=max_errors)
    except FileFormatError as exc:
        raise Unprocessable(str(exc)) from exc

    record = Import(
        id=uuid.uuid4(),
        period=parsed.period,
        filename=filename[:255],
        file_format=fmt,
        file_sha256=digest,
        rows_total=parsed.rows_total,
        error_count=parsed.error_count,
        errors=[e.as_dict() for e in parsed.errors],
        created_by=created_by,
        as_of=as_of,
        status="rejected" if parsed.error_count else "succeeded",
    )
    session.add(record)
    await session.flush()
    if parsed.error_count:
        return record

    columns = [*parsed.columns]
    if "period" not in columns:
        columns.append("period")
    records = [tuple(row.get(c) for c in columns) for row in parsed.rows]
    for row, rec in zip(parsed.rows, records, strict=True):
        assert rec[columns.index("period")] == row["period"]
    assert parsed.period is not None  # a clean file has one
    source = await provenance.add_source(
        session,
        kind="import",
        precedence=provenance.IMPORT_PRECEDENCE,
        created_by=created_by,
        period=parsed.period,
        as_of=as_of,
        import_id=record.id,
        file_name=record.filename,
        file_sha256=digest,
    )
    protected = await protected_sources(session, parsed.period, provenance.IMPORT_PRECEDENCE)
    counts = await repository.upsert_rows(
        session, columns, records, record.id, source_id=source.id, protected=protected
    )
    record.rows_inserted, record.rows_updated = counts.inserted, counts.updated
    record.rows_unchanged, record.values_kept = counts.unchanged, counts.kept
    await session.flush()
    return record


async def get_import(session: AsyncSession, import_id: uuid.UUID) -> Import:
    record = await session.get(Import, import_id)
    if record is None:
        raise NotFound(f"No import {import_id}")
    return record


async def list_imports(
    session: AsyncSession, period: int | None, limit: int, offset: int
) -> tuple[Sequence[Import], int]:
    query = select(Import)
    count = select(func.count()).select_from(Import)
    if period is not None:
        query = query.where(Import.period == period)
        count = count.where(Import.period == period)
    total = (await session.execute(count)).scalar_one()
    rows = await session.scalars(
        query.order_by(Import.created_at.desc()).limit(limit).offset(offset)
    )
    return rows.all(), total
