"""Imports (数据导入): upload a period's facts as CSV or XLSX, read what became of them."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from services.scoring.imports import service
from services.scoring.imports.schemas import ImportOut
from services.scoring.imports.upload import spool
from services.scoring.settings import ScoringSettings
from shared.auth.deps import GovernmentCaller, actor
from shared.db import CommittingRoute, DbSession
from shared.errors import Unprocessable, problem_response, problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/imports", tags=["imports"], route_class=CommittingRoute)


@router.post(
    "",
    status_code=201,
    response_model=ImportOut,
    summary="Upload a CSV (optionally gzip-compressed, .csv.gz) or XLSX file of facts",
    responses=problem_responses(400, 401, 403, 413, 415, 422),
)
async def create_import(
    request: Request,
    session: DbSession,
    principal: GovernmentCaller,
    file: UploadFile,
    period: Annotated[int | None, Form(ge=2000, le=2100)] = None,
    as_of: Annotated[
        date | None,
        Form(description="The date the values refer to; default: the end of the period"),
    ] = None,
) -> Any:
    settings: ScoringSettings = request.app.state.settings
    upload = await spool(
        file, max_bytes=settings.max_import_bytes, max_inflated=settings.max_import_inflated_bytes
    )
    try:
        record = await service.create_import(
            session,
            upload=upload,
            period=period,
            created_by=actor(principal),
            max_errors=settings.max_reported_errors,
            as_of=as_of,
            max_inflated=settings.max_xlsx_inflated_bytes,
            max_cells=settings.max_xlsx_cells,
        )
    finally:
        upload.remove()
        # pyarrow's allocator keeps what the parse freed (a GB at a million rows) for reuse;
        # an evaluation in this process would then peak on top of it.
        pa.default_memory_pool().release_unused()
    if record.status == "rejected":
        # The rejection itself is recorded (who tried what file), but no fact is written; a
        # problem response is not committed by the route, so commit it here.
        await session.commit()
        body = Unprocessable(
            f"{record.error_count} problem(s) in the file; nothing was imported"
        ).body(request.url.path)
        body["import_id"] = str(record.id)
        body["error_count"] = record.error_count
        body["errors"] = record.errors
        return problem_response(422, body)
    return JSONResponse(
        ImportOut.of(record).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/imports/{record.id}"},
    )


@router.get("/{import_id}", response_model=ImportOut, responses=problem_responses(401, 403, 404))
async def get_import(import_id: uuid.UUID, session: DbSession, _: GovernmentCaller) -> ImportOut:
    return ImportOut.of(await service.get_import(session, import_id))


@router.get("", response_model=Page[ImportOut], responses=problem_responses(401, 403))
async def list_imports(
    session: DbSession,
    _: GovernmentCaller,
    paging: Paging,
    period: Annotated[int | None, Query()] = None,
) -> Page[ImportOut]:
    rows, total = await service.list_imports(session, period, paging.limit, paging.offset)
    return Page.of([ImportOut.of(r) for r in rows], total, paging)
