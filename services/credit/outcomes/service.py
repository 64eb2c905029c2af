"""Outcome reports: only the lending bank writes, append-only and idempotent; who reads what.

- A bank reports on its own disbursed loans; another bank's loan does not exist for it (404).
- An enterprise reads its own loans' outcomes; a bank its own loans'.
- The government reads aggregates only (loan performance is the bank's and the firm's credit
  information, 征信: the programme needs the rates, not who defaulted).
- The scoring service reads the per-enterprise flags it validates the model on.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.common import BusinessRuleViolation, bank_of
from services.credit.lines.service import current_evaluation
from services.credit.models import LoanApplication, LoanOutcome
from services.credit.outcomes import repository
from services.credit.outcomes.schemas import (
    BankSummary,
    LoanOutcomes,
    OutcomeIn,
    OutcomeOut,
    OutcomeState,
    OutcomeSummary,
    Performance,
    PerformanceOut,
    StateCount,
)
from shared.auth.deps import actor
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.pagination import Page, PageParams

LOAN_STATUSES = ("disbursed", "closed")


class IdempotencyKeyReused(Unprocessable):
    slug = "idempotency-key-reused"
    title = "The Idempotency-Key was used for a different request"


class ConflictingReport(Conflict):
    slug = "conflicting-outcome"
    title = "This loan already has a different report for that date and state"


class NotALoan(Conflict):
    slug = "not-a-loan"
    title = "Only a disbursed loan has outcomes"


class AggregateOnly(Forbidden):
    slug = "aggregate-only"
    title = "The government reads loan outcomes in aggregate"


def to_out(o: LoanOutcome | Any) -> OutcomeOut:
    return OutcomeOut.model_validate(o, from_attributes=True)


def window(period: int) -> tuple[date, date]:
    """The observation window of a period's scores: the calendar year after it."""
    return date(period + 1, 1, 1), date(period + 1, 12, 31)


