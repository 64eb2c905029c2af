"""Consents: which bank may see an enterprise's current score and amounts, why, until when.

The rule (docs/credit.md, "Consents"), after PIPL's specific and revocable consent:
- applying gives an `application` consent scoped to that application: its bank, to decide on
  it and manage the loan it leads to. It ends with the application when no loan follows
  (withdrawn, rejected), when the loan is closed, and once disbursed at the latest when the
  loan's term ends. The enterprise ends it by withdrawing the application (until
  disbursement); after that the loan contract is what the bank relies on.
- an `explicit` consent, given on its own, lasts until the enterprise withdraws it, or until
  the expiry it chose.
A bank reads only while a consent to it is in force. Ended consents are kept, with when and
why they ended, and shown to the enterprise on request.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import ColumnElement, DateTime, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.applications.lifecycle import Status
from services.credit.common import BusinessRuleViolation, actor
from services.credit.consents.schemas import (
    SCOPE,
    Basis,
    ConsentIn,
    ConsentOut,
    ConsentStatus,
    EndReason,
)
from services.credit.models import Bank, Consent, EnterpriseScore, LoanApplication
from shared.auth.principal import Principal
from shared.errors import Conflict, NotFound
from shared.pagination import Page, PageParams

# Dates in the summaries are the enterprise's: China Standard Time, which has no DST.
CST = timezone(timedelta(hours=8), "CST")

# An explicit consent's chosen expiry; one meant to last longer has none (until withdrawn).
MAX_EXPIRY = timedelta(days=3653)
EXPLICIT_IN_FORCE = "basis = 'explicit' AND ended_at IS NULL"

_END_OF_APPLICATION = {
    Status.WITHDRAWN: EndReason.APPLICATION_WITHDRAWN,
    Status.REJECTED: EndReason.APPLICATION_REJECTED,
    Status.CLOSED: EndReason.LOAN_CLOSED,
}


class ConsentInUse(Conflict):
    slug = "consent-in-use"
    title = "The consent ends with its application"


def in_force() -> ColumnElement[bool]:
    """Not ended and not expired, at the transaction's time."""
    return Consent.ended_at.is_(None) & (
        Consent.expires_at.is_(None) | (Consent.expires_at > func.now())
    )


async def bank_may_see(session: AsyncSession, uscc: str, bank_id: str) -> bool:
    found = await session.scalar(
        select(Consent.id)
        .where(Consent.uscc == uscc, Consent.bank_id == bank_id, in_force())
        .limit(1)
    )
    return found is not None


async def record_for_application(
    session: AsyncSession, principal: Principal, application: LoanApplication
) -> None:
    """Applying is consent that the application's bank sees the score, for that application."""
    session.add(
        Consent(
            uscc=application.uscc,
            bank_id=application.bank_id,
            basis=Basis.APPLICATION.value,
            application_id=application.id,
            granted_by=actor(principal),
        )
    )
    await session.flush()


async def follow_application(session: AsyncSession, application: LoanApplication) -> None:
    """The application's consent after its transition (in the transition's transaction)."""
    status = Status(application.status)
    of_application = (Consent.application_id == application.id) & Consent.ended_at.is_(None)
    if status is Status.DISBURSED:
        assert application.disbursed_at is not None
        months = application.approved_term_months or application.requested_term_months
        # PostgreSQL's calendar arithmetic: 31 January + 1 month is 28/29 February.
        disbursed = literal(application.disbursed_at, DateTime(timezone=True))
        ends = disbursed + func.make_interval(0, months)
        await session.execute(update(Consent).where(of_application).values(expires_at=ends))
    elif status in _END_OF_APPLICATION:
        # `updated_at` is the time of the transition that ended the application.
        await session.execute(
            update(Consent)
            .where(of_application)
            .values(ended_at=application.updated_at, end_reason=_END_OF_APPLICATION[status].value)
        )


def _status(consent: Consent, now: datetime) -> ConsentStatus:
    if consent.ended_at is not None:
        return ConsentStatus.ENDED
    if consent.expires_at is not None and consent.expires_at <= now:
        return ConsentStatus.EXPIRED
    return ConsentStatus.IN_FORCE


def _day(at: datetime) -> str:
    return at.astimezone(CST).date().isoformat()


_REASON_EN = {
    EndReason.WITHDRAWN: "you withdrew it",
    EndReason.APPLICATION_WITHDRAWN: "you withdrew the application",
    EndReason.APPLICATION_REJECTED: "the bank rejected the application",
    EndReason.LOAN_CLOSED: "the loan was closed",
    EndReason.EXPIRED: "it expired",
}
_REASON_ZH = {
    EndReason.WITHDRAWN: "贵企业撤回了此授权",
    EndReason.APPLICATION_WITHDRAWN: "贵企业撤回了贷款申请",
    EndReason.APPLICATION_REJECTED: "银行拒绝了贷款申请",
    EndReason.LOAN_CLOSED: "贷款已结清",
    EndReason.EXPIRED: "授权已到期",
}


