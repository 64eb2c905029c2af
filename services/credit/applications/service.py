"""Applications: apply (idempotently, with consent), decide, disburse, close, withdraw.

Every application carries its own consent (services/credit/consents), which follows it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.applications.lifecycle import TRANSITIONS, Action, Status
from services.credit.applications.schemas import (
    ApplicationCreate,
    ApplicationOut,
    DecisionIn,
    DisburseIn,
    Evidence,
    StatusChange,
)
from services.credit.common import (
    BusinessRuleViolation,
    NoPublishedEvaluation,
    actor,
)
from services.credit.consents import service as consents
from services.credit.lines.rules import Ineligibility, ineligibility
from services.credit.lines.service import current_evaluation, facts, product_rule, score_of
from services.credit.models import (
    OPEN_PREDICATE,
    OPEN_STATUSES,
    ApplicationStatusChange,
    CreditLine,
    CreditProduct,
    IdempotencyKey,
    LoanApplication,
    ProductVersion,
)
from services.credit.notifications.outbox import enqueue
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Conflict, Forbidden, InvalidTransition, NotFound, Unprocessable
from shared.pagination import Page, PageParams

_INELIGIBLE_TITLES = {
    Ineligibility.NOT_SCORED: "The enterprise has no published score",
    Ineligibility.NEGATIVE_LIST: "The enterprise is on the negative list",
    Ineligibility.STAGE_NOT_ELIGIBLE: "The product is not for the enterprise's stage",
    Ineligibility.BELOW_MINIMUM_TIER: "The enterprise's tier is below the product's minimum",
    Ineligibility.BELOW_MINIMUM_PERCENTILE: "The enterprise's rank is below the product's minimum",
}


class ProductNotAvailable(Conflict):
    slug = "product-not-available"
    title = "The product is not open for applications"


class ApplicationAlreadyOpen(Conflict):
    slug = "application-already-open"
    title = "An application for this product is already open"


class IdempotencyKeyReused(Unprocessable):
    slug = "idempotency-key-reused"
    title = "The Idempotency-Key was used for a different request"


def to_out(app: LoanApplication, history: list[ApplicationStatusChange] | None) -> ApplicationOut:
    return ApplicationOut(
        id=app.id,
        uscc=app.uscc,
        enterprise_name=app.enterprise_name,
        bank_id=app.bank_id,
        product_id=app.product_id,
        product_version=app.product_version,
        status=Status(app.status),
        requested_amount=app.requested_amount,
        requested_term_months=app.requested_term_months,
        evidence=Evidence(
            run_id=app.run_id,
            period=app.period,
            stage=app.stage,
            percentile=app.percentile,
            tier=app.tier,
            total=app.total,
            line_amount=app.line_amount,
        ),
        approved_amount=app.approved_amount,
        approved_rate=app.approved_rate,
        approved_term_months=app.approved_term_months,
        reason_codes=app.reason_codes,
        disbursed_amount=app.disbursed_amount,
        created_at=app.created_at,
        updated_at=app.updated_at,
        decided_at=app.decided_at,
        disbursed_at=app.disbursed_at,
        closed_at=app.closed_at,
        history=None
        if history is None
        else [
            StatusChange(
                from_status=Status(h.from_status) if h.from_status else None,
                to_status=Status(h.to_status),
                actor_kind=h.actor_kind,
                actor=h.actor,
                note=h.note,
                at=h.at,
            )
            for h in history
        ],
    )


def request_hash(body: ApplicationCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _history(session: AsyncSession, app_id: uuid.UUID) -> list[ApplicationStatusChange]:
    stmt = (
        select(ApplicationStatusChange)
        .where(ApplicationStatusChange.application_id == app_id)
        .order_by(ApplicationStatusChange.id)
    )
    return list(await session.scalars(stmt))


def _record(
    session: AsyncSession,
    app_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    principal: Principal,
    note: str | None,
) -> None:
    session.add(
        ApplicationStatusChange(
            application_id=app_id,
            from_status=from_status,
            to_status=to_status,
            actor_kind=principal.kind.value,
            actor=actor(principal),
            note=note,
        )
    )


def _notification(app: ApplicationOut) -> dict[str, Any]:
    return {"application": app.model_dump(mode="json", exclude={"history"})}


async def apply(
    session: AsyncSession, principal: Principal, key: str, body: ApplicationCreate
) -> tuple[dict[str, Any], bool]:
    """The application's JSON and whether it is a replay of an earlier answer.

    The key is claimed first with INSERT .. ON CONFLICT DO NOTHING: a concurrent duplicate
    waits on the unique index until the first transaction ends, then finds the claim (and
    answers with its stored response) or, if the first failed, claims the key itself.
    """
    assert principal.uscc is not None
    uscc = principal.uscc
    digest = request_hash(body)
    claimed = await session.scalar(
        insert(IdempotencyKey)
        .values(owner=uscc, key=key, request_hash=digest)
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(IdempotencyKey.key)
    )
    if claimed is None:
        first = await session.get(IdempotencyKey, (uscc, key))
        assert first is not None
        assert first.response is not None
        if first.request_hash != digest:
            raise IdempotencyKeyReused(
                "Use a new Idempotency-Key for a different application", idempotency_key=key
            )
        return first.response, True

    app = await _create(session, principal, uscc, body)
    out = to_out(app, await _history(session, app.id))
    response = out.model_dump(mode="json")
    stored = await session.get(IdempotencyKey, (uscc, key))
    assert stored is not None
    stored.application_id = app.id
    stored.response = response
    await session.flush()
    return response, False


async def _create(
    session: AsyncSession, principal: Principal, uscc: str, body: ApplicationCreate
) -> LoanApplication:
    product = await session.get(CreditProduct, body.product_id)
    if product is None:
        raise NotFound(f"No product {body.product_id}")
    if product.status != "published" or product.published_version is None:
        raise ProductNotAvailable(
            f"The product is {product.status}", product_id=str(product.id), status=product.status
        )
    version = await session.get(ProductVersion, (product.id, product.published_version))
    assert version is not None
    today = date.today()
    if (version.valid_from and version.valid_from > today) or (
        version.valid_to and version.valid_to < today
    ):
        raise ProductNotAvailable(
            "The product is outside its validity dates",
            valid_from=str(version.valid_from) if version.valid_from else None,
            valid_to=str(version.valid_to) if version.valid_to else None,
        )
    evaluation = await current_evaluation(session)
    if evaluation is None:
        raise NoPublishedEvaluation("No evaluation has been published to the credit service yet")
    score = await score_of(session, evaluation.run_id, uscc)
    if score is None:
        raise BusinessRuleViolation(
            "no-published-score",
            "The enterprise has no published score",
            f"{uscc} is not in the published evaluation of {evaluation.period}",
            uscc=uscc,
        )
    reason = ineligibility(facts(score), product_rule(version))
    if reason is not None:
        raise BusinessRuleViolation(
            reason.value,
            _INELIGIBLE_TITLES[reason],
            f"No line from this product: {reason.value}",
            stage=score.stage,
            exclusion=score.exclusion,
            eligible_stages=version.eligible_stages,
        )
    line = await session.get(CreditLine, (uscc, product.id))
    if line is None or line.product_version != version.version or line.run_id != score.run_id:
        # The line is computed when read from the current score and published version: it
        # differs from those read above only when a publication committed in between.
        raise Conflict("The pre-approved line is being recomputed; retry shortly")
    if body.amount > line.amount:
        raise BusinessRuleViolation(
            "amount-above-line",
            "The amount is above the pre-approved line",
            f"{body.amount} CNY asked, the line is {line.amount} CNY",
            line_amount=line.amount,
            amount=body.amount,
        )
    term = body.term_months or version.term_months
    if term > version.term_months:
        raise BusinessRuleViolation(
            "term-above-product",
            "The term is longer than the product allows",
            f"{term} months asked, the product allows {version.term_months}",
            term_months=version.term_months,
        )
    app_id = uuid.uuid4()
    now = datetime.now(UTC)
    inserted = await session.scalar(
        insert(LoanApplication)
        .values(
            id=app_id,
            uscc=uscc,
            enterprise_name=score.name,
            bank_id=product.bank_id,
            product_id=product.id,
            product_version=version.version,
            status=Status.SUBMITTED.value,
            requested_amount=body.amount,
            requested_term_months=term,
            line_amount=line.amount,
            run_id=score.run_id,
            period=evaluation.period,
            stage=score.stage,
            percentile=score.percentile,
            tier=score.tier,
            total=score.total,
            created_by=actor(principal),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["uscc", "product_id"],
            index_where=text(OPEN_PREDICATE),
        )
        .returning(LoanApplication.id)
    )
    if inserted is None:
        open_id = await session.scalar(
            select(LoanApplication.id).where(
                LoanApplication.uscc == uscc,
                LoanApplication.product_id == product.id,
                LoanApplication.status.in_(OPEN_STATUSES),
            )
        )
        raise ApplicationAlreadyOpen(
            "Withdraw or finish the open application first",
            application_id=str(open_id) if open_id else None,
        )
    _record(session, app_id, None, Status.SUBMITTED.value, principal, None)
    app = await session.get(LoanApplication, app_id)
    assert app is not None
    # Applying is the enterprise's consent that this bank sees its score, for this application.
    await consents.record_for_application(session, principal, app)
    await enqueue(session, app.bank_id, "application.submitted", _notification(to_out(app, None)))
    return app


def _visible(principal: Principal, app: LoanApplication) -> bool:
    if principal.kind is PrincipalKind.ENTERPRISE:
        return app.uscc == principal.uscc
    if principal.kind is PrincipalKind.BANK:
        return app.bank_id == principal.bank_id
    return True


async def _load(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID, *, lock: bool = False
) -> LoanApplication:
    stmt = select(LoanApplication).where(LoanApplication.id == app_id)
    if lock:
        stmt = stmt.with_for_update()
    app = (await session.scalars(stmt)).first()
    # Another party's application does not exist, as far as the caller can tell.
    if app is None or not _visible(principal, app):
        raise NotFound(f"No application {app_id}")
    return app


async def get_application(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID
) -> ApplicationOut:
    app = await _load(session, principal, app_id)
    return to_out(app, await _history(session, app.id))


async def list_applications(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    status: Status | None,
    uscc: str | None,
    product_id: uuid.UUID | None,
) -> Page[ApplicationOut]:
    stmt = select(LoanApplication)
    if principal.kind is PrincipalKind.ENTERPRISE:
        stmt = stmt.where(LoanApplication.uscc == principal.uscc)
    elif principal.kind is PrincipalKind.BANK:
        stmt = stmt.where(LoanApplication.bank_id == principal.bank_id)
    if status is not None:
        stmt = stmt.where(LoanApplication.status == status.value)
    if uscc is not None:
        stmt = stmt.where(LoanApplication.uscc == uscc)
    if product_id is not None:
        stmt = stmt.where(LoanApplication.product_id == product_id)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(LoanApplication.created_at.desc(), LoanApplication.id)
        .limit(params.limit)
        .offset(params.offset)
    )
    return Page[ApplicationOut].of([to_out(a, None) for a in rows], total, params)


async def _transition(
    session: AsyncSession,
    principal: Principal,
    app_id: uuid.UUID,
    action: Action,
    note: str | None,
    change: Callable[[LoanApplication, ProductVersion], None] | None = None,
) -> ApplicationOut:
    app = await _load(session, principal, app_id, lock=True)
    rule = TRANSITIONS[action]
    if principal.kind is not rule.actor:
        raise Forbidden(f"Only the {rule.actor.value} may {action.value} an application")
    current = Status(app.status)
    if current not in rule.sources:
        raise InvalidTransition(
            f"Cannot {action.value} an application that is {current.value}",
            action=action.value,
            current_status=current.value,
            allowed_from=sorted(s.value for s in rule.sources),
        )
    version = await session.get(ProductVersion, (app.product_id, app.product_version))
    assert version is not None
    if change is not None:
        change(app, version)
    now = datetime.now(UTC)
    app.status = rule.target.value
    app.updated_at = now
    _record(session, app.id, current.value, rule.target.value, principal, note)
    await session.flush()
    await consents.follow_application(session, app)
    out = to_out(app, await _history(session, app.id))
    if action is Action.WITHDRAW:
        await enqueue(session, app.bank_id, "application.withdrawn", _notification(out))
    return out


async def review(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID, note: str | None
) -> ApplicationOut:
    return await _transition(session, principal, app_id, Action.REVIEW, note)


async def decide(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID, body: DecisionIn
) -> ApplicationOut:
    def approve(app: LoanApplication, version: ProductVersion) -> None:
        assert body.amount is not None
        assert body.rate is not None
        term = body.term_months or app.requested_term_months
        if body.amount > version.max_amount:
            raise BusinessRuleViolation(
                "amount-above-product-maximum",
                "The amount is above the product's maximum",
                f"{body.amount} CNY is above {version.max_amount} CNY",
                max_amount=version.max_amount,
            )
        if not version.rate_min <= body.rate <= version.rate_max:
            raise BusinessRuleViolation(
                "rate-outside-product-range",
                "The rate is outside the product's range",
                f"{body.rate}% is outside {version.rate_min}%..{version.rate_max}%",
                rate_min=version.rate_min,
                rate_max=version.rate_max,
            )
        if term > version.term_months:
            raise BusinessRuleViolation(
                "term-above-product",
                "The term is longer than the product allows",
                f"{term} months asked, the product allows {version.term_months}",
                term_months=version.term_months,
            )
        app.approved_amount = body.amount
        app.approved_rate = body.rate
        app.approved_term_months = term
        app.decided_at = datetime.now(UTC)

    def reject(app: LoanApplication, _: ProductVersion) -> None:
        app.reason_codes = [c.value for c in body.reason_codes]
        app.decided_at = datetime.now(UTC)

    if body.decision == "approve":
        return await _transition(session, principal, app_id, Action.APPROVE, body.note, approve)
    return await _transition(session, principal, app_id, Action.REJECT, body.note, reject)


async def withdraw(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID, note: str | None
) -> ApplicationOut:
    return await _transition(session, principal, app_id, Action.WITHDRAW, note)


async def disburse(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID, body: DisburseIn
) -> ApplicationOut:
    def paid_out(app: LoanApplication, _: ProductVersion) -> None:
        assert app.approved_amount is not None
        amount = body.amount or app.approved_amount
        if amount > app.approved_amount:
            raise BusinessRuleViolation(
                "amount-above-approved",
                "The amount is above the approved amount",
                f"{amount} CNY is above the approved {app.approved_amount} CNY",
                approved_amount=app.approved_amount,
            )
        app.disbursed_amount = amount
        app.disbursed_at = datetime.now(UTC)

    return await _transition(session, principal, app_id, Action.DISBURSE, body.note, paid_out)


async def close(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID, note: str | None
) -> ApplicationOut:
    def closed(app: LoanApplication, _: ProductVersion) -> None:
        app.closed_at = datetime.now(UTC)

    return await _transition(session, principal, app_id, Action.CLOSE, note, closed)
