"""The policy what-if of a scoring run: pool eligibility with its scores and facts, against
the matches now.

The run's scores and facts are read from scoring with the service client (any run), cleaned
exactly as the feed sync cleans a published run (`matching.population.population_from_items`),
and every pool's rule is matched by the very function a recompute stores the result of
(`matching.service.match_population`). Nothing is written: matches and pushes change only
when the run is published.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.criteria import STATUSES, Status
from services.policy.matching import repository
from services.policy.matching.population import (
    Population,
    decode_usccs,
    enterprises_of,
    population_of,
)
from services.policy.matching.service import (
    ActiveRule,
    active_rules,
    current_evaluation,
    match_population,
)
from services.policy.settings import PolicySettings
from services.policy.whatif.schemas import (
    EligibilityChange,
    EvaluationWhatIf,
    EvaluationWhatIfOut,
    PoolCounts,
)
from shared.errors import UpstreamError
from shared.pagination import Page
from shared.problems import raise_for_scoring_run
from shared.service_client import ServiceClient


async def run_population(
    scoring: ServiceClient, run_id: uuid.UUID
) -> tuple[Population, dict[str, str]]:
    """The run's enterprises as the columns criteria read, and their names."""
    settings: PolicySettings = scoring.settings
    items: list[dict[str, Any]] = []
    try:
        async for page in scoring.pages(
            f"/v1/evaluations/{run_id}/scores",
            {"limit": settings.scores_page_size, "include": "facts"},
        ):
            items.extend(page)
    except UpstreamError as exc:
        raise_for_scoring_run(exc, run_id)
        raise
    enterprises = enterprises_of(items)
    return population_of(enterprises), {e.uscc: e.name for e in enterprises}


async def current_statuses(session: AsyncSession, key: str) -> dict[str, Status]:
    """One rule's stored statuses now, by USCC (the vectors are in the matched population's
    position order)."""
    row = (
        await session.execute(
            text("SELECT run_id, statuses FROM policy.rule_matches WHERE rule_key = :k"),
            {"k": key},
        )
    ).first()
    if row is None:
        return {}
    data = await repository.read_usccs(session, row.run_id)
    if data is None:
        return {}
    usccs = decode_usccs(data)
    statuses = np.frombuffer(bytes(row.statuses), dtype=np.uint8)
    return {str(u): STATUSES[int(s)] for u, s in zip(usccs, statuses, strict=True)}


def _changes(
    pool: ActiveRule,
    after: Mapping[str, Status],
    before_pool: Mapping[str, Status],
    names: Mapping[str, str],
) -> tuple[PoolCounts, list[EligibilityChange]]:
    eligible_before = {u for u, s in before_pool.items() if s == "eligible"}
    eligible_after = {u for u, s in after.items() if s == "eligible"}
    moved = sorted(eligible_before ^ eligible_after)
    changes = [
        EligibilityChange(
            uscc=u,
            name=names.get(u),
            pool=pool.code,
            title=pool.title,
            before=before_pool.get(u),
            after=after.get(u),
        )
        for u in moved
    ]
    counts = PoolCounts(
        pool=pool.code,
        title=pool.title,
        eligible_before=len(eligible_before),
        eligible_after=len(eligible_after),
        entering=len(eligible_after - eligible_before),
        leaving=len(eligible_before - eligible_after),
    )
    return counts, changes


async def evaluation_what_if(
    session: AsyncSession, scoring: ServiceClient, body: EvaluationWhatIf, near_max: int
) -> EvaluationWhatIfOut:
    population, names = await run_population(scoring, body.run_id)
    pools: list[ActiveRule] = [r for r in await active_rules(session) if r.kind == "pool"]
    # Seconds of numpy for a large run: off the event loop, as the recompute does.
    results = await asyncio.to_thread(match_population, pools, population, near_max=near_max)
    counts: list[PoolCounts] = []
    changes: list[EligibilityChange] = []
    for result in results:
        pool = result.rule
        after = {
            str(u): STATUSES[int(s)] for u, s in zip(population.usccs, result.status, strict=True)
        }
        before = await current_statuses(session, pool.key)
        pool_counts, pool_changes = _changes(pool, after, before, names)
        counts.append(pool_counts)
        changes.extend(pool_changes)
    evaluation = await current_evaluation(session)
    return EvaluationWhatIfOut(
        run_id=body.run_id,
        current_run_id=evaluation.run_id if evaluation else None,
        enterprises=population.n,
        pools=counts,
        changes=Page.of(changes[body.offset : body.offset + body.limit], len(changes), body),
    )
