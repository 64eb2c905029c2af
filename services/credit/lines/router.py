"""Offers to an enterprise, and what bank systems may read of its lines and approvals."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Date, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.common import NoPublishedEvaluation, UnknownEnterprise
from services.credit.consents import service as consents
from services.credit.lines.rules import ANY_PRODUCT, LineRule, ineligibility
from services.credit.lines.schemas import (
    ApplicationAmount,
    ApprovedAmounts,
    LineOut,
    Offer,
    Offers,
    RuleEvidence,
    ScoreEvidence,
)
from services.credit.lines.service import PublishedRun, current_evaluation, facts, score_of
from services.credit.models import (
    Bank,
    CreditLine,
    CreditProduct,
    EnterpriseScore,
    Evaluation,
    LoanApplication,
    ProductVersion,
)
from shared.auth.deps import CheckedUSCC, CurrentPrincipal, VisibleUSCC, ensure_enterprise_access
from shared.auth.principal import PrincipalKind
from shared.db import CommittingRoute, DbSession
from shared.errors import Forbidden, problem_responses

router = APIRouter(prefix="/v1/enterprises", tags=["lines"], route_class=CommittingRoute)

Sort = Literal["amount", "-amount", "rate", "-rate"]


def evidence(evaluation: Evaluation | PublishedRun, score: EnterpriseScore) -> ScoreEvidence:
    return ScoreEvidence(
        run_id=evaluation.run_id,
        period=evaluation.period,
        model_version=evaluation.model_version,
        stage=score.stage,
        scored=score.scored,
        exclusion=score.exclusion,
        total=score.total,
        rank=score.rank,
        cohort_size=score.cohort_size,
        percentile=score.percentile,
        tier=score.tier,
    )


def rule_evidence(version: ProductVersion, band: int) -> RuleEvidence:
    rule = LineRule.model_validate(version.line_rule)
    return RuleEvidence(
        basis=rule.basis,
        band=band,
        band_min=rule.bands[band].min if 0 <= band < len(rule.bands) else None,
        base_amount=rule.base_amount,
        max_amount=version.max_amount,
    )


async def _scored(session: AsyncSession, uscc: str) -> tuple[PublishedRun, EnterpriseScore]:
    evaluation = await current_evaluation(session)
    if evaluation is None:
        raise NoPublishedEvaluation("No evaluation has been published to the credit service yet")
    score = await score_of(session, evaluation.run_id, uscc)
    if score is None:
        raise UnknownEnterprise(
            f"{uscc} is not in the published evaluation of {evaluation.period}", uscc=uscc
        )
    return evaluation, score


def _lines_with_versions(third: Any) -> Select[Any]:
    """Lines with the product version each was computed under, and one more entity."""
    return (
        select(CreditLine, ProductVersion, third)
        .join(CreditProduct, CreditProduct.id == CreditLine.product_id)
        .join(
            ProductVersion,
            (ProductVersion.product_id == CreditLine.product_id)
            & (ProductVersion.version == CreditLine.product_version),
        )
    )


# Built once (with bound parameters), not per request: constructing the ORM statement was a
# few per cent of an offer's CPU (py-spy).
_TODAY = bindparam("today", type_=Date)
_OFFERS = (
    _lines_with_versions(Bank)
    .join(Bank, Bank.id == CreditProduct.bank_id)
    .where(
        CreditLine.uscc == bindparam("uscc"),
        CreditLine.run_id == bindparam("run_id"),
        CreditProduct.status == "published",
        CreditProduct.published_version == CreditLine.product_version,
        (ProductVersion.valid_from.is_(None)) | (ProductVersion.valid_from <= _TODAY),
        (ProductVersion.valid_to.is_(None)) | (ProductVersion.valid_to >= _TODAY),
    )
    # Items of equal sort keys keep this order (the hot read's, `hot.OFFERS_SQL`).
    .order_by(CreditLine.product_id)
)


@router.get(
    "/{uscc}/offers", response_model=Offers, responses=problem_responses(401, 403, 404, 409, 422)
)
async def offers(
    session: DbSession,
    uscc: VisibleUSCC,
    sort: Annotated[Sort, Query(description="amount or rate (rate_min); '-' for descending")] = (
        "-amount"
    ),
) -> Offers:
    """Every product the enterprise can use today, with its pre-approved amount."""
    evaluation, score = await _scored(session, uscc)
    stmt_args = {"uscc": uscc, "run_id": evaluation.run_id, "today": date.today()}
    items = [
        Offer(
            product_id=line.product_id,
            product_version=line.product_version,
            product_name=version.name,
            bank_id=bank.id,
            bank_name=bank.name,
            hotline=bank.hotline,
            amount=line.amount,
            rate_min=version.rate_min,
            rate_max=version.rate_max,
            term_months=version.term_months,
            guarantee=version.guarantee,
            rule=rule_evidence(version, line.band),
        )
        for line, version, bank in await session.execute(_OFFERS, stmt_args)
    ]
    key = sort.lstrip("-")
    items.sort(
        key=lambda o: (o.amount if key == "amount" else o.rate_min, o.bank_id),
        reverse=sort.startswith("-"),
    )
    reason = None
    if not items:
        no_line = ineligibility(facts(score), ANY_PRODUCT)
        reason = no_line.value if no_line else "no-eligible-product"
    return Offers(
        uscc=uscc,
        name=score.name,
        eligible=bool(items),
        reason=reason,
        score=evidence(evaluation, score),
        items=items,
        total=len(items),
    )


class NoConsentInForce(Forbidden):
    slug = "no-consent"
    title = "No consent of the enterprise to your bank is in force"


async def _consented_uscc(
    principal: CurrentPrincipal, uscc: CheckedUSCC, session: DbSession
) -> str:
    if principal.kind is PrincipalKind.BANK:
        assert principal.bank_id is not None
        if not await consents.bank_may_see(session, uscc, principal.bank_id):
            raise NoConsentInForce(
                "The enterprise has no application open with your bank and has not consented "
                "to it, or that consent has ended",
                uscc=uscc,
            )
    else:
        ensure_enterprise_access(principal, uscc)
    return uscc


ConsentedUSCC = Annotated[str, Depends(_consented_uscc)]
"""`VisibleUSCC`, and for a bank an enterprise whose consent to it is in force."""


@router.get(
    "/{uscc}/approved-amounts",
    response_model=ApprovedAmounts,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approved_amounts(
    session: DbSession, principal: CurrentPrincipal, uscc: ConsentedUSCC
) -> ApprovedAmounts:
    """For bank systems: the enterprise's pre-approved lines and approvals with this bank.

    A bank reads only while a consent of the enterprise to it is in force (an open
    application to it, its loan until closed, or an explicit consent), and only its own
    lines and applications; government and services read all.
    """
    evaluation, score = await _scored(session, uscc)
    own_bank = principal.bank_id if principal.kind is PrincipalKind.BANK else None
    lines_stmt = (
        _lines_with_versions(CreditProduct)
        .where(CreditLine.uscc == uscc, CreditLine.run_id == evaluation.run_id)
        .order_by(CreditProduct.bank_id, CreditLine.product_id)
    )
    apps_stmt = (
        select(LoanApplication)
        .where(LoanApplication.uscc == uscc)
        .order_by(LoanApplication.created_at, LoanApplication.id)
    )
    if own_bank is not None:
        lines_stmt = lines_stmt.where(CreditProduct.bank_id == own_bank)
        apps_stmt = apps_stmt.where(LoanApplication.bank_id == own_bank)
    lines = [
        LineOut(
            product_id=line.product_id,
            product_version=line.product_version,
            product_name=version.name,
            bank_id=product.bank_id,
            amount=line.amount,
            rule=rule_evidence(version, line.band),
        )
        for line, version, product in await session.execute(lines_stmt)
    ]
    apps = [
        ApplicationAmount(
            id=a.id,
            bank_id=a.bank_id,
            product_id=a.product_id,
            product_version=a.product_version,
            status=a.status,
            requested_amount=a.requested_amount,
            approved_amount=a.approved_amount,
            approved_rate=a.approved_rate,
            approved_term_months=a.approved_term_months,
            disbursed_amount=a.disbursed_amount,
        )
        for a in await session.scalars(apps_stmt)
    ]
    return ApprovedAmounts(
        uscc=uscc,
        name=score.name,
        score=evidence(evaluation, score),
        lines=lines,
        applications=apps,
        pre_approved_total=sum(ln.amount for ln in lines),
        approved_total=sum(
            a.approved_amount or 0 for a in apps if a.status in ("approved", "disbursed", "closed")
        ),
        disbursed_total=sum(a.disbursed_amount or 0 for a in apps),
    )
