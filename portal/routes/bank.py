"""Bank officers' pages (`/bank/`): the application queue and each application with its
evidence, the decisions, products, the approved amounts of consenting enterprises and the
webhook delivery log.

Everything goes through the gateway's public API with the officer's own staff session, so
the credit service sees the bank, the role and the person (`act`) and records who did what.
A viewer is refused by the portal before the gateway is asked (which refuses too).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from portal import labels
from portal.deps import Gateway
from portal.gateway import GatewayClient, GatewayProblem
from portal.routes.staff import BankOperator, BankSession, staff_context
from portal.sessions import Session
from portal.web import render

router = APIRouter(prefix="/bank")
PAGE_SIZE = 25

QueueStatus = Literal[
    "open", "submitted", "under_review", "approved", "disbursed", "rejected", "withdrawn", "closed"
]
# "open": what still needs the bank (submitted and under review), the default view.
OPEN_STATUSES = ("submitted", "under_review")


async def bank_header(request: Request, gw: GatewayClient, session: Session) -> dict[str, Any]:
    """The bank's name for the header (cached reference data)."""
    banks = await request.app.state.reference.banks(gw, session)
    bank = banks.get(session.principal.bank_id or "", {})
    return staff_context(session, org_label=bank.get("name") or session.principal.bank_id)


async def _products(gw: GatewayClient, session: Session) -> dict[str, dict[str, Any]]:
    body = await gw.get(session, "/v1/credit/products", {"limit": 200})
    return {p["id"]: p for p in body["items"]}


async def _queue(
    gw: GatewayClient, session: Session, status: QueueStatus, offset: int
) -> tuple[list[dict[str, Any]], int]:
    if status != "open":
        params = {"status": status, "limit": PAGE_SIZE, "offset": offset}
        body = await gw.get(session, "/v1/credit/applications", params)
        return body["items"], int(body["total"])
    # The open queue is two statuses; each is asked for whole pages, merged oldest first.
    bodies = await asyncio.gather(
        *(
            gw.get(session, "/v1/credit/applications", {"status": s, "limit": 200})
            for s in OPEN_STATUSES
        )
    )
    items = sorted((i for b in bodies for i in b["items"]), key=lambda a: a["created_at"])
    total = sum(int(b["total"]) for b in bodies)
    return items[offset : offset + PAGE_SIZE], total


