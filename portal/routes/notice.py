"""公示与异议 for the legal person: the score proposed in a public notice, the values it was
computed from, an objection to one of them with evidence, and what became of it.

The enterprise is always the session's: the run's preview is asked for its own USCC only, and
the services refuse another's objection whatever the portal sends.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from portal import labels
from portal.deps import EnterpriseSession, Gateway
from portal.gateway import GatewayClient, GatewayProblem
from portal.routes.government import evidence_download
from portal.sessions import Session
from portal.web import render

router = APIRouter(prefix="/e/notice")

EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
REVENUE = "operating_revenue"
NOTICES = {
    "objection-raised": "异议已提交，请等待主管部门处理。",
    "evidence-added": "证明材料已上传。",
}


def _uscc(session: Session) -> str:
    assert session.principal.uscc is not None
    return session.principal.uscc


def _problem(exc: GatewayProblem) -> str:
    detail = exc.body.get("detail")
    text = labels.problem_text(exc.status, exc.slug)
    return f"{text}（{detail}）" if detail and exc.status in (409, 413, 415, 422) else text


async def _latest_notice(gw: GatewayClient, session: Session) -> dict[str, Any] | None:
    body = await gw.get(session, "/v1/scoring/notices", {"limit": 5})
    items: list[dict[str, Any]] = body["items"]
    open_ = [n for n in items if n["accepting_objections"]]
    chosen = open_ or items
    return chosen[0] if chosen else None


async def _proposed(
    gw: GatewayClient, session: Session, run_id: str
) -> dict[str, Any] | GatewayProblem:
    try:
        score: dict[str, Any] = await gw.get(
            session, f"/v1/scoring/enterprises/{_uscc(session)}/score", {"run_id": run_id}
        )
    except GatewayProblem as exc:
        if exc.status in (403, 404, 409):
            return exc
        raise
    return score


@router.get("", response_class=HTMLResponse)
async def notice(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    current = await _latest_notice(gw, session)
    objections = await gw.get(session, "/v1/scoring/objections", {"limit": 50})
    context: dict[str, Any] = {
        "tab": "home",
        "current": current,
        "objections": objections["items"],
        "catalogue": await request.app.state.reference.indicators(gw, session),
        "notice": NOTICES.get(notice or ""),
        "score": None,
        "problem": None,
    }
    if current is not None:
        score = await _proposed(gw, session, current["run_id"])
        if isinstance(score, GatewayProblem):
            context["problem"] = _problem(score)
        else:
            context["score"] = score
    return render(request, "enterprise/notice.html", context)


def _objection_form(
    request: Request,
    run_id: uuid.UUID,
    score: dict[str, Any],
    catalogue: dict[str, Any],
    values: dict[str, Any],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "enterprise/objection_new.html",
        {
            "tab": "home",
            "run_id": run_id,
            "score": score,
            "catalogue": catalogue,
            "values": values,
            "error": error,
        },
        status_code=status_code,
    )


async def _form_parts(
    request: Request, gw: GatewayClient, session: Session, run_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any]]:
    score, catalogue = await asyncio.gather(
        _proposed(gw, session, str(run_id)),
        request.app.state.reference.indicators(gw, session),
    )
    if isinstance(score, GatewayProblem):
        raise score
    return score, catalogue


@router.get("/{run_id}/object", response_class=HTMLResponse)
async def objection_form(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    run_id: uuid.UUID,
    indicator: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    score, catalogue = await _form_parts(request, gw, session, run_id)
    return _objection_form(request, run_id, score, catalogue, {"indicator": indicator})


def _checked(
    claimed_value: str, reason: str, confirm: str | None, file: UploadFile | None
) -> str | None:
    """What the person must put right before anything is sent."""
    try:
        value = float(claimed_value)
    except ValueError:
        return "主张的数值须为数字。"
    if not math.isfinite(value):
        return "主张的数值须为数字。"
    if not reason.strip():
        return "请说明理由。"
    if confirm != "yes":
        return "请勾选确认所填内容属实。"
    if file is not None and file.size is not None and file.size > EVIDENCE_MAX_BYTES:
        return "证明材料过大（单个文件上限 10 MB）。"
    return None


def _has_file(file: UploadFile | None) -> bool:
    return file is not None and bool(file.filename) and (file.size or 0) > 0


async def _send_evidence(
    gw: GatewayClient, session: Session, objection_id: str, file: UploadFile
) -> None:
    await gw.call(
        session,
        "POST",
        f"/v1/scoring/objections/{objection_id}/evidence",
        files={
            "file": (
                file.filename or "evidence",
                file.file,
                file.content_type or "application/octet-stream",
            )
        },
    )


@router.post("/{run_id}/object", response_model=None)
async def raise_objection(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    run_id: uuid.UUID,
    indicator: Annotated[str, Form(max_length=64)],
    claimed_value: Annotated[str, Form(max_length=32)],
    reason: Annotated[str, Form(max_length=2000)],
    confirm: Annotated[str | None, Form(max_length=8)] = None,
    file: UploadFile | None = None,
) -> Response:
    """The form's confirmation checkbox is its confirmation step. The objection is raised
    first and the evidence attached to it; a refused file leaves the objection raised (it is
    the person's statement), and the page says so."""
    values = {"indicator": indicator, "claimed_value": claimed_value, "reason": reason}
    error = _checked(claimed_value, reason, confirm, file if _has_file(file) else None)
    if error is not None:
        score, catalogue = await _form_parts(request, gw, session, run_id)
        return _objection_form(request, run_id, score, catalogue, values, error, 422)
    body = {
        "run_id": str(run_id),
        "uscc": _uscc(session),
        "indicator": indicator,
        "claimed_value": float(claimed_value),
        "reason": reason.strip(),
    }
    try:
        created = (await gw.call(session, "POST", "/v1/scoring/objections", json=body)).json()
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            score, catalogue = await _form_parts(request, gw, session, run_id)
            return _objection_form(
                request, run_id, score, catalogue, values, _problem(exc), exc.status
            )
        raise
    target = f"/e/notice/objections/{created['id']}"
    if file is not None and _has_file(file):
        try:
            await _send_evidence(gw, session, created["id"], file)
        except GatewayProblem as exc:
            if exc.status in (409, 413, 415, 422):
                return await _objection_page(
                    request, gw, session, uuid.UUID(created["id"]), error=_problem(exc)
                )
            raise
    return RedirectResponse(f"{target}?notice=objection-raised", status_code=303)


async def _objection_page(
    request: Request,
    gw: GatewayClient,
    session: Session,
    objection_id: uuid.UUID,
    *,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    obj, catalogue = await asyncio.gather(
        gw.get(session, f"/v1/scoring/objections/{objection_id}"),
        request.app.state.reference.indicators(gw, session),
    )
    return render(
        request,
        "enterprise/objection.html",
        {
            "tab": "home",
            "o": obj,
            "catalogue": catalogue,
            "error": error,
            "notice": NOTICES.get(notice or ""),
        },
        status_code=422 if error else 200,
    )


@router.get("/objections/{objection_id}", response_class=HTMLResponse)
async def objection(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    objection_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    return await _objection_page(request, gw, session, objection_id, notice=notice)


@router.post("/objections/{objection_id}/evidence", response_model=None)
async def add_evidence(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    objection_id: uuid.UUID,
    file: UploadFile,
) -> Response:
    if not _has_file(file):
        return await _objection_page(request, gw, session, objection_id, error="请选择文件。")
    if file.size is not None and file.size > EVIDENCE_MAX_BYTES:
        return await _objection_page(
            request, gw, session, objection_id, error="证明材料过大（单个文件上限 10 MB）。"
        )
    try:
        await _send_evidence(gw, session, str(objection_id), file)
    except GatewayProblem as exc:
        if exc.status in (409, 413, 415, 422):
            return await _objection_page(request, gw, session, objection_id, error=_problem(exc))
        raise
    return RedirectResponse(
        f"/e/notice/objections/{objection_id}?notice=evidence-added", status_code=303
    )


@router.get("/objections/{objection_id}/evidence/{evidence_id}")
async def evidence(
    session: EnterpriseSession, gw: Gateway, objection_id: uuid.UUID, evidence_id: uuid.UUID
) -> Response:
    return await evidence_download(gw, session, objection_id, evidence_id)
