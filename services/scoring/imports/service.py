"""Imports (数据导入) by the government portal: validate everything, write all or nothing.

A file with any problem is recorded as rejected (who tried what file, and every problem) and
writes no fact; a clean file is upserted in one transaction, as the source (file, sha256, who,
when, the date the values refer to) of every value it sets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.imports import repository
from services.scoring.imports.columnar import ColumnarImport, columnar_parse
from services.scoring.imports.parser import (
    MAX_XLSX_CELLS,
    FileFormatError,
    FileTooLarge,
    ParsedImport,
    detect_format,
    iter_rows,
    parse,
)
from services.scoring.imports.upload import Spooled, check_xlsx
from services.scoring.models import Import
from services.scoring.provenance import service as provenance
from services.scoring.provenance.repository import protected_sources
from shared.errors import NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType


async def create_import(
    session: AsyncSession,
    *,
    upload: Spooled,
    period: int | None,
    created_by: str,
    max_errors: int,
    as_of: date | None = None,
    max_inflated: int = 200 << 20,
    max_cells: int = MAX_XLSX_CELLS,
) -> Import:
    """Record the import and, when the file is clean, write its rows; check `status`."""
    try:
        fmt = detect_format(upload.filename, upload.head())
    except FileFormatError as exc:
        raise UnsupportedMediaType(str(exc)) from exc
    digest = upload.sha256
    filename = upload.filename
    parsed, columnar = await _read(upload, fmt, period, max_errors, (max_inflated, max_cells))
    record = Import(
        id=uuid.uuid4(),
        period=parsed.period,
        filename=filename[:255],
        file_format=fmt,  # of the content: a gzip-compressed CSV is a CSV
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
    if columnar is not None:
        assert columnar.table is not None  # a clean file has its rows
        counts = await repository.upsert_table(
            session, columnar.table, record.id, source_id=source.id, protected=protected
        )
    else:
        columns = [*parsed.columns] + ([] if "period" in parsed.columns else ["period"])
        records = [tuple(row.get(c) for c in columns) for row in parsed.rows]
        counts = await repository.upsert_rows(
            session, columns, records, record.id, source_id=source.id, protected=protected
        )
    record.rows_inserted, record.rows_updated = counts.inserted, counts.updated
    record.rows_unchanged, record.values_kept = counts.unchanged, counts.kept
    await session.flush()
    return record


async def _read(
    upload: Spooled, fmt: str, period: int | None, max_errors: int, xlsx_bounds: tuple[int, int]
) -> tuple[ParsedImport, ColumnarImport | None]:
    """The file validated: column by column when pyarrow reads it as the row reader would,
    else row by row (XLSX, a GB18030 or ragged CSV)."""
    try:
        if fmt == "csv":
            # Off the event loop: a million rows take seconds of CPU.
            columnar = await asyncio.to_thread(
                columnar_parse, upload.path, period=period, max_errors=max_errors
            )
            if columnar is not None:
                return columnar.parsed, columnar
        else:
            check_xlsx(upload.path, xlsx_bounds[0])
        content = upload.path.read_bytes()
        parsed = await asyncio.to_thread(
            lambda: parse(
                iter_rows(fmt, content, xlsx_bounds[1]), period=period, max_errors=max_errors
            )
        )
        return parsed, None
    except FileTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from exc
    except FileFormatError as exc:
        raise Unprocessable(str(exc)) from exc


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
