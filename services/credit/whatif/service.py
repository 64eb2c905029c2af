"""The credit what-if of a scoring run: the lines it would give, against the lines now.

The run's scores are read from scoring with the service client (any run, published or not),
turned into lines by `lines.rules.compute_lines` over the published products, exactly the rule
the real recomputation states in SQL, and compared with the stored lines of the current
evaluation. Nothing is written: the lines served now stay as they are until the run is
published and its event arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.lines.rules import Line, ScoreFacts, compute_lines
from services.credit.lines.service import current_evaluation, published_rules
from services.credit.whatif.schemas import (
    BestLine,
    EvaluationWhatIf,
    EvaluationWhatIfOut,
    LineChange,
    LineCounts,
)
from shared.errors import UpstreamError
from shared.pagination import Page
from shared.problems import raise_for_scoring_run
from shared.service_client import ServiceClient


async def run_scores(
    scoring: ServiceClient, run_id: uuid.UUID
) -> tuple[list[ScoreFacts], dict[str, str]]:
    """Every score of the run (what a line depends on) and the enterprises' names."""
    scores: list[ScoreFacts] = []
    names: dict[str, str] = {}
    try:
        async for items in scoring.pages(
            f"/v1/evaluations/{run_id}/scores", {"limit": scoring.settings.scores_page_size}
        ):
            for item in items:
                uscc = str(item["uscc"])
                names[uscc] = str(item.get("name") or "")
                scores.append(
                    ScoreFacts(
                        uscc,
                        item.get("stage"),
                        bool(item.get("scored")),
                        item.get("exclusion"),
                        item.get("percentile"),
                        item.get("tier"),
                    )
                )
    except UpstreamError as exc:
        raise_for_scoring_run(exc, run_id)
        raise
    return scores, names


def best_lines(lines: Iterable[Line]) -> dict[str, BestLine]:
    """Per enterprise, its largest line (ties: the lowest product id) and its line count."""
    best: dict[str, BestLine] = {}
    for line in lines:
        current = best.get(line.uscc)
        count = current.lines + 1 if current else 1
        pid = uuid.UUID(line.product_id)
        if current is None or (line.amount, -pid.int) > (current.amount, -current.product_id.int):
            best[line.uscc] = BestLine(
                amount=line.amount,
                product_id=pid,
                product_version=line.version,
                band=line.band,
                lines=count,
            )
        else:
            current.lines = count
    return best


async def current_lines(session: AsyncSession, run_id: uuid.UUID) -> list[Line]:
    rows = await session.execute(
        text(
            "SELECT uscc, product_id, product_version, amount, band FROM credit.credit_lines "
            "WHERE run_id = :r"
        ),
        {"r": run_id},
    )
    return [Line(r[0], str(r[1]), r[2], int(r[3]), r[4]) for r in rows]


def _differs(before: BestLine | None, after: BestLine | None) -> bool:
    if before is None or after is None:
        return before is not after
    return (before.amount, before.product_id, before.band) != (
        after.amount,
        after.product_id,
        after.band,
    )


async def evaluation_what_if(
    session: AsyncSession, scoring: ServiceClient, body: EvaluationWhatIf
) -> EvaluationWhatIfOut:
    scores, names = await run_scores(scoring, body.run_id)
    rules = await published_rules(session)
    after_lines = list(compute_lines(scores, rules))
    evaluation = await current_evaluation(session)
    before_lines = await current_lines(session, evaluation.run_id) if evaluation else []
    before, after = best_lines(before_lines), best_lines(after_lines)
    changes: list[LineChange] = []
    for uscc in sorted(set(before) | set(after)):
        b, a = before.get(uscc), after.get(uscc)
        if _differs(b, a):
            delta = (a.amount if a else 0) - (b.amount if b else 0)
            changes.append(
                LineChange(uscc=uscc, name=names.get(uscc), before=b, after=a, delta=delta)
            )
    changes.sort(key=lambda c: (-abs(c.delta), c.uscc))
    counts = LineCounts(
        enterprises=len(scores),
        with_line_before=len(before),
        with_line_after=len(after),
        lines_before=len(before_lines),
        lines_after=len(after_lines),
        pre_approved_before=sum(line.amount for line in before_lines),
        pre_approved_after=sum(line.amount for line in after_lines),
        gained=sum(1 for c in changes if c.before is None),
        lost=sum(1 for c in changes if c.after is None),
        raised=sum(1 for c in changes if c.before and c.after and c.delta > 0),
        lowered=sum(1 for c in changes if c.before and c.after and c.delta < 0),
        same_amount_other_band=sum(1 for c in changes if c.before and c.after and c.delta == 0),
    )
    return EvaluationWhatIfOut(
        run_id=body.run_id,
        current_run_id=evaluation.run_id if evaluation else None,
        products=len(rules),
        counts=counts,
        changes=Page.of(changes[body.offset : body.offset + body.limit], len(changes), body),
    )
