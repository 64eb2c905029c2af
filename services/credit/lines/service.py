"""Pre-approved lines in the database: rebuilt from the current evaluation, read for offers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.common import raw_connection
from services.credit.lines.rules import LineRule, ProductRule, ScoreFacts
from services.credit.models import (
    CreditLine,
    CreditProduct,
    EnterpriseScore,
    Evaluation,
    ProductVersion,
)
from shared.metrics import JOB_DURATION


@dataclass(frozen=True)
class RecomputeReport:
    run_id: uuid.UUID | None
    products: int
    enterprises: int
    lines: int
    seconds: float


async def current_evaluation(session: AsyncSession) -> Evaluation | None:
    """The newest published evaluation imported: latest period, then latest publication."""
    stmt = select(Evaluation).order_by(Evaluation.period.desc(), Evaluation.event_id.desc())
    return (await session.scalars(stmt.limit(1))).first()


def product_rule(version: ProductVersion) -> ProductRule:
    return ProductRule(
        product_id=str(version.product_id),
        version=version.version,
        eligible_stages=frozenset(version.eligible_stages),
        min_tier=version.min_tier,
        min_percentile=version.min_percentile,
        max_amount=version.max_amount,
        rule=LineRule.model_validate(version.line_rule),
    )


async def published_rules(
    session: AsyncSession, product_ids: Sequence[uuid.UUID] | None = None
) -> list[ProductRule]:
    stmt = (
        select(ProductVersion)
        .join(CreditProduct, CreditProduct.id == ProductVersion.product_id)
        .where(
            CreditProduct.status == "published",
            ProductVersion.version == CreditProduct.published_version,
        )
        .order_by(ProductVersion.product_id)
    )
    if product_ids is not None:
        stmt = stmt.where(CreditProduct.id.in_(product_ids))
    return [product_rule(v) for v in await session.scalars(stmt)]


async def load_scores(session: AsyncSession, run_id: uuid.UUID) -> list[ScoreFacts]:
    conn = await raw_connection(session)
    rows = await conn.fetch(
        "SELECT uscc, stage, scored, exclusion, percentile, tier "
        "FROM credit.enterprise_scores WHERE run_id = $1",
        run_id,
    )
    return [ScoreFacts(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def line_sql(rule: ProductRule) -> tuple[str, list[Any]]:
    """`compute_lines` for one product as one INSERT .. SELECT (parameters $2..; $1 = run).

    The database computes the lines where the scores are: a million enterprises never cross
    the wire. It states the same rule as `rules.line_for`, and a test holds the two equal.
    """
    params: list[Any] = [
        uuid.UUID(rule.product_id),
        rule.version,
        rule.max_amount,
        rule.rule.base_amount,
        sorted(rule.eligible_stages),
        rule.min_tier,
        rule.min_percentile,
    ]
    value = "s.percentile" if rule.rule.basis == "percentile" else "s.tier"
    amount_cases, band_cases = [], []
    for i, band in enumerate(rule.rule.bands):
        params.extend([band.min, band.amount])
        at, amount = len(params), len(params) + 1
        amount_cases.append(f"WHEN {value} >= ${at}::float8 THEN ${amount}::bigint")
        band_cases.append(f"WHEN {value} >= ${at}::float8 THEN {i}")
    amount_expr = (
        f"CASE {' '.join(amount_cases)} ELSE $5::bigint END" if amount_cases else "$5::bigint"
    )
    band_expr = f"CASE {' '.join(band_cases)} ELSE -1 END" if band_cases else "-1"
    sql = (
        "INSERT INTO credit.credit_lines "
        "(uscc, product_id, product_version, run_id, amount, band) "
        f"SELECT s.uscc, $2::uuid, $3::int, s.run_id, LEAST($4::bigint, {amount_expr}), "
        f"{band_expr} "
        "FROM credit.enterprise_scores s "
        "WHERE s.run_id = $1 AND s.scored AND s.exclusion IS NULL "
        "AND s.stage = ANY($6::text[]) "
        "AND ($7::int IS NULL OR coalesce(s.tier, 0) >= $7::int) "
        "AND ($8::float8 IS NULL OR coalesce(s.percentile, 0) >= $8::float8)"
    )
    return sql, params


async def recompute_lines(
    session: AsyncSession, product_ids: Sequence[uuid.UUID] | None = None
) -> RecomputeReport:
    """Replace the lines of the given products (all when None) from the current evaluation.

    Delete-then-insert in the caller's transaction: readers keep seeing the old lines until it
    commits, and running it twice leaves the same rows, so a replayed event or a repeated
    publish is harmless.
    """
    started = time.perf_counter()
    evaluation = await current_evaluation(session)
    stmt = delete(CreditLine)
    if product_ids is not None:
        stmt = stmt.where(CreditLine.product_id.in_(product_ids))
    await session.execute(stmt)
    rules = await published_rules(session, product_ids)
    if evaluation is None or not rules:
        return RecomputeReport(evaluation.run_id if evaluation else None, len(rules), 0, 0, 0.0)
    conn = await raw_connection(session)
    written = 0
    for rule in rules:
        sql, params = line_sql(rule)
        status = await conn.execute(sql, evaluation.run_id, *params)
        written += int(status.rsplit(" ", 1)[1])
    seconds = time.perf_counter() - started
    JOB_DURATION.labels("credit", "recompute_lines").observe(seconds)
    return RecomputeReport(
        evaluation.run_id, len(rules), evaluation.enterprise_count, written, seconds
    )


async def score_of(session: AsyncSession, run_id: uuid.UUID, uscc: str) -> EnterpriseScore | None:
    return await session.get(EnterpriseScore, (run_id, uscc))


def facts(score: EnterpriseScore) -> ScoreFacts:
    return ScoreFacts(
        score.uscc, score.stage, score.scored, score.exclusion, score.percentile, score.tier
    )
