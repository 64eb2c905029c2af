"""Imports (数据导入) by the government portal: validate everything, write all or nothing."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from services.scoring.imports.parser import FileFormatError, detect_format, iter_rows, parse
from services.scoring.imports.store import upsert_rows
from services.scoring.models import Import
from services.scoring.settings import ScoringSettings
from shared.auth.deps import Government
from shared.db import CommittingRoute, DbSession
from shared.errors import (
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    problem_response,
    problem_responses,
)
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/imports", tags=["imports"], route_class=CommittingRoute)


class ImportOut(BaseModel):
    id: uuid.UUID
    period: int | None
    filename: str
    file_format: str
    file_sha256: str
    status: str
    rows_total: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    error_count: int
    errors: list[dict[str, Any]]
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, imp: Import) -> ImportOut:
        return cls.model_validate(imp, from_attributes=True)


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Import files are limited to {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=201,
    response_model=ImportOut,
    summary="Upload a CSV or XLSX file of facts for one period",
    responses=problem_responses(400, 401, 403, 413, 415, 422),
)
async def create_import(
    request: Request,
    session: DbSession,
    principal: Government,
    file: UploadFile,
    period: Annotated[int | None, Form(ge=2000, le=2100)] = None,
) -> Any:
    settings: ScoringSettings = request.app.state.settings
    content = await _read_limited(file, settings.max_import_bytes)
    filename = file.filename or "upload"
    try:
        fmt = detect_format(filename, content)
    except FileFormatError as exc:
        raise UnsupportedMediaType(str(exc)) from exc
    digest = hashlib.sha256(content).hexdigest()
    try:
        parsed = parse(
            iter_rows(fmt, content), period=period, max_errors=settings.max_reported_errors
        )
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
        created_by=principal.act or principal.sub,
        status="rejected" if parsed.error_count else "succeeded",
    )
    session.add(record)
    if parsed.error_count:
        # The rejection itself is recorded (who tried what file), but no fact is written.
        await session.flush()
        await session.commit()
        body = Unprocessable(
            f"{parsed.error_count} problem(s) in the file; nothing was imported"
        ).body(request.url.path)
        body["import_id"] = str(record.id)
        body["error_count"] = parsed.error_count
        body["errors"] = record.errors
        return problem_response(422, body)

    await session.flush()
    columns = [*parsed.columns]
    if "period" not in columns:
        columns.append("period")
    records = [tuple(row.get(c) for c in columns) for row in parsed.rows]
    for row, rec in zip(parsed.rows, records, strict=True):
        assert rec[columns.index("period")] == row["period"]
    inserted, updated, unchanged = await upsert_rows(session, columns, records, record.id)
    record.rows_inserted, record.rows_updated, record.rows_unchanged = inserted, updated, unchanged
    await session.flush()
    return JSONResponse(
        ImportOut.of(record).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/imports/{record.id}"},
    )


@router.get("/{import_id}", response_model=ImportOut, responses=problem_responses(401, 403, 404))
async def get_import(import_id: uuid.UUID, session: DbSession, _: Government) -> ImportOut:
    record = await session.get(Import, import_id)
    if record is None:
        raise NotFound(f"No import {import_id}")
    return ImportOut.of(record)


@router.get("", response_model=Page[ImportOut], responses=problem_responses(401, 403))
async def list_imports(
    session: DbSession,
    _: Government,
    paging: Paging,
    period: Annotated[int | None, Query()] = None,
) -> Page[ImportOut]:
    query = select(Import)
    count = select(func.count()).select_from(Import)
    if period is not None:
        query = query.where(Import.period == period)
        count = count.where(Import.period == period)
    total = (await session.execute(count)).scalar_one()
    rows = await session.scalars(
        query.order_by(Import.created_at.desc()).limit(paging.limit).offset(paging.offset)
    )
    return Page.of([ImportOut.of(r) for r in rows], total, paging)
