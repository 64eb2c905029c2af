"""Pre-approved lines: what they are computed from (the current evaluation's scores, the
published product versions), read for offers.

Nothing here writes lines: the view `credit.credit_lines` computes them when read, from the
stored score and the product version's rule (the rule of `lines.rules`, stated in SQL), so a
newly published evaluation or product version changes them at once. Storing them instead
rewrote three million rows and a 168 MB index at every publication of a million enterprises.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.common import raw_connection
from services.credit.lines.rules import LineRule, ProductRule, ScoreFacts
from services.credit.models import CreditProduct, EnterpriseScore, ProductVersion


@dataclass(frozen=True, slots=True)
class PublishedRun:
    """The current evaluation as its readers use it."""

    run_id: uuid.UUID
    period: int
    model_version: str
    enterprise_count: int


_CURRENT_RUN = text(
    "SELECT run_id, period, model_version, enterprise_count FROM credit.evaluations "
    "ORDER BY period DESC, event_id DESC LIMIT 1"
)


async def current_evaluation(session: AsyncSession) -> PublishedRun | None:
    """The newest published evaluation imported: latest period, then latest publication.
    Raw, not an ORM entity: loading the entity was a tenth of an offer's CPU (py-spy)."""
    row = (await session.execute(_CURRENT_RUN)).first()
    if row is None:
        return None
    # asyncpg's own UUID type without the ORM's column type: the ORM's uuid.UUID here.
    return PublishedRun(
        uuid.UUID(str(row.run_id)), row.period, row.model_version, row.enterprise_count
    )


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


async def score_of(session: AsyncSession, run_id: uuid.UUID, uscc: str) -> EnterpriseScore | None:
    return await session.get(EnterpriseScore, (run_id, uscc))


def facts(score: EnterpriseScore) -> ScoreFacts:
    return ScoreFacts(
        score.uscc, score.stage, score.scored, score.exclusion, score.percentile, score.tier
    )
