"""The programme console of government staff (政府工作台), under `/gov/`.

Everything comes from the gateway with the person's own token, so the services decide what a
government principal may read and change, as they do for any client. Reading pages take any
government staff; every change takes an operator (the guard refuses a viewer before anything
is sent, and the services refuse a viewer's token as well) and goes through a confirmation
page: the first POST shows what will happen, the second (with `confirm=yes`) does it.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response, StreamingResponse

from portal import gov_charts, labels
from portal.deps import Gateway, require_staff
from portal.gateway import GatewayClient, GatewayProblem
from portal.routes.enterprise import _scorecard
from portal.sessions import Session
from portal.web import CHINA, render
from shared.csvsafe import csv_lines

router = APIRouter(prefix="/gov")

GovSession = Annotated[Session, Depends(require_staff("government"))]
GovOperator = Annotated[Session, Depends(require_staff("government", "operator"))]

STAGES = ("seed", "seedling", "growth", "expansion", "mature")
StageQuery = Annotated[Literal["seed", "seedling", "growth", "expansion", "mature"], Query()]
PeriodQuery = Annotated[int | None, Query(ge=2000, le=2100)]
PageQuery = Annotated[int, Query(ge=1, le=10_000)]
Uscc = Annotated[str, Path(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]
PoolCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
Confirm = Annotated[str | None, Form(max_length=8)]
PAGE_SIZE = 50
EXPORT_MAX = 20_000  # rows of one CSV export: every stage of the demo, with room to spare
IMPORT_MAX_BYTES = 50 * 1024 * 1024

PROBLEMS = {
    "notice-running": "公示期尚未结束，暂不能发布。",
    "objections-open": "还有未处理的异议，处理完毕后才能发布。",
    "correction-required": "公示期间有已采纳的异议：请先重新评价（更正批次），再发布更正后的批次。",
    "read-only-role": "查看员账号只能查看，不能修改。",
}

NOTICES = {
    "imported": "文件已导入。",
    "evaluation-started": "评价已开始，完成后可与已发布批次比较。",
    "published": "已发布。",
    "notice-opened": "已开始公示。",
    "policy-created": "政策草稿已保存。",
    "policy-published": "政策已发布，匹配与推送随即进行。",
    "policy-archived": "政策已下线。",
    "decided": "异议已处理。",
}


def _problem(exc: GatewayProblem) -> str:
    if exc.slug in PROBLEMS:
        return PROBLEMS[exc.slug]
    text = labels.problem_text(exc.status, exc.slug)
    detail = exc.body.get("detail")
    if not detail or exc.status not in (409, 422):
        return text
    listed = [
        f"{p.get('path', '')}: {p.get('message', '')}"
        for p in exc.body.get("problems") or []
        if isinstance(p, dict)
    ]
    return f"{text}（{detail}{'；' if listed else ''}{'；'.join(listed[:10])}）"


def _pages(total: int, page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    last = max(1, math.ceil(total / size))
    return {"page": page, "last": last, "total": total}


def _context(section: str, **extra: Any) -> dict[str, Any]:
    return {"section": section, **extra}


def _notice(code: str | None) -> str | None:
    return NOTICES.get(code or "")


def _confirm(
    request: Request, title: str, text: str, action: str, fields: dict[str, Any]
) -> HTMLResponse:
    """The confirmation step of a change: what will happen, and one button to do it."""
    last = action.rsplit("/", 1)
    back = last[0] if last[1] in ("publish", "archive", "notice", "decision") else action
    return render(
        request,
        "gov/confirm.html",
        _context(
            "",
            title=title,
            text=text,
            action=action,
            back=back,
            fields={k: str(v) for k, v in fields.items()},
        ),
    )


async def _optional(call: Any) -> Any:
    """A figure the page can do without: a problem becomes None rather than an error page."""
    try:
        return await call
    except GatewayProblem as exc:
        if exc.status in (404, 409) or exc.status >= 500:
            return exc
        raise


# -- 总览 ----------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def overview(
    request: Request, session: GovSession, gw: Gateway, period: PeriodQuery = None
) -> HTMLResponse:
    params = {"period": period} if period else None
    figures, stats = await asyncio.gather(
        _optional(gw.get(session, "/v1/scoring/statistics/overview", params)),
        _optional(gw.get(session, "/v1/credit/stats")),
    )
    view: dict[str, Any] = {"overview": None, "stats": None, "problems": []}
    if isinstance(figures, GatewayProblem):
        view["problems"].append(_problem(figures))
    else:
        figures["by_stage"] = gov_charts.by_stage_order(figures["by_stage"])
        view["overview"] = figures
        view["stage_chart"] = gov_charts.stages(figures)
        view["distribution_chart"] = gov_charts.distribution(figures)
        view["tier_chart"] = gov_charts.tiers(figures)
    if isinstance(stats, GatewayProblem):
        view["problems"].append(_problem(stats))
    else:
        stats["by_stage"] = gov_charts.by_stage_order(stats["by_stage"])
        steps = gov_charts.funnel_steps(stats)
        view.update(
            stats=stats,
            steps=steps,
            funnel_chart=gov_charts.funnel(steps),
            coverage_chart=gov_charts.coverage(stats),
        )
    return render(request, "gov/overview.html", _context("overview", **view))


# -- 排名 ----------------------------------------------------------------------------------


@router.get("/rankings", response_class=HTMLResponse)
async def rankings(
    request: Request,
    session: GovSession,
    gw: Gateway,
    stage: StageQuery = "growth",
    q: Annotated[str | None, Query(max_length=64)] = None,
    page: PageQuery = 1,
    period: PeriodQuery = None,
) -> HTMLResponse:
    query = (q or "").strip()
    params: dict[str, Any] = {"stage": stage, "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE}
    if query:
        params["q"] = query
    if period:
        params["period"] = period
    result = await _optional(gw.get(session, "/v1/scoring/rankings", params))
    problem = _problem(result) if isinstance(result, GatewayProblem) else None
    body = None if problem else result
    return render(
        request,
        "gov/rankings.html",
        _context(
            "rankings",
            stages=STAGES,
            stage=stage,
            q=query,
            period=period,
            result=body,
            problem=problem,
            pages=_pages(body["total"], page) if body else None,
        ),
    )


async def _all_rankings(
    gw: GatewayClient, session: Session, params: dict[str, Any]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while len(rows) < EXPORT_MAX:
        body = await gw.get(session, "/v1/scoring/rankings", {**params, "offset": len(rows)})
        rows.extend(body["items"])
        if body.get("next_offset") is None or not body["items"]:
            break
    return rows[:EXPORT_MAX]


@router.get("/rankings.csv")
async def rankings_csv(
    session: GovSession,
    gw: Gateway,
    stage: StageQuery = "growth",
    q: Annotated[str | None, Query(max_length=64)] = None,
    period: PeriodQuery = None,
) -> StreamingResponse:
    """The ranking as a spreadsheet; every text cell goes through the formula neutraliser
    (names are the enterprises' own and may be hostile)."""
    params: dict[str, Any] = {"stage": stage, "limit": 500}
    if q and q.strip():
        params["q"] = q.strip()
    if period:
        params["period"] = period
    rows = await _all_rankings(gw, session, params)
    header = ["排名", "统一社会信用代码", "企业名称", "成长阶段", "总分", "档次", "百分位"]
    lines = csv_lines(
        header,
        (
            [
                r["rank"],
                r["uscc"],
                r["name"],
                labels.STAGES.get(r["stage"], r["stage"]),
                r["total"],
                r["tier"],
                r["percentile"],
            ]
            for r in rows
        ),
    )
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="rankings-{stage}.csv"'},
    )


