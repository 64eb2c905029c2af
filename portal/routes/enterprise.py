"""The legal person's pages: 一图清 (the score made clear), 金融超市 (credit offers and
applications), 政策一键配 (policies and pools) and consents.

Everything shown comes from the gateway with the person's own token; the enterprise is the
one in the session, never one named by the request.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from portal import charts, labels
from portal.deps import EnterpriseSession, Gateway
from portal.errors import is_htmx
from portal.gateway import GatewayClient, GatewayProblem
from portal.sessions import Session
from portal.web import number, render

router = APIRouter(prefix="/e")

PeriodQuery = Annotated[int | None, Query(ge=2000, le=2100)]
Sort = Literal["amount", "-amount", "rate", "-rate", "term", "-term"]
BankId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]

NOTICES = {
    "consent-withdrawn": "已撤回对该银行的授权。",
    "application-withdrawn": "申请已撤回。",
}

# A score that cannot be shown yet is a state of the page, not an error.
NO_SCORE = frozenset({404, 409})


def _uscc(session: Session) -> str:
    assert session.principal.uscc is not None
    return session.principal.uscc


def _notice(code: str | None) -> str | None:
    return NOTICES.get(code or "")


# -- 一图清 --------------------------------------------------------------------------------


def _indicator_rows(
    score: dict[str, Any], catalogue: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for ind in score["indicators"]:
        meta = catalogue.get(ind["code"], {})
        group = groups.setdefault(
            ind["dimension"],
            {
                "code": ind["dimension"],
                "name": labels.DIMENSIONS.get(ind["dimension"], ""),
                "items": [],
            },
        )
        group["items"].append(
            {
                **ind,
                "name": meta.get("name_zh", ind["code"]),
                "unit": meta.get("unit", ""),
                "kind": meta.get("kind", ""),
            }
        )
    return list(groups.values())


def _value_text(value: float | None, meta: dict[str, Any]) -> str:
    if value is None:
        return "无数据"
    if meta.get("kind") == "flag":
        return "是" if value > 0 else "否"
    unit = meta.get("unit", "")
    return f"{number(value)}{'' if unit in ('', '是/否') else ' ' + unit}"


def _explanations(
    score: dict[str, Any], catalogue: dict[str, dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """The reasons and improvements, as sentences."""
    reasons = []
    for r in score["reasons"]:
        meta = catalogue.get(r["code"], {})
        name = meta.get("name_zh", r["code"])
        if r["value"] is None:
            reasons.append(
                f"{name}：没有数据，未得分（本项满分 {number(r['max_points'], 2)} 分）。"
            )
        elif r["missing"]:
            reasons.append(
                f"{name}：{_value_text(r['value'], meta)}，零或负值不得分"
                f"（本项满分 {number(r['max_points'], 2)} 分）。"
            )
        else:
            median = (
                f"，同阶段中位数为 {_value_text(r['cohort_median'], meta)}"
                if r["cohort_median"] is not None
                else ""
            )
            reasons.append(
                f"{name}：{_value_text(r['value'], meta)}{median}，"
                f"失 {number(r['points_lost'], 1)} 分（满分 {number(r['max_points'], 2)} 分）。"
            )
    better = []
    for i in score["improvements"]:
        meta = catalogue.get(i["code"], {})
        name = meta.get("name_zh", i["code"])
        current = "无" if i["value"] is None else _value_text(i["value"], meta)
        better.append(
            f"{name} {current} → {_value_text(i['target_value'], meta)}，"
            f"约可增加 {number(i['points_gain'], 1)} 分"
            f"（同阶段百分位升至约 {number(i['target_percentile'] * 100, 0)}%）。"
        )
    return reasons, better


async def _scorecard(
    request: Request,
    gw: GatewayClient,
    session: Session,
    period: int | None,
    uscc: str | None = None,
) -> dict[str, Any]:
    """The 一图清 of the session's enterprise, or (government pages) of `uscc`."""
    uscc = uscc or _uscc(session)
    reference = request.app.state.reference
    params = {"period": period} if period else None
    score_call = gw.get(session, f"/v1/scoring/enterprises/{uscc}/score", params)
    history_call = gw.get(session, f"/v1/scoring/enterprises/{uscc}/history", {"limit": 100})
    parts: list[Any] = list(
        await asyncio.gather(
            score_call, history_call, reference.indicators(gw, session), return_exceptions=True
        )
    )
    score: Any = parts[0]
    history: Any = parts[1]
    catalogue: Any = parts[2]
    if isinstance(score, BaseException) and not (
        isinstance(score, GatewayProblem) and score.status in NO_SCORE
    ):
        raise score
    if isinstance(history, GatewayProblem) and history.status in NO_SCORE:
        history = {"items": []}
    for part in (history, catalogue):
        if isinstance(part, BaseException):
            raise part
    periods = [h["period"] for h in history["items"]]
    if isinstance(score, GatewayProblem):
        return {"score": None, "problem": score, "history": history["items"], "periods": periods}
    stats = None
    if score["scored"] and score["stage"]:
        try:
            stats = await reference.cohort_stats(gw, session, score["stage"], score["period"])
        except GatewayProblem as exc:
            if exc.status not in NO_SCORE:
                raise
    reasons, improvements = _explanations(score, catalogue)
    return {
        "score": score,
        "stats": stats,
        "history": history["items"],
        "periods": periods,
        "groups": _indicator_rows(score, catalogue),
        "reasons": reasons,
        "improvements": improvements,
        "radar": charts.radar(score, stats) if score["scored"] else None,
        "trend": charts.trend(history["items"]),
    }


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request, session: EnterpriseSession, gw: Gateway, period: PeriodQuery = None
) -> HTMLResponse:
    view = await _scorecard(request, gw, session, period)
    return render(request, "enterprise/home.html", {**view, "tab": "home"})