def _hash(body: OutcomeIn) -> str:
    return hashlib.sha256(
        json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def _check(app: LoanApplication, body: OutcomeIn, today: date) -> None:
    if app.status not in LOAN_STATUSES:
        raise NotALoan(f"Application {app.id} is {app.status}", status=app.status)
    if body.as_of > today:
        raise BusinessRuleViolation(
            "outcome-in-future", "The date is in the future", f"{body.as_of} is after {today}"
        )
    first = window(app.period)[0]
    if body.as_of < first:
        raise BusinessRuleViolation(
            "outcome-before-loan",
            "The date is before the loan could exist",
            f"A loan granted on the {app.period} scores performs from {first}",
            earliest=first.isoformat(),
        )
    if app.disbursed_amount is not None and body.outstanding > app.disbursed_amount:
        raise BusinessRuleViolation(
            "outstanding-above-disbursed",
            "The principal outstanding is above the amount disbursed",
            f"{body.outstanding} CNY > {app.disbursed_amount} CNY",
            disbursed_amount=app.disbursed_amount,
        )
    if body.state is OutcomeState.REPAID and body.outstanding != 0:
        raise BusinessRuleViolation(
            "repaid-with-outstanding", "A repaid loan has nothing outstanding", "Send 0"
        )


async def _replay(
    session: AsyncSession, app: LoanApplication, bank: str, key: str | None, body: OutcomeIn
) -> LoanOutcome:
    """The existing report a conflicting insert ran into, if it is this very report."""
    digest = _hash(body)
    if key is not None:
        first = await repository.by_key(session, bank, key)
        if first is not None:
            if first.request_hash != digest or first.application_id != app.id:
                raise IdempotencyKeyReused("Use a new Idempotency-Key for a different report")
            return first
    same = await repository.by_natural_key(session, app.id, body.as_of, body.state.value)
    if same is None or same.request_hash != digest:
        raise ConflictingReport(
            f"{app.id} was reported {body.state.value} on {body.as_of} differently",
            existing=to_out(same).model_dump(mode="json") if same else None,
        )
    return same


async def report(
    session: AsyncSession,
    principal: Principal,
    application_id: uuid.UUID,
    key: str | None,
    body: OutcomeIn,
) -> tuple[OutcomeOut, bool]:
    """(the report, replayed)."""
    bank = bank_of(principal)
    app = await session.scalar(
        select(LoanApplication).where(LoanApplication.id == application_id).with_for_update()
    )
    if app is None or app.bank_id != bank:
        raise NotFound(f"No loan {application_id}")
    _check(app, body, datetime.now(UTC).date())
    row = await repository.append(
        session,
        {
            "application_id": app.id,
            "bank_id": bank,
            "uscc": app.uscc,
            "period": app.period,
            "state": body.state.value,
            "as_of": body.as_of,
            "outstanding": body.outstanding,
            "synthetic": body.synthetic,
            "reported_by": actor(principal),
            "idempotency_key": key,
            "request_hash": _hash(body),
        },
    )
    if row is not None:
        return to_out(row), False
    return to_out(await _replay(session, app, bank, key, body)), True


async def _loan(session: AsyncSession, principal: Principal, app_id: uuid.UUID) -> LoanApplication:
    if principal.kind is PrincipalKind.GOVERNMENT:
        raise AggregateOnly("Read GET /v1/outcomes/summary")
    app = await session.get(LoanApplication, app_id)
    visible = app is not None and (
        (principal.kind is PrincipalKind.BANK and app.bank_id == principal.bank_id)
        or (principal.kind is PrincipalKind.ENTERPRISE and app.uscc == principal.uscc)
    )
    if app is None or not visible or app.status not in LOAN_STATUSES:
        raise NotFound(f"No loan {app_id}")
    return app


async def loan_outcomes(
    session: AsyncSession, principal: Principal, app_id: uuid.UUID
) -> LoanOutcomes:
    app = await _loan(session, principal, app_id)
    rows = [to_out(r) for r in await repository.history(session, app.id)]
    return LoanOutcomes(
        application_id=app.id,
        bank_id=app.bank_id,
        uscc=app.uscc,
        period=app.period,
        disbursed_amount=app.disbursed_amount,
        latest=max(rows, key=lambda r: (r.as_of, r.id)) if rows else None,
        history=rows,
    )


def _scope(principal: Principal) -> tuple[str, dict[str, Any]]:
    """The rows the caller may read, as SQL: its bank's, its own, or all."""
    if principal.kind is PrincipalKind.BANK:
        return "bank_id = :bank", {"bank": bank_of(principal)}
    if principal.kind is PrincipalKind.ENTERPRISE:
        return "uscc = :uscc", {"uscc": principal.uscc}
    return "true", {}


async def list_latest(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    period: int | None,
    state: OutcomeState | None,
) -> Page[OutcomeOut]:
    if principal.kind not in (PrincipalKind.BANK, PrincipalKind.ENTERPRISE):
        raise AggregateOnly("Read GET /v1/outcomes/summary")
    where, args = _scope(principal)
    if period is not None:
        where, args = where + " AND period = :period", {**args, "period": period}
    rows, total = await repository.latest(
        session, where, args, params.limit, params.offset, state.value if state else None
    )
    return Page[OutcomeOut].of([to_out(r) for r in rows], total, params)


async def summary(
    session: AsyncSession, principal: Principal, period: int | None
) -> OutcomeSummary:
    if principal.kind not in (PrincipalKind.GOVERNMENT, PrincipalKind.BANK):
        raise Forbidden("Outcome aggregates are for the government and the banks")
    where, args = _scope(principal)
    if period is not None:
        where, args = where + " AND period = :period", {**args, "period": period}
    counts = await repository.state_counts(session, where, args)
    states = [
        StateCount(state=OutcomeState(r["state"]), loans=r["loans"], outstanding=r["outstanding"])
        for r in counts
    ]
    bad = observed = 0
    by_bank: dict[str, BankSummary] = {}
    if period is not None:
        ws, we = window(period)
        perf = await repository.performance(session, where, {**args, "ws": ws, "we": we})
        firms: dict[str, bool] = {}
        for r in perf:
            firms[r["uscc"]] = firms.get(r["uscc"], False) or bool(r["bad"])
            b = by_bank.setdefault(r["bank_id"], BankSummary(bank_id=r["bank_id"], loans=0, bad=0))
            b.loans += r["loans"]
            b.bad += int(bool(r["bad"]))
        observed, bad = len(firms), sum(firms.values())
    return OutcomeSummary(
        period=period,
        loans=sum(s.loans for s in states),
        synthetic_loans=sum(int(r["synthetic"]) for r in counts),
        states=sorted(states, key=lambda s: s.state.value),
        bad=bad,
        observed=observed,
        bad_rate=bad / observed if observed else None,
        by_bank=sorted(by_bank.values(), key=lambda b: b.bank_id)
        if principal.kind is PrincipalKind.GOVERNMENT and period is not None
        else None,
    )


async def performance(session: AsyncSession, principal: Principal, period: int) -> PerformanceOut:
    if principal.kind is not PrincipalKind.SERVICE:
        raise Forbidden("Per-enterprise outcomes are for the scoring service's validation")
    ws, we = window(period)
    rows = await repository.performance(
        session, "period = :period", {"period": period, "ws": ws, "we": we}
    )
    firms: dict[str, Performance] = {}
    for r in rows:
        p = firms.get(r["uscc"])
        if p is None:
            firms[r["uscc"]] = Performance(
                uscc=r["uscc"], loans=r["loans"], bad=bool(r["bad"]), synthetic=bool(r["synthetic"])
            )
        else:
            p.loans += r["loans"]
            p.bad = p.bad or bool(r["bad"])
            p.synthetic = p.synthetic or bool(r["synthetic"])
    items = list(firms.values())
    approved, rejected = await repository.decisions(session, period)
    current = await current_evaluation(session)
    lines_run = current.run_id if current is not None and current.period == period else None
    lines = await repository.with_line(session, lines_run) if lines_run else []
    snapshot = hashlib.sha256(
        json.dumps(
            [[i.model_dump() for i in items], approved, rejected, str(lines_run), lines],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return PerformanceOut(
        period=period,
        window_start=ws,
        window_end=we,
        snapshot=snapshot,
        last_outcome_id=max((r["last_id"] for r in rows), default=None),
        synthetic=any(i.synthetic for i in items),
        items=items,
        approved=approved,
        rejected=rejected,
        lines_run_id=lines_run,
        with_line=lines,
    )