# -- 企业一图清 ----------------------------------------------------------------------------


@router.get("/enterprises/{uscc}", response_class=HTMLResponse)
async def enterprise(
    request: Request, session: GovSession, gw: Gateway, uscc: Uscc, period: PeriodQuery = None
) -> HTMLResponse:
    info, view = await asyncio.gather(
        gw.get(session, f"/v1/scoring/enterprises/{uscc}"),
        _scorecard(request, gw, session, period, uscc),
    )
    return render(
        request,
        "gov/enterprise.html",
        _context("rankings", info=info, score_url=f"/gov/enterprises/{uscc}", **view),
    )


# -- 隐形冠军 ------------------------------------------------------------------------------


@router.get("/champions", response_class=HTMLResponse)
async def champions(
    request: Request,
    session: GovSession,
    gw: Gateway,
    page: PageQuery = 1,
    min_tier: Annotated[int, Query(ge=1, le=5)] = 4,
    min_growth: Annotated[float, Query(ge=0, le=10_000)] = 30.0,
) -> HTMLResponse:
    params = {
        "limit": PAGE_SIZE,
        "offset": (page - 1) * PAGE_SIZE,
        "min_tier": min_tier,
        "min_growth": min_growth,
    }
    result = await _optional(gw.get(session, "/v1/scoring/discoveries/hidden-champions", params))
    problem = _problem(result) if isinstance(result, GatewayProblem) else None
    body = None if problem else result
    return render(
        request,
        "gov/champions.html",
        _context(
            "champions",
            result=body,
            problem=problem,
            min_tier=min_tier,
            min_growth=min_growth,
            pages=_pages(body["total"], page) if body else None,
        ),
    )