def describe(consent: Consent, bank: Bank, status: ConsentStatus) -> tuple[str, str]:
    """The consent in words a legal person understands (English, Chinese)."""
    if status is not ConsentStatus.IN_FORCE:
        if consent.ended_at is not None and consent.end_reason is not None:
            at, reason = consent.ended_at, EndReason(consent.end_reason)
        else:
            assert consent.expires_at is not None
            at, reason = consent.expires_at, EndReason.EXPIRED
        given_en = (
            f"by applying (application {consent.application_id})"
            if consent.basis == Basis.APPLICATION
            else "on its own"
        )
        given_zh = (
            f"因提交贷款申请（{consent.application_id}）而作出"
            if consent.basis == Basis.APPLICATION
            else "单独作出"
        )
        return (
            f"Ended on {_day(at)}, because {_REASON_EN[reason]}: {bank.name_en} no longer sees "
            f"your score or pre-approved amounts under this consent, which you had given "
            f"{given_en}.",
            f"已于{_day(at)}终止（{_REASON_ZH[reason]}）：{bank.name}不再能依据此授权查看贵企业的"
            f"创新积分和预授信额度。此授权由贵企业{given_zh}。",
        )
    sees_en = (
        f"{bank.name_en} may see your current innovation score (total, rank, tier, stage) and "
        f"your pre-approved amounts with its products"
    )
    sees_zh = (
        f"{bank.name}可查看贵企业当前的创新积分（总分、排名、等级、发展阶段）"
        f"及在该行产品下的预授信额度"
    )
    if consent.basis == Basis.APPLICATION:
        en = (
            f"{sees_en}, to decide on your application {consent.application_id} and, if it "
            f"lends, to manage the loan. You gave this consent by applying. It ends when the "
            f"application is withdrawn or rejected, or when the loan is closed"
        )
        zh = (
            f"{sees_zh}，用于审批贵企业的贷款申请（{consent.application_id}），并在放款后用于贷后管理。"
            f"此授权因贵企业提交申请而作出，申请被撤回或被拒绝、贷款结清时自动终止"
        )
        if consent.expires_at is not None:
            en += f", and at the latest on {_day(consent.expires_at)}, when the loan's term ends"
            zh += f"，最迟于贷款到期日{_day(consent.expires_at)}终止"
    else:
        en = f"{sees_en}. You gave this consent on its own; it lasts until you withdraw it"
        zh = f"{sees_zh}。此授权由贵企业单独作出，在贵企业撤回前有效"
        if consent.expires_at is not None:
            en += f", and ends by itself on {_day(consent.expires_at)}"
            zh += f"，并于{_day(consent.expires_at)}自动到期"
    return en + ".", zh + "。"


def to_out(consent: Consent, bank: Bank, now: datetime) -> ConsentOut:
    status = _status(consent, now)
    summary, summary_zh = describe(consent, bank, status)
    return ConsentOut(
        id=consent.id,
        uscc=consent.uscc,
        bank_id=consent.bank_id,
        bank_name=bank.name,
        basis=Basis(consent.basis),
        application_id=consent.application_id,
        scope=SCOPE,
        status=status,
        granted_by=consent.granted_by,
        granted_at=consent.granted_at,
        expires_at=consent.expires_at,
        ended_at=consent.ended_at,
        end_reason=EndReason(consent.end_reason) if consent.end_reason else None,
        summary=summary,
        summary_zh=summary_zh,
    )


async def _now(session: AsyncSession) -> datetime:
    now = await session.scalar(select(func.now()))
    assert isinstance(now, datetime)
    return now


async def list_consents(
    session: AsyncSession, uscc: str, params: PageParams, include_ended: bool
) -> Page[ConsentOut]:
    stmt = select(Consent, Bank).join(Bank, Bank.id == Consent.bank_id)
    stmt = stmt.where(Consent.uscc == uscc)
    if not include_ended:
        stmt = stmt.where(in_force())
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.execute(
        stmt.order_by(Consent.bank_id, Consent.granted_at.desc(), Consent.id)
        .limit(params.limit)
        .offset(params.offset)
    )
    now = await _now(session)
    return Page[ConsentOut].of([to_out(c, b, now) for c, b in rows], total, params)


