"""Objections (异议) during a public notice: raised by the enterprise, decided by the
government, with evidence files only they two can read. Banks have no access at all."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from services.scoring.common import read_limited
from services.scoring.objections import evidence, service
from services.scoring.objections.schemas import (
    USCC_PATTERN,
    EvidenceOut,
    ObjectionCreate,
    ObjectionDecision,
    ObjectionOut,
)
from services.scoring.settings import ScoringSettings
from shared.auth.deps import CurrentPrincipal, GovernmentCaller, actor
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/objections", tags=["objections"], route_class=CommittingRoute)


async def _one(
    session: DbSession, principal: CurrentPrincipal, objection_id: uuid.UUID
) -> ObjectionOut:
    obj = await service.visible_objection(session, principal, objection_id)
    (out,) = await service.outs(session, [obj], with_person=principal.is_government)
    return out


@router.post(
    "",
    status_code=201,
    response_model=ObjectionOut,
    summary="Object to a value of the run in notice (the enterprise, or the government for it)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_objection(
    body: ObjectionCreate, request: Request, session: DbSession, principal: CurrentPrincipal
) -> Any:
    obj = await service.create(
        session, principal, body, actor(principal), request.app.state.clock()
    )
    (out,) = await service.outs(session, [obj], with_person=principal.is_government)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/objections/{obj.id}"},
    )


@router.get(
    "",
    response_model=Page[ObjectionOut],
    summary="Objections, newest first: every one for the government, its own for an enterprise",
    responses=problem_responses(401, 403),
)
async def list_objections(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    run_id: Annotated[uuid.UUID | None, Query()] = None,
    uscc: Annotated[str | None, Query(pattern=USCC_PATTERN)] = None,
    status: Annotated[Literal["open", "accepted", "rejected"] | None, Query()] = None,
) -> Page[ObjectionOut]:
    items, total = await service.listing(
        session,
        principal,
        run_id=run_id,
        uscc=uscc,
        status=status,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page.of(items, total, paging)


@router.get(
    "/{objection_id}",
    response_model=ObjectionOut,
    summary="One objection: its status, decision and evidence",
    responses=problem_responses(401, 403, 404),
)
async def get_objection(
    objection_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> ObjectionOut:
    return await _one(session, principal, objection_id)


@router.post(
    "/{objection_id}/decision",
    response_model=ObjectionOut,
    summary="Accept (the value is corrected) or reject an open objection, with a note",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def decide_objection(
    objection_id: uuid.UUID,
    body: ObjectionDecision,
    request: Request,
    session: DbSession,
    principal: GovernmentCaller,
) -> ObjectionOut:
    obj = await service.decide(
        session, principal, objection_id, body, actor(principal), request.app.state.clock()
    )
    (out,) = await service.outs(session, [obj], with_person=True)
    return out


@router.post(
    "/{objection_id}/evidence",
    status_code=201,
    response_model=EvidenceOut,
    summary="Attach a PDF, PNG or JPEG file to an open objection (multipart field `file`)",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
)
async def add_evidence(
    objection_id: uuid.UUID,
    file: UploadFile,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
) -> Any:
    settings: ScoringSettings = request.app.state.settings
    # The objection is checked first: a stranger's upload is refused before it is read.
    await service.visible_objection(session, principal, objection_id)
    content = await read_limited(file, settings.evidence_max_bytes, "Evidence files")
    item = await service.add_evidence(
        session,
        principal,
        objection_id,
        content,
        file.filename,
        file.content_type,
        actor(principal),
        settings.evidence_max_files,
    )
    return JSONResponse(
        EvidenceOut.model_validate(item, from_attributes=True).model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/objections/{objection_id}/evidence/{item.id}"},
    )


@router.get(
    "/{objection_id}/evidence",
    response_model=list[EvidenceOut],
    summary="The evidence files of an objection",
    responses=problem_responses(401, 403, 404),
)
async def list_evidence(
    objection_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> list[EvidenceOut]:
    return (await _one(session, principal, objection_id)).evidence


@router.get(
    "/{objection_id}/evidence/{evidence_id}",
    summary="Download one evidence file (as an attachment)",
    response_class=Response,
    responses={
        200: {"content": {m: {} for m in evidence.ALLOWED}, "description": "The file"},
        **problem_responses(401, 403, 404),
    },
)
async def download_evidence(
    objection_id: uuid.UUID,
    evidence_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
) -> Response:
    item = await service.evidence_file(session, principal, objection_id, evidence_id)
    return Response(
        content=item.content,
        media_type=item.media_type,
        headers=evidence.download_headers(item.file_name, item.sha256),
    )