# -- 培育库 --------------------------------------------------------------------------------


@router.get("/pools", response_class=HTMLResponse)
async def pools(request: Request, session: GovSession, gw: Gateway) -> HTMLResponse:
    body = await gw.get(session, "/v1/policy/pools")
    return render(request, "gov/pools.html", _context("pools", pools=body["items"]))


@router.get("/pools/{code}", response_class=HTMLResponse)
async def pool(
    request: Request,
    session: GovSession,
    gw: Gateway,
    code: PoolCode,
    list_: Annotated[Literal["members", "reserve"], Query(alias="list")] = "members",
    page: PageQuery = 1,
) -> HTMLResponse:
    params = {
        "near": str(list_ == "reserve").lower(),
        "limit": PAGE_SIZE,
        "offset": (page - 1) * PAGE_SIZE,
    }
    info, members = await asyncio.gather(
        gw.get(session, f"/v1/policy/pools/{code}"),
        gw.get(session, f"/v1/policy/pools/{code}/members", params),
    )
    return render(
        request,
        "gov/pool.html",
        _context(
            "pools",
            pool=info,
            members=members,
            list=list_,
            pages=_pages(members["total"], page),
        ),
    )


# -- 数据导入 ------------------------------------------------------------------------------


async def _imports_page(
    request: Request,
    gw: GatewayClient,
    session: Session,
    *,
    rejected: dict[str, Any] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    listing = await gw.get(session, "/v1/scoring/imports", {"limit": 20})
    return render(
        request,
        "gov/imports.html",
        _context(
            "imports",
            imports=listing["items"],
            rejected=rejected,
            error=error,
            notice=_notice(notice),
        ),
        status_code=status_code,
    )


@router.get("/imports", response_class=HTMLResponse)
async def imports(
    request: Request,
    session: GovSession,
    gw: Gateway,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    return await _imports_page(request, gw, session, notice=notice)


@router.post("/imports", response_model=None)
async def upload(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    file: UploadFile,
    period: Annotated[int | None, Form(ge=2000, le=2100)] = None,
    confirm: Confirm = None,
) -> Response:
    """The file goes on to the gateway as it came (streamed from the spooled upload); the
    confirmation is the form's own checkbox, since a second page would mean keeping the file."""
    if confirm != "yes":
        return await _imports_page(
            request, gw, session, error="请勾选确认后再导入。", status_code=422
        )
    if file.size is not None and file.size > IMPORT_MAX_BYTES:
        return await _imports_page(
            request, gw, session, error="文件过大（上限 50 MB）。", status_code=413
        )
    data = {"period": str(period)} if period else None
    name = file.filename or "upload"
    content_type = file.content_type or "application/octet-stream"
    try:
        resp = await gw.call(
            session,
            "POST",
            "/v1/scoring/imports",
            files={"file": (name, file.file, content_type)},
            data=data,
        )
    except GatewayProblem as exc:
        if exc.status == 422 and "errors" in exc.body:
            return await _imports_page(request, gw, session, rejected=exc.body, status_code=422)
        if exc.status in (400, 413, 415, 422):
            return await _imports_page(
                request, gw, session, error=_problem(exc), status_code=exc.status
            )
        raise
    return RedirectResponse(f"/gov/imports/{resp.json()['id']}?notice=imported", status_code=303)


@router.get("/imports/{import_id}", response_class=HTMLResponse)
async def import_detail(
    request: Request,
    session: GovSession,
    gw: Gateway,
    import_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    record = await gw.get(session, f"/v1/scoring/imports/{import_id}")
    return render(
        request, "gov/import.html", _context("imports", record=record, notice=_notice(notice))
    )


@router.get("/imports/{import_id}/errors.csv")
async def import_errors_csv(
    session: GovSession, gw: Gateway, import_id: uuid.UUID
) -> StreamingResponse:
    """A rejected file's problems: the values echoed back are the file's own, so they are
    neutralised like any cell the platform writes."""
    record = await gw.get(session, f"/v1/scoring/imports/{import_id}")
    rows = (
        [e.get("row"), e.get("column"), e.get("code"), e.get("value"), e.get("message")]
        for e in record.get("errors", [])
    )
    return StreamingResponse(
        iter(csv_lines(["行", "列", "代码", "值", "说明"], rows)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
    )


# -- 评价批次 ------------------------------------------------------------------------------


@router.get("/evaluations", response_class=HTMLResponse)
async def evaluations(
    request: Request,
    session: GovSession,
    gw: Gateway,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    runs, models = await asyncio.gather(
        gw.get(session, "/v1/scoring/evaluations", {"limit": 30}),
        gw.get(session, "/v1/scoring/models", {"limit": 50}),
    )
    published_models = [m for m in models["items"] if m["status"] == "published"]
    return render(
        request,
        "gov/evaluations.html",
        _context(
            "evaluations",
            runs=runs["items"],
            models=published_models,
            notice=_notice(notice),
            this_year=datetime.now(CHINA).year,
        ),
    )


@router.post("/evaluations", response_model=None)
async def run_evaluation(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    period: Annotated[int, Form(ge=2000, le=2100)],
    model_version: Annotated[str, Form(min_length=1, max_length=32)],
    confirm: Confirm = None,
) -> Response:
    if confirm != "yes":
        return _confirm(
            request,
            "开始评价",
            f"用模型 {model_version} 对 {period} 年度的数据进行评价。评价结果在发布前不会被"
            "银行和企业看到。",
            "/gov/evaluations",
            {"period": period, "model_version": model_version},
        )
    resp = await gw.call(
        session,
        "POST",
        "/v1/scoring/evaluations",
        json={"period": period, "model_version": model_version},
    )
    return RedirectResponse(
        f"/gov/evaluations/{resp.json()['id']}?notice=evaluation-started", status_code=303
    )


async def _comparison(gw: GatewayClient, session: Session, run: dict[str, Any]) -> Any:
    if run["status"] in ("running", "failed"):
        return None
    return await _optional(
        gw.get(session, f"/v1/scoring/evaluations/{run['id']}/comparison", {"limit": 10})
    )


def _migration_rows(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The matrix as rows of the table: tiers before (rows) to tiers after (columns)."""
    matrix = comparison.get("migration") or {}
    cells = matrix.get("matrix") or matrix.get("counts") or []
    tiers = matrix.get("tiers") or list(range(1, len(cells) + 1))
    return [{"tier": t, "cells": row} for t, row in zip(tiers, cells, strict=False)]


@router.get("/evaluations/{run_id}", response_class=HTMLResponse)
async def evaluation(
    request: Request,
    session: GovSession,
    gw: Gateway,
    run_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
    error: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    run = await gw.get(session, f"/v1/scoring/evaluations/{run_id}")
    comparison = await _comparison(gw, session, run)
    problem = _problem(comparison) if isinstance(comparison, GatewayProblem) else None
    body = None if problem or comparison is None else comparison
    default_end = (datetime.now(CHINA) + timedelta(days=7)).date()
    return render(
        request,
        "gov/evaluation.html",
        _context(
            "evaluations",
            run=run,
            comparison=body,
            migration=_migration_rows(body) if body else [],
            comparison_problem=problem,
            notice=_notice(notice),
            error=PROBLEMS.get(error or ""),
            default_end=default_end.isoformat(),
        ),
    )


@router.post("/evaluations/{run_id}/publish", response_model=None)
async def publish_evaluation(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    run_id: uuid.UUID,
    confirm: Confirm = None,
) -> Response:
    if confirm != "yes":
        run = await gw.get(session, f"/v1/scoring/evaluations/{run_id}")
        return _confirm(
            request,
            "发布评价结果",
            f"发布 {run['period']} 年度的评价批次（模型 {run['model_version']}，"
            f"{run['scored_count']} 家企业计分）。发布后，银行授信与政策匹配随即使用新结果，"
            "企业可看到新的积分。",
            f"/gov/evaluations/{run_id}/publish",
            {},
        )
    try:
        await gw.call(session, "POST", f"/v1/scoring/evaluations/{run_id}/publish")
    except GatewayProblem as exc:
        if exc.status == 409:
            return RedirectResponse(f"/gov/evaluations/{run_id}?error={exc.slug}", status_code=303)
        raise
    return RedirectResponse(f"/gov/evaluations/{run_id}?notice=published", status_code=303)


@router.post("/evaluations/{run_id}/notice", response_model=None)
async def open_notice(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    run_id: uuid.UUID,
    ends_on: Annotated[str, Form(pattern=r"^\d{4}-\d{2}-\d{2}$")],
    confirm: Confirm = None,
) -> Response:
    """A notice ends at the end of the chosen day, Shanghai time (as programmes announce)."""
    try:
        ends = datetime.combine(datetime.fromisoformat(ends_on).date(), time(23, 59, 59))
    except ValueError:
        return RedirectResponse(f"/gov/evaluations/{run_id}", status_code=303)
    if confirm != "yes":
        return _confirm(
            request,
            "开始公示",
            f"公示该评价批次至 {ends_on} 23:59（北京时间）。公示期间企业可查看拟定积分并"
            "提出异议；已发布的结果不变。",
            f"/gov/evaluations/{run_id}/notice",
            {"ends_on": ends_on},
        )
    await gw.call(
        session,
        "POST",
        f"/v1/scoring/evaluations/{run_id}/notice",
        json={"ends_at": ends.replace(tzinfo=CHINA).isoformat()},
    )
    return RedirectResponse(f"/gov/evaluations/{run_id}?notice=notice-opened", status_code=303)


# -- 政策 ----------------------------------------------------------------------------------


@router.get("/policies", response_class=HTMLResponse)
async def policies(
    request: Request,
    session: GovSession,
    gw: Gateway,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    body = await gw.get(session, "/v1/policy/policies", {"limit": 100})
    return render(
        request,
        "gov/policies.html",
        _context("policies", policies=body["items"], notice=_notice(notice)),
    )


EXAMPLE_CRITERIA = {
    "kind": "all",
    "id": "example",
    "items": [
        {
            "id": "example.score",
            "fact": "score",
            "op": ">=",
            "threshold": 60,
            "label_zh": "创新积分不低于60分",
            "clause": "第二条",
        },
        {
            "id": "example.stage",
            "fact": "stage",
            "op": "in",
            "threshold": ["growth", "expansion"],
            "label_zh": "成长期或壮大期",
            "clause": "第二条",
        },
    ],
}


def _policy_form(
    request: Request, values: dict[str, Any], error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    return render(
        request,
        "gov/policy_new.html",
        _context("policies", values=values, error=error),
        status_code=status_code,
    )


@router.get("/policies/new", response_class=HTMLResponse)
async def new_policy(request: Request, session: GovOperator) -> HTMLResponse:
    return _policy_form(
        request,
        {
            "criteria": json.dumps(EXAMPLE_CRITERIA, ensure_ascii=False, indent=2),
            "valid_from": datetime.now(CHINA).date().isoformat(),
        },
    )


@router.post("/policies", response_model=None)
async def create_policy(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    code: Annotated[str, Form(max_length=64)],
    title_zh: Annotated[str, Form(max_length=200)],
    department_zh: Annotated[str, Form(max_length=200)],
    summary_zh: Annotated[str, Form(max_length=4000)],
    valid_from: Annotated[str, Form(max_length=10)],
    criteria: Annotated[str, Form(max_length=20_000)],
    pools: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Saving a draft changes nothing anyone else sees: no confirmation step. Publishing has
    one."""
    values = {
        "code": code,
        "title_zh": title_zh,
        "department_zh": department_zh,
        "summary_zh": summary_zh,
        "valid_from": valid_from,
        "criteria": criteria,
        "pools": pools,
    }
    try:
        rule = json.loads(criteria)
    except ValueError:
        return _policy_form(request, values, "条件不是有效的 JSON。", status_code=422)
    body = {
        **{k: v for k, v in values.items() if k not in ("criteria", "pools")},
        "criteria": rule,
        "pools": [p.strip() for p in pools.split(",") if p.strip()],
    }
    try:
        resp = await gw.call(session, "POST", "/v1/policy/policies", json=body)
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            return _policy_form(request, values, _problem(exc), status_code=exc.status)
        raise
    return RedirectResponse(
        f"/gov/policies/{resp.json()['id']}?notice=policy-created", status_code=303
    )


async def _policy_page(
    request: Request,
    gw: GatewayClient,
    session: Session,
    policy_id: uuid.UUID,
    *,
    whatif: dict[str, Any] | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    policy = await gw.get(session, f"/v1/policy/policies/{policy_id}")
    return render(
        request,
        "gov/policy.html",
        _context(
            "policies",
            policy=policy,
            criteria_text=json.dumps(policy["criteria"], ensure_ascii=False, indent=2),
            whatif=whatif,
            whatif_chart=gov_charts.whatif(whatif) if whatif else None,
            error=error,
            notice=_notice(notice),
        ),
    )


@router.get("/policies/{policy_id}", response_class=HTMLResponse)
async def policy(
    request: Request,
    session: GovSession,
    gw: Gateway,
    policy_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    return await _policy_page(request, gw, session, policy_id, notice=notice)


@router.post("/policies/{policy_id}/what-if", response_class=HTMLResponse)
async def policy_what_if(
    request: Request, session: GovOperator, gw: Gateway, policy_id: uuid.UUID
) -> HTMLResponse:
    """Trying a draft stores nothing and pushes nothing, so it needs no confirmation."""
    try:
        result = (await gw.call(session, "POST", f"/v1/policy/policies/{policy_id}/what-if")).json()
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            return await _policy_page(request, gw, session, policy_id, error=_problem(exc))
        raise
    return await _policy_page(request, gw, session, policy_id, whatif=result)


async def _policy_change(
    request: Request,
    gw: GatewayClient,
    session: Session,
    policy_id: uuid.UUID,
    action: Literal["publish", "archive"],
    confirm: str | None,
) -> Response:
    if confirm != "yes":
        policy = await gw.get(session, f"/v1/policy/policies/{policy_id}")
        title = policy["title_zh"]
        text = (
            f"发布“{title}”第 {policy['latest_version']} 版：符合条件的企业将随即收到推送。"
            if action == "publish"
            else f"下线“{title}”：不再匹配，也不再推送；已推送的记录保留。"
        )
        return _confirm(
            request,
            "发布政策" if action == "publish" else "下线政策",
            text,
            f"/gov/policies/{policy_id}/{action}",
            {},
        )
    try:
        await gw.call(session, "POST", f"/v1/policy/policies/{policy_id}/{action}")
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            return await _policy_page(request, gw, session, policy_id, error=_problem(exc))
        raise
    done = "policy-published" if action == "publish" else "policy-archived"
    return RedirectResponse(f"/gov/policies/{policy_id}?notice={done}", status_code=303)


@router.post("/policies/{policy_id}/publish", response_model=None)
async def publish_policy(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    policy_id: uuid.UUID,
    confirm: Confirm = None,
) -> Response:
    return await _policy_change(request, gw, session, policy_id, "publish", confirm)


@router.post("/policies/{policy_id}/archive", response_model=None)
async def archive_policy(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    policy_id: uuid.UUID,
    confirm: Confirm = None,
) -> Response:
    return await _policy_change(request, gw, session, policy_id, "archive", confirm)


# -- 异议 ----------------------------------------------------------------------------------


@router.get("/objections", response_class=HTMLResponse)
async def objections(
    request: Request,
    session: GovSession,
    gw: Gateway,
    status: Annotated[Literal["open", "accepted", "rejected", "all"], Query()] = "open",
    page: PageQuery = 1,
) -> HTMLResponse:
    params: dict[str, Any] = {"limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE}
    if status != "all":
        params["status"] = status
    listing, notices, catalogue = await asyncio.gather(
        gw.get(session, "/v1/scoring/objections", params),
        gw.get(session, "/v1/scoring/notices", {"limit": 10}),
        request.app.state.reference.indicators(gw, session),
    )
    return render(
        request,
        "gov/objections.html",
        _context(
            "objections",
            objections=listing["items"],
            notices=notices["items"],
            catalogue=catalogue,
            status=status,
            pages=_pages(listing["total"], page),
        ),
    )


async def _objection_page(
    request: Request,
    gw: GatewayClient,
    session: Session,
    objection_id: uuid.UUID,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    obj, catalogue = await asyncio.gather(
        gw.get(session, f"/v1/scoring/objections/{objection_id}"),
        request.app.state.reference.indicators(gw, session),
    )
    return render(
        request,
        "gov/objection.html",
        _context(
            "objections",
            obj=obj,
            catalogue=catalogue,
            error=error,
            notice=_notice(notice),
        ),
        status_code=status_code,
    )


@router.get("/objections/{objection_id}", response_class=HTMLResponse)
async def objection(
    request: Request,
    session: GovSession,
    gw: Gateway,
    objection_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    return await _objection_page(request, gw, session, objection_id, notice=notice)


@router.post("/objections/{objection_id}/decision", response_model=None)
async def decide(
    request: Request,
    session: GovOperator,
    gw: Gateway,
    objection_id: uuid.UUID,
    decision: Annotated[Literal["accepted", "rejected"], Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
    corrected_value: Annotated[str, Form(max_length=32)] = "",
    confirm: Confirm = None,
) -> Response:
    if not note.strip():
        return await _objection_page(
            request, gw, session, objection_id, error="请填写处理意见。", status_code=422
        )
    body: dict[str, Any] = {"decision": decision, "note": note.strip()}
    if decision == "accepted" and corrected_value.strip():
        try:
            body["corrected_value"] = float(corrected_value)
        except ValueError:
            return await _objection_page(
                request, gw, session, objection_id, error="更正值须为数字。", status_code=422
            )
    if confirm != "yes":
        verb = "采纳" if decision == "accepted" else "不予采纳"
        text = f"{verb}该异议。处理意见：{note.strip()}"
        if decision == "accepted":
            text += "。采纳后该数值将被更正，需重新评价本期（更正批次）后再发布。"
        fields = {"decision": decision, "note": note.strip(), "corrected_value": corrected_value}
        return _confirm(
            request, "处理异议", text, f"/gov/objections/{objection_id}/decision", fields
        )
    try:
        await gw.call(session, "POST", f"/v1/scoring/objections/{objection_id}/decision", json=body)
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            return await _objection_page(
                request, gw, session, objection_id, error=_problem(exc), status_code=exc.status
            )
        raise
    return RedirectResponse(f"/gov/objections/{objection_id}?notice=decided", status_code=303)


EVIDENCE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg"})


@router.get("/objections/{objection_id}/evidence/{evidence_id}")
async def evidence(
    session: GovSession, gw: Gateway, objection_id: uuid.UUID, evidence_id: uuid.UUID
) -> Response:
    return await evidence_download(gw, session, objection_id, evidence_id)


async def evidence_download(
    gw: GatewayClient, session: Session, objection_id: uuid.UUID, evidence_id: uuid.UUID
) -> Response:
    """An evidence file, always as an attachment of one of the allowed types (never shown
    inline: the portal's origin must not render a file someone uploaded)."""
    resp = await gw.call(
        session, "GET", f"/v1/scoring/objections/{objection_id}/evidence/{evidence_id}"
    )
    media = resp.headers.get("content-type", "").split(";")[0].strip()
    return Response(
        content=resp.content,
        media_type=media if media in EVIDENCE_TYPES else "application/octet-stream",
        headers={
            "Content-Disposition": resp.headers.get(
                "content-disposition", f'attachment; filename="evidence-{evidence_id}"'
            )
        },
    )