@router.get("/", response_class=HTMLResponse)
async def queue(
    request: Request,
    session: BankSession,
    gw: Gateway,
    status: Annotated[QueueStatus, Query()] = "open",
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    header, products, (items, total) = await asyncio.gather(
        bank_header(request, gw, session),
        _products(gw, session),
        _queue(gw, session, status, offset),
    )
    return render(
        request,
        "bank/queue.html",
        {
            **header,
            "status": status,
            "items": items,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "products": products,
        },
    )


# -- one application: evidence, history, and the bank's actions ---------------------------

Action = Literal["review", "decide", "disburse"]
# What the bank may do from each status (the credit service decides; this only shows it).
ACTIONS: dict[str, tuple[Action, ...]] = {
    "submitted": ("review", "decide"),
    "under_review": ("decide",),
    "approved": ("disburse",),
}
ACTION_TITLES = {"review": "开始审核", "decide": "审批决定", "disburse": "放款"}


async def _application(
    request: Request, gw: GatewayClient, session: Session, application_id: uuid.UUID
) -> dict[str, Any]:
    app, products, header = await asyncio.gather(
        gw.get(session, f"/v1/credit/applications/{application_id}"),
        _products(gw, session),
        bank_header(request, gw, session),
    )
    return {
        **header,
        "tab": "/bank/",
        "app": app,
        "product": products.get(app["product_id"]),
        "actions": ACTIONS.get(app["status"], ()),
        "action_titles": ACTION_TITLES,
        "reasons": labels.REJECTION_REASONS,
    }


def _application_page(
    request: Request, view: dict[str, Any], status_code: int = 200, **extra: Any
) -> HTMLResponse:
    return render(request, "bank/application.html", {**view, **extra}, status_code=status_code)


@router.get("/applications/{application_id}", response_class=HTMLResponse)
async def application(
    request: Request,
    session: BankSession,
    gw: Gateway,
    application_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    view = await _application(request, gw, session, application_id)
    return _application_page(request, view, notice=NOTICES.get(notice or ""))


NOTICES = {
    "reviewed": "已开始审核。",
    "approved": "已批准，企业将收到通知。",
    "rejected": "已拒绝，企业将收到通知。",
    "disbursed": "已确认放款。",
    "draft-saved": "草稿已保存。",
    "published": "产品已发布，企业可在金融超市看到。",
    "withdrawn": "产品已下架。",
}


@dataclass(frozen=True)
class Decision:
    """The decision form, checked before it is shown for confirmation or sent."""

    decision: str
    amount: int | None
    rate: float | None
    term_months: int | None
    reason_codes: tuple[str, ...]
    note: str | None

    def problem(self) -> str | None:
        if self.decision == "approve":
            if self.amount is None or self.rate is None or self.term_months is None:
                return "批准须填写批准金额、年利率和期限。"
        elif self.decision == "reject":
            if not self.reason_codes:
                return "拒绝须至少选择一项原因。"
            if any(code not in labels.REJECTION_REASONS for code in self.reason_codes):
                return "请选择列表中的拒绝原因。"
        else:
            return "请选择批准或拒绝。"
        return None

    def body(self) -> dict[str, Any]:
        if self.decision == "approve":
            return {
                "decision": "approve",
                "amount": self.amount,
                "rate": self.rate,
                "term_months": self.term_months,
                "note": self.note,
            }
        return {"decision": "reject", "reason_codes": list(self.reason_codes), "note": self.note}


Confirmed = Annotated[str | None, Form(max_length=8)]
NoteField = Annotated[str | None, Form(max_length=2000)]


async def _send_action(
    request: Request,
    gw: GatewayClient,
    session: Session,
    application_id: uuid.UUID,
    path: str,
    body: dict[str, Any],
    notice: str,
) -> Response:
    try:
        await gw.call(
            session, "POST", f"/v1/credit/applications/{application_id}/{path}", json=body
        )
    except GatewayProblem as exc:
        if exc.status in (409, 422):
            view = await _application(request, gw, session, application_id)
            error = labels.problem_text(exc.status, exc.slug)
            return _application_page(request, view, exc.status, error=error)
        raise
    return RedirectResponse(f"/bank/applications/{application_id}?notice={notice}", status_code=303)


@router.post("/applications/{application_id}/review", response_model=None)
async def review(
    request: Request,
    session: BankOperator,
    gw: Gateway,
    application_id: uuid.UUID,
    note: NoteField = None,
    confirmed: Confirmed = None,
) -> Response:
    if confirmed != "yes":
        view = await _application(request, gw, session, application_id)
        return _application_page(request, view, confirm="review", form={"note": note})
    body = {"note": note or None}
    return await _send_action(request, gw, session, application_id, "review", body, "reviewed")


@router.post("/applications/{application_id}/decide", response_model=None)
async def decide(
    request: Request,
    session: BankOperator,
    gw: Gateway,
    application_id: uuid.UUID,
    decision: Annotated[str, Form(max_length=16)] = "",
    amount: Annotated[int | None, Form(ge=1, le=10_000_000_000)] = None,
    rate: Annotated[float | None, Form(gt=0, le=36)] = None,
    term_months: Annotated[int | None, Form(ge=1, le=360)] = None,
    reason_codes: Annotated[list[str] | None, Form(max_length=10)] = None,
    note: NoteField = None,
    confirmed: Confirmed = None,
) -> Response:
    form = Decision(decision, amount, rate, term_months, tuple(reason_codes or ()), note or None)
    problem = form.problem()
    if problem is not None or confirmed != "yes":
        view = await _application(request, gw, session, application_id)
        return _application_page(
            request,
            view,
            422 if problem else 200,
            error=problem,
            confirm=None if problem else "decide",
            form=form,
        )
    notice = "approved" if form.decision == "approve" else "rejected"
    return await _send_action(request, gw, session, application_id, "decision", form.body(), notice)


@router.post("/applications/{application_id}/disburse", response_model=None)
async def disburse(
    request: Request,
    session: BankOperator,
    gw: Gateway,
    application_id: uuid.UUID,
    amount: Annotated[int | None, Form(ge=1, le=10_000_000_000)] = None,
    note: NoteField = None,
    confirmed: Confirmed = None,
) -> Response:
    if confirmed != "yes":
        view = await _application(request, gw, session, application_id)
        form = {"amount": amount or view["app"]["approved_amount"], "note": note}
        return _application_page(request, view, confirm="disburse", form=form)
    body = {"amount": amount, "note": note or None}
    return await _send_action(request, gw, session, application_id, "disburse", body, "disbursed")


# -- products -------------------------------------------------------------------------------

GUARANTEES = ("pure_credit", "guaranteed", "collateral")
BAND_TIERS = (3, 4, 5)


@router.get("/products", response_class=HTMLResponse)
async def products(
    request: Request,
    session: BankSession,
    gw: Gateway,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    header, items = await asyncio.gather(bank_header(request, gw, session), _products(gw, session))
    return render(
        request,
        "bank/products.html",
        {**header, "products": list(items.values()), "notice": NOTICES.get(notice or "")},
    )


@dataclass(frozen=True)
class ProductForm:
    """The draft form as typed; `terms()` is what the credit service is sent."""

    name: str = ""
    description: str = ""
    stages: tuple[str, ...] = ()
    min_tier: int | None = None
    base_amount: int | None = None
    bands: tuple[int | None, ...] = (None, None, None)
    max_amount: int | None = None
    rate_min: float | None = None
    rate_max: float | None = None
    term_months: int | None = None
    guarantee: str = "pure_credit"

    def problem(self) -> str | None:
        if not self.name.strip():
            return "请填写产品名称。"
        if not self.stages or not set(self.stages) <= set(labels.STAGES):
            return "请至少选择一个适用成长阶段。"
        required = (self.base_amount, self.max_amount, self.rate_min, self.rate_max)
        if any(v is None for v in required) or self.term_months is None:
            return "请填写基础额度、最高额度、利率区间和期限。"
        if self.guarantee not in GUARANTEES:
            return "请选择担保方式。"
        return None

    def terms(self) -> dict[str, Any]:
        bands = [
            {"min": tier, "amount": amount}
            for tier, amount in zip(BAND_TIERS, self.bands, strict=True)
            if amount is not None
        ]
        return {
            "name": self.name.strip(),
            "description": self.description.strip() or None,
            "eligible_stages": list(self.stages),
            "min_tier": self.min_tier,
            "line_rule": {"basis": "tier", "base_amount": self.base_amount, "bands": bands},
            "max_amount": self.max_amount,
            "rate_min": self.rate_min,
            "rate_max": self.rate_max,
            "term_months": self.term_months,
            "guarantee": self.guarantee,
        }


Money = Annotated[int | None, Form(ge=0, le=10_000_000_000)]
RateField = Annotated[float | None, Form(gt=0, le=36)]


async def _product_form_page(
    request: Request,
    gw: GatewayClient,
    session: Session,
    form: ProductForm,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    header = await bank_header(request, gw, session)
    context = {
        **header,
        "tab": "/bank/products",
        "form": form,
        "error": error,
        "band_tiers": BAND_TIERS,
        "guarantees": GUARANTEES,
    }
    return render(request, "bank/product_new.html", context, status_code=status_code)


@router.get("/products/new", response_class=HTMLResponse)
async def product_new(request: Request, session: BankOperator, gw: Gateway) -> HTMLResponse:
    return await _product_form_page(request, gw, session, ProductForm())


@router.post("/products/new", response_model=None)
async def product_create(
    request: Request,
    session: BankOperator,
    gw: Gateway,
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    eligible_stages: Annotated[list[str] | None, Form(max_length=5)] = None,
    min_tier: Annotated[int | None, Form(ge=1, le=5)] = None,
    base_amount: Money = None,
    band_3: Money = None,
    band_4: Money = None,
    band_5: Money = None,
    max_amount: Money = None,
    rate_min: RateField = None,
    rate_max: RateField = None,
    term_months: Annotated[int | None, Form(ge=1, le=360)] = None,
    guarantee: Annotated[str, Form(max_length=16)] = "pure_credit",
) -> Response:
    form = ProductForm(
        name,
        description,
        tuple(eligible_stages or ()),
        min_tier,
        base_amount,
        (band_3, band_4, band_5),
        max_amount,
        rate_min,
        rate_max,
        term_months,
        guarantee,
    )
    problem = form.problem()
    if problem is not None:
        return await _product_form_page(request, gw, session, form, problem, 422)
    try:
        resp = await gw.call(session, "POST", "/v1/credit/products", json=form.terms())
    except GatewayProblem as exc:
        if exc.status == 422:
            detail = _validation_text(exc)
            return await _product_form_page(request, gw, session, form, detail, 422)
        raise
    return RedirectResponse(
        f"/bank/products/{resp.json()['id']}?notice=draft-saved", status_code=303
    )


def _validation_text(exc: GatewayProblem) -> str:
    """The credit service's reasons (its validation messages are English; shown as they are,
    after a Chinese sentence, so the officer sees which rule was broken)."""
    errors = exc.body.get("errors") or []
    details = [str(e.get("msg") or e.get("detail") or "") for e in errors if isinstance(e, dict)]
    reason = "；".join(d for d in details if d)[:300] or str(exc.body.get("detail", ""))[:300]
    return "产品条件不符合规则，请检查后重试。" + (f"（{reason}）" if reason else "")


async def _product_view(
    request: Request, gw: GatewayClient, session: Session, product_id: uuid.UUID
) -> dict[str, Any]:
    versions, header = await asyncio.gather(
        gw.get(session, f"/v1/credit/products/{product_id}/versions"),
        bank_header(request, gw, session),
    )
    latest = versions[-1]
    can_publish = latest["status"] != "withdrawn" and latest["version_published_at"] is None
    return {
        **header,
        "tab": "/bank/products",
        "product": latest,
        "versions": versions,
        "can_publish": can_publish,
        "can_withdraw": latest["status"] != "withdrawn",
    }


@router.get("/products/{product_id}", response_class=HTMLResponse)
async def product(
    request: Request,
    session: BankSession,
    gw: Gateway,
    product_id: uuid.UUID,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    view = await _product_view(request, gw, session, product_id)
    return render(request, "bank/product.html", {**view, "notice": NOTICES.get(notice or "")})


async def _product_action(
    request: Request,
    gw: GatewayClient,
    session: Session,
    product_id: uuid.UUID,
    action: Literal["publish", "withdraw"],
    confirmed: str | None,
) -> Response:
    if confirmed != "yes":
        view = await _product_view(request, gw, session, product_id)
        return render(request, "bank/product.html", {**view, "confirm": action})
    try:
        await gw.call(session, "POST", f"/v1/credit/products/{product_id}/{action}")
    except GatewayProblem as exc:
        if exc.status == 409:
            view = await _product_view(request, gw, session, product_id)
            error = "产品当前状态不允许此操作（可能已被他人处理），请刷新后查看。"
            return render(request, "bank/product.html", {**view, "error": error}, status_code=409)
        raise
    notice = "published" if action == "publish" else "withdrawn"
    return RedirectResponse(f"/bank/products/{product_id}?notice={notice}", status_code=303)


@router.post("/products/{product_id}/publish", response_model=None)
async def product_publish(
    request: Request,
    session: BankOperator,
    gw: Gateway,
    product_id: uuid.UUID,
    confirmed: Confirmed = None,
) -> Response:
    return await _product_action(request, gw, session, product_id, "publish", confirmed)


@router.post("/products/{product_id}/withdraw", response_model=None)
async def product_withdraw(
    request: Request,
    session: BankOperator,
    gw: Gateway,
    product_id: uuid.UUID,
    confirmed: Confirmed = None,
) -> Response:
    return await _product_action(request, gw, session, product_id, "withdraw", confirmed)


# -- approved amounts of consenting enterprises, webhook deliveries ---------------------------


@router.get("/approved", response_class=HTMLResponse)
async def approved(
    request: Request,
    session: BankSession,
    gw: Gateway,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    header, consents = await asyncio.gather(
        bank_header(request, gw, session),
        gw.get(session, "/v1/credit/consents", {"limit": PAGE_SIZE, "offset": offset}),
    )
    return render(
        request,
        "bank/approved.html",
        {**header, "consents": consents, "offset": offset, "page_size": PAGE_SIZE},
    )


@router.get("/approved/{uscc}", response_class=HTMLResponse)
async def approved_enterprise(
    request: Request,
    session: BankSession,
    gw: Gateway,
    uscc: Annotated[str, Path(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")],
) -> HTMLResponse:
    header, amounts, products_by_id = await asyncio.gather(
        bank_header(request, gw, session),
        gw.get(session, f"/v1/credit/enterprises/{uscc}/approved-amounts"),
        _products(gw, session),
    )
    return render(
        request,
        "bank/approved_enterprise.html",
        {**header, "tab": "/bank/approved", "amounts": amounts, "products": products_by_id},
    )


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks(
    request: Request,
    session: BankSession,
    gw: Gateway,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    header, deliveries = await asyncio.gather(
        bank_header(request, gw, session),
        gw.get(session, "/v1/credit/webhook-deliveries", {"limit": 50, "offset": offset}),
    )
    return render(
        request,
        "bank/webhooks.html",
        {**header, "deliveries": deliveries, "offset": offset, "page_size": 50},
    )