# -- 金融超市 ------------------------------------------------------------------------------


def _sorted_offers(items: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    key = sort.lstrip("-")
    field = {"amount": "amount", "rate": "rate_min", "term": "term_months"}[key]
    return sorted(items, key=lambda o: (o[field], o["bank_id"]), reverse=sort.startswith("-"))


async def _offers(gw: GatewayClient, session: Session) -> dict[str, Any] | GatewayProblem:
    try:
        body: dict[str, Any] = await gw.get(
            session, f"/v1/credit/enterprises/{_uscc(session)}/offers"
        )
    except GatewayProblem as exc:
        if exc.status in NO_SCORE:
            return exc
        raise
    return body


@router.get("/credit", response_class=HTMLResponse)
async def credit(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    sort: Annotated[Sort, Query()] = "-amount",
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    reference = request.app.state.reference
    offers, applications, banks = await asyncio.gather(
        _offers(gw, session),
        gw.get(session, "/v1/credit/applications", {"limit": 50}),
        reference.banks(gw, session),
    )
    context = {
        "tab": "credit",
        "sort": sort,
        "offers": None if isinstance(offers, GatewayProblem) else offers,
        "items": []
        if isinstance(offers, GatewayProblem)
        else _sorted_offers(offers["items"], sort),
        "problem": offers if isinstance(offers, GatewayProblem) else None,
        "applications": applications["items"],
        "banks": banks,
        "notice": _notice(notice),
    }
    if is_htmx(request) and request.headers.get("hx-target") == "offers":
        return render(request, "enterprise/_offers.html", context)
    return render(request, "enterprise/credit.html", context)


async def _offer(gw: GatewayClient, session: Session, product_id: uuid.UUID) -> dict[str, Any]:
    offers = await _offers(gw, session)
    if isinstance(offers, GatewayProblem):
        raise offers
    for item in offers["items"]:
        if item["product_id"] == str(product_id):
            offer: dict[str, Any] = item
            return offer
    raise GatewayProblem(404, {"title": "No such offer"})


def _apply_page(
    request: Request,
    offer: dict[str, Any],
    *,
    amount: int | None = None,
    term: int | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "enterprise/apply.html",
        {
            "tab": "credit",
            "offer": offer,
            "amount": amount if amount is not None else offer["amount"],
            "term": term if term is not None else offer["term_months"],
            # Made when the form is shown: a double click or a resubmission of this form
            # carries the same key, and the credit service answers both with one application.
            "idempotency_key": secrets.token_urlsafe(24),
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/credit/apply/{product_id}", response_class=HTMLResponse)
async def apply_form(
    request: Request, session: EnterpriseSession, gw: Gateway, product_id: uuid.UUID
) -> HTMLResponse:
    return _apply_page(request, await _offer(gw, session, product_id))


@router.post("/credit/apply/{product_id}", response_model=None)
async def apply(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    product_id: uuid.UUID,
    amount: Annotated[int, Form(ge=1, le=10_000_000_000)],
    term_months: Annotated[int, Form(ge=1, le=360)],
    idempotency_key: Annotated[
        str, Form(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ],
    consent: Annotated[str | None, Form(max_length=8)] = None,
) -> Response:
    offer = await _offer(gw, session, product_id)
    problem = None
    if consent != "yes":
        problem = "请阅读并勾选授权说明：申请需要同意银行查看本企业的积分详情。"
    elif amount > offer["amount"]:
        problem = f"申请金额不能超过预授信额度 {offer['amount']:,} 元。"
    elif term_months > offer["term_months"]:
        problem = f"期限不能超过产品期限 {offer['term_months']} 个月。"
    if problem:
        return _apply_page(
            request, offer, amount=amount, term=term_months, error=problem, status_code=422
        )
    try:
        resp = await gw.call(
            session,
            "POST",
            "/v1/credit/applications",
            json={"product_id": str(product_id), "amount": amount, "term_months": term_months},
            headers={"Idempotency-Key": idempotency_key},
        )
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            return _apply_page(
                request,
                offer,
                amount=amount,
                term=term_months,
                error=labels.problem_text(exc.status, exc.slug),
                status_code=exc.status,
            )
        raise
    return RedirectResponse(f"/e/credit/applications/{resp.json()['id']}", status_code=303)


@router.get("/credit/applications/{application_id}", response_class=HTMLResponse)
async def application(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    application_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    app, banks = await asyncio.gather(
        gw.get(session, f"/v1/credit/applications/{application_id}"),
        request.app.state.reference.banks(gw, session),
    )
    return render(
        request,
        "enterprise/application.html",
        {"tab": "credit", "app": app, "banks": banks, "notice": _notice(notice)},
    )


@router.post("/credit/applications/{application_id}/withdraw")
async def withdraw_application(
    session: EnterpriseSession, gw: Gateway, application_id: uuid.UUID
) -> RedirectResponse:
    await gw.call(session, "POST", f"/v1/credit/applications/{application_id}/withdraw", json={})
    return RedirectResponse(
        f"/e/credit/applications/{application_id}?notice=application-withdrawn", status_code=303
    )


# -- 政策一键配 ----------------------------------------------------------------------------


async def _matches(gw: GatewayClient, session: Session) -> dict[str, Any] | GatewayProblem:
    try:
        body: dict[str, Any] = await gw.get(
            session,
            f"/v1/policy/enterprises/{_uscc(session)}/matches",
            [("status", "eligible"), ("status", "near")],
        )
    except GatewayProblem as exc:
        if exc.status in NO_SCORE:
            return exc
        raise
    return body


@router.get("/policy", response_class=HTMLResponse)
async def policy(request: Request, session: EnterpriseSession, gw: Gateway) -> HTMLResponse:
    matches, pushes = await asyncio.gather(
        _matches(gw, session),
        gw.get(session, f"/v1/policy/enterprises/{_uscc(session)}/pushes", {"limit": 10}),
    )
    items = [] if isinstance(matches, GatewayProblem) else matches["items"]
    sections = [
        ("可申报的政策", [m for m in items if m["kind"] == "policy" and m["status"] == "eligible"]),
        ("接近条件的政策", [m for m in items if m["kind"] == "policy" and m["status"] == "near"]),
        ("可入选的培育库", [m for m in items if m["kind"] == "pool" and m["status"] == "eligible"]),
        ("接近条件的培育库", [m for m in items if m["kind"] == "pool" and m["status"] == "near"]),
    ]
    return render(
        request,
        "enterprise/policy.html",
        {
            "tab": "policy",
            "sections": sections,
            "problem": matches if isinstance(matches, GatewayProblem) else None,
            "pushes": pushes,
        },
    )


@router.get("/policy/unread", response_class=HTMLResponse)
async def unread_badge(request: Request, session: EnterpriseSession, gw: Gateway) -> HTMLResponse:
    """The tab bar's badge, loaded after the page: when the policy service is away the badge
    is simply absent, not an error over a page that is otherwise fine."""
    try:
        pushes = await gw.get(
            session,
            f"/v1/policy/enterprises/{_uscc(session)}/pushes",
            {"limit": 1, "unread": "true"},
        )
        unread = pushes["unread"]
    except GatewayProblem:
        unread = 0
    return render(request, "enterprise/_unread.html", {"unread": unread, "oob": False})


@router.post("/policy/pushes/{push_id}/read", response_model=None)
async def read_push(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    push_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Response:
    uscc = _uscc(session)
    push = (
        await gw.call(session, "POST", f"/v1/policy/enterprises/{uscc}/pushes/{push_id}/read")
    ).json()
    if not is_htmx(request):
        return RedirectResponse("/e/policy", status_code=303)
    pushes = await gw.get(
        session, f"/v1/policy/enterprises/{uscc}/pushes", {"limit": 1, "unread": "true"}
    )
    return render(request, "enterprise/_push.html", {"push": push, "unread": pushes["unread"]})


# -- 授权管理 ------------------------------------------------------------------------------


async def _consents(
    request: Request, gw: GatewayClient, session: Session
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every consent of the enterprise, ended ones included (they are its record)."""
    consents, banks = await asyncio.gather(
        gw.get(session, "/v1/credit/consents", {"include_ended": "true", "limit": 100}),
        request.app.state.reference.banks(gw, session),
    )
    return consents["items"], banks


@router.get("/consents", response_class=HTMLResponse)
async def consents(
    request: Request,
    session: EnterpriseSession,
    gw: Gateway,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    items, banks = await _consents(request, gw, session)
    return render(
        request,
        "enterprise/consents.html",
        {
            "tab": "consents",
            "in_force": [c for c in items if c["status"] == "in_force"],
            "ended": [c for c in items if c["status"] != "in_force"],
            "banks": banks,
            "notice": _notice(notice),
        },
    )


def _withdraw_page(
    request: Request,
    consent: dict[str, Any],
    banks: dict[str, dict[str, Any]],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "enterprise/consent_withdraw.html",
        {"tab": "consents", "consent": consent, "banks": banks, "error": error},
        status_code=status_code,
    )


async def _explicit_consent(
    request: Request, gw: GatewayClient, session: Session, bank_id: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The explicit consent in force for the bank: the only kind the enterprise withdraws
    on its own (one given by applying ends with its application)."""
    items, banks = await _consents(request, gw, session)
    for c in items:
        if c["bank_id"] == bank_id and c["basis"] == "explicit" and c["status"] == "in_force":
            return c, banks
    raise GatewayProblem(404, {"title": "No such consent"})


@router.get("/consents/{bank_id}/withdraw", response_class=HTMLResponse)
async def withdraw_consent_form(
    request: Request, session: EnterpriseSession, gw: Gateway, bank_id: BankId
) -> HTMLResponse:
    consent, banks = await _explicit_consent(request, gw, session, bank_id)
    return _withdraw_page(request, consent, banks)


@router.post("/consents/{bank_id}/withdraw", response_model=None)
async def withdraw_consent(
    request: Request, session: EnterpriseSession, gw: Gateway, bank_id: BankId
) -> Response:
    try:
        await gw.call(session, "DELETE", f"/v1/credit/consents/{bank_id}")
    except GatewayProblem as exc:
        if exc.status != 409:
            raise
        consent, banks = await _explicit_consent(request, gw, session, bank_id)
        return _withdraw_page(
            request, consent, banks, labels.problem_text(409, exc.slug), status_code=409
        )
    return RedirectResponse("/e/consents?notice=consent-withdrawn", status_code=303)