async def list_for_bank(
    session: AsyncSession, bank_id: str, params: PageParams
) -> Page[ConsentOut]:
    """The consents in force to a bank, newest first, with the enterprise's name as the
    current published evaluation has it: which enterprises the bank may look at now."""
    from services.credit.lines.service import current_evaluation  # no import cycle at load

    stmt = select(Consent, Bank).join(Bank, Bank.id == Consent.bank_id)
    stmt = stmt.where(Consent.bank_id == bank_id, in_force())
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(
        await session.execute(
            stmt.order_by(Consent.granted_at.desc(), Consent.id)
            .limit(params.limit)
            .offset(params.offset)
        )
    )
    names: dict[str, str] = {}
    evaluation = await current_evaluation(session)
    if evaluation is not None and rows:
        found = await session.execute(
            select(EnterpriseScore.uscc, EnterpriseScore.name).where(
                EnterpriseScore.run_id == evaluation.run_id,
                EnterpriseScore.uscc.in_({c.uscc for c, _ in rows}),
            )
        )
        names = {uscc: name for uscc, name in found.tuples()}
    now = await _now(session)
    items = [
        to_out(c, b, now).model_copy(update={"enterprise_name": names.get(c.uscc)}) for c, b in rows
    ]
    return Page[ConsentOut].of(items, total, params)


async def _explicit(session: AsyncSession, uscc: str, bank_id: str) -> Consent | None:
    consent: Consent | None = await session.scalar(
        select(Consent)
        .where(
            Consent.uscc == uscc,
            Consent.bank_id == bank_id,
            Consent.basis == Basis.EXPLICIT.value,
            Consent.ended_at.is_(None),
        )
        .with_for_update()
    )
    return consent


async def grant(
    session: AsyncSession, principal: Principal, body: ConsentIn
) -> tuple[ConsentOut, bool]:
    """The explicit consent to `body.bank_id`, and whether it is new (else: expiry replaced)."""
    assert principal.uscc is not None
    uscc = principal.uscc
    bank = await session.get(Bank, body.bank_id)
    if bank is None:
        raise NotFound(f"No bank {body.bank_id}")
    now = await _now(session)
    if body.expires_at is not None and body.expires_at <= now:
        raise BusinessRuleViolation(
            "expiry-in-the-past",
            "A consent cannot expire before it is given",
            f"expires_at {body.expires_at.isoformat()} is not in the future",
        )
    if body.expires_at is not None and body.expires_at > now + MAX_EXPIRY:
        # Also keeps dates near year 9999 (which overflow in UTC) away from the database.
        raise BusinessRuleViolation(
            "expiry-too-far",
            "A consent's expiry is at most ten years ahead",
            "Omit expires_at for a consent that lasts until you withdraw it",
        )
    current = await _explicit(session, uscc, bank.id)
    if current is not None and current.expires_at is not None and current.expires_at <= now:
        # Expired: it stays on record as such, and the new grant is a new consent.
        current.ended_at = current.expires_at
        current.end_reason = EndReason.EXPIRED.value
        await session.flush()
        current = None
    created = False
    if current is None:
        # A concurrent grant waits on the partial unique index, then finds this one.
        created = (
            await session.scalar(
                insert(Consent)
                .values(
                    uscc=uscc,
                    bank_id=bank.id,
                    basis=Basis.EXPLICIT.value,
                    granted_by=actor(principal),
                    expires_at=body.expires_at,
                )
                .on_conflict_do_nothing(
                    index_elements=["uscc", "bank_id"], index_where=text(EXPLICIT_IN_FORCE)
                )
                .returning(Consent.id)
            )
            is not None
        )
        current = await _explicit(session, uscc, bank.id)
        assert current is not None
    current.expires_at = body.expires_at
    await session.flush()
    return to_out(current, bank, now), created


async def withdraw(session: AsyncSession, principal: Principal, bank_id: str) -> None:
    """End the explicit consent to `bank_id` (PIPL: consent can be withdrawn).

    An application's consent is not withdrawn here: it ends with the application, which the
    enterprise may withdraw until the credit is disbursed.
    """
    assert principal.uscc is not None
    uscc = principal.uscc
    explicit = await _explicit(session, uscc, bank_id)
    now = await _now(session)
    if explicit is not None and _status(explicit, now) is ConsentStatus.IN_FORCE:
        explicit.ended_at = now
        explicit.end_reason = EndReason.WITHDRAWN.value
        await session.flush()
        return
    application_id = await session.scalar(
        select(Consent.application_id)
        .where(Consent.uscc == uscc, Consent.bank_id == bank_id, in_force())
        .order_by(Consent.granted_at)
        .limit(1)
    )
    if application_id is not None:
        raise ConsentInUse(
            f"The consent {bank_id} holds comes from application {application_id}: it ends "
            "when the application is withdrawn or decided, or its loan closed",
            application_id=str(application_id),
        )
    raise NotFound(f"No consent to {bank_id} is in force")
