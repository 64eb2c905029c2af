"""Government statistics: applications and amounts by bank and stage, base-line coverage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.lines.schemas import EvaluationRef
from services.credit.lines.service import current_evaluation
from services.credit.settings import CreditSettings
from shared.auth.deps import GovernmentOrServiceCaller
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/stats", tags=["statistics"], route_class=CommittingRoute)

_FIGURES = """
    count(a.id) AS applications,
    count(DISTINCT a.uscc) AS enterprises_applied,
    coalesce(sum(a.requested_amount), 0) AS amount_requested,
    count(a.id) FILTER (WHERE a.status IN ('approved', 'disbursed', 'closed')) AS approved,
    coalesce(sum(a.approved_amount)
        FILTER (WHERE a.status IN ('approved', 'disbursed', 'closed')), 0) AS amount_approved,
    count(a.id) FILTER (WHERE a.status IN ('disbursed', 'closed')) AS granted,
    count(DISTINCT a.uscc) FILTER (WHERE a.status IN ('disbursed', 'closed'))
        AS enterprises_granted,
    coalesce(sum(a.disbursed_amount), 0) AS amount_granted,
    count(a.id) FILTER (WHERE a.status = 'rejected') AS rejected,
    count(a.id) FILTER (WHERE a.status = 'withdrawn') AS withdrawn,
    count(a.id) FILTER (WHERE a.status IN ('submitted', 'under_review')) AS pending
"""


class Figures(BaseModel):
    applications: int = 0
    enterprises_applied: int = 0
    amount_requested: int = 0
    approved: int = 0
    amount_approved: int = 0
    granted: int = Field(0, description="Applications disbursed (credit granted)")
    enterprises_granted: int = 0
    amount_granted: int = 0
    rejected: int = 0
    withdrawn: int = 0
    pending: int = 0


class BankFigures(Figures):
    bank_id: str
    bank_name: str


class Coverage(BaseModel):
    base_amount: int
    scored_enterprises: int
    covered_enterprises: int = Field(description="Scored enterprises with a line >= the base")
    ratio: float | None
    excluded_enterprises: int = Field(description="Negative list or otherwise excluded")
    enterprises_with_line: int
    pre_approved_total: int = Field(description="Sum of each enterprise's largest line")


class StageFigures(Figures):
    stage: str
    coverage: Coverage


class Stats(BaseModel):
    evaluation: EvaluationRef | None
    totals: Figures
    coverage: Coverage
    by_bank: list[BankFigures]
    by_stage: list[StageFigures]
    reason_codes: dict[str, int]


def _figures(row: Any) -> dict[str, int]:
    return {k: int(getattr(row, k)) for k in Figures.model_fields}


async def _coverage(
    session: AsyncSession, run_id: Any, base: int
) -> tuple[Coverage, dict[str, Coverage]]:
    rows = await session.execute(
        text(
            """
            WITH best AS (
                SELECT uscc, max(amount) AS amount FROM credit.credit_lines
                WHERE run_id = :run GROUP BY uscc
            )
            SELECT coalesce(s.stage, 'unstaged') AS stage,
                   count(*) FILTER (WHERE s.scored) AS scored,
                   count(*) FILTER (WHERE s.scored AND b.amount >= :base) AS covered,
                   count(*) FILTER (WHERE s.exclusion IS NOT NULL) AS excluded,
                   count(b.uscc) AS with_line,
                   coalesce(sum(b.amount), 0) AS pre_approved
            FROM credit.enterprise_scores s LEFT JOIN best b ON b.uscc = s.uscc
            WHERE s.run_id = :run
            GROUP BY 1 ORDER BY 1
            """
        ),
        {"run": run_id, "base": base},
    )
    per_stage: dict[str, Coverage] = {}
    totals = [0, 0, 0, 0, 0]
    for r in rows:
        values = [int(r.scored), int(r.covered), int(r.excluded), int(r.with_line)]
        values.append(int(r.pre_approved))
        per_stage[r.stage] = _coverage_of(base, *values)
        totals = [t + v for t, v in zip(totals, values, strict=True)]
    return _coverage_of(base, *totals), per_stage


def _coverage_of(
    base: int, scored: int, covered: int, excluded: int, with_line: int, total: int
) -> Coverage:
    return Coverage(
        base_amount=base,
        scored_enterprises=scored,
        covered_enterprises=covered,
        ratio=round(covered / scored, 4) if scored else None,
        excluded_enterprises=excluded,
        enterprises_with_line=with_line,
        pre_approved_total=total,
    )


@router.get("", response_model=Stats, responses=problem_responses(401, 403))
async def stats(session: DbSession, _: GovernmentOrServiceCaller, request: Request) -> Stats:
    """The figures the pilot reports: who applied, how much was approved and granted."""
    settings: CreditSettings = request.app.state.settings
    base = settings.base_line_amount
    evaluation = await current_evaluation(session)
    totals_row = (
        await session.execute(text(f"SELECT {_FIGURES} FROM credit.applications a"))
    ).one()
    bank_rows = await session.execute(
        text(
            f"SELECT b.id AS bank_id, b.name AS bank_name, {_FIGURES} "
            "FROM credit.banks b LEFT JOIN credit.applications a ON a.bank_id = b.id "
            "GROUP BY b.id, b.name ORDER BY b.id"
        )
    )
    by_bank = []
    for r in bank_rows:
        by_bank.append(BankFigures(bank_id=r.bank_id, bank_name=r.bank_name, **_figures(r)))
    stage_rows = await session.execute(
        text(f"SELECT a.stage AS stage, {_FIGURES} FROM credit.applications a GROUP BY a.stage")
    )
    stage_figures = {r.stage: _figures(r) for r in stage_rows}
    if evaluation is not None:
        coverage, stage_coverage = await _coverage(session, evaluation.run_id, base)
    else:
        coverage, stage_coverage = _coverage_of(base, 0, 0, 0, 0, 0), {}
    empty = _coverage_of(base, 0, 0, 0, 0, 0)
    stages = sorted(set(stage_coverage) | set(stage_figures))
    by_stage = [
        StageFigures(
            stage=s,
            coverage=stage_coverage.get(s, empty),
            **stage_figures.get(s, Figures().model_dump()),
        )
        for s in stages
    ]
    reasons = await session.execute(
        text(
            "SELECT code, count(*) AS n FROM credit.applications a, unnest(a.reason_codes) code "
            "GROUP BY code ORDER BY code"
        )
    )
    return Stats(
        evaluation=EvaluationRef(
            run_id=evaluation.run_id,
            period=evaluation.period,
            model_version=evaluation.model_version,
        )
        if evaluation
        else None,
        totals=Figures(**_figures(totals_row)),
        coverage=coverage,
        by_bank=by_bank,
        by_stage=by_stage,
        reason_codes={r.code: int(r.n) for r in reasons},
    )
