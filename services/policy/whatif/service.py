"""The policy what-if of a scoring run: pool eligibility with its scores and facts, against
the matches now.

The run's scores and facts are read from scoring with the service client (any run), typed
exactly as the feed sync types a published run (`matching.sync.enterprise_facts`), and every
pool's compiled rule is evaluated on them in bulk, as `matching.service.recompute` does.
Nothing is written: matches and pushes change only when the run is published.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.criteria import STATUSES, FactTable, Status
from services.policy.matching.service import (
    STAGE_NONE,
    ActiveRule,
    Population,
    active_rules,
    current_evaluation,
)
from services.policy.matching.sync import enterprise_facts
from services.policy.settings import PolicySettings
from services.policy.whatif.schemas import (
    EligibilityChange,
    EvaluationWhatIf,
    EvaluationWhatIfOut,
    PoolCounts,
)
from shared.errors import Conflict, NotFound, UpstreamError
from shared.pagination import Page
from shared.service_client import ServiceClient


async def run_population(
    scoring: ServiceClient, run_id: uuid.UUID
) -> tuple[Population, dict[str, str]]:
    """The run's enterprises as the columns criteria read, and their names."""
    settings: PolicySettings = scoring.settings
    records: list[dict[str, Any]] = []
    usccs: list[str] = []
    names: dict[str, str] = {}
    try:
        async for items in scoring.pages(
            f"/v1/evaluations/{run_id}/scores",
            {"limit": settings.scores_page_size, "include": "facts"},
        ):
            for item in items:
                facts, _bad = enterprise_facts(item)
                usccs.append(str(item["uscc"]))
                names[usccs[-1]] = str(item.get("name") or "")
                records.append(facts)
    except UpstreamError as exc:
        cause = exc.__cause__
        if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 404:
            raise NotFound(f"Scoring has no evaluation {run_id}") from exc
        if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 409:
            raise Conflict(f"Scoring evaluation {run_id} has no scores (yet)") from exc
        raise
    codes = {code for r in records for code in r}
    columns = {code: [r.get(code) for r in records] for code in codes}
    population = Population(
        usccs=usccs,
        stages=np.array([r.get("stage") or STAGE_NONE for r in records], dtype=object),
        table=FactTable.from_columns(columns, len(records)),
    )
    return population, names


async def current_statuses(session: AsyncSession, key: str) -> dict[str, Status]:
    """One rule's stored statuses now, by USCC."""
    rows = await session.execute(
        text("SELECT uscc, status FROM policy.matches WHERE rule_key = :k"), {"k": key}
    )
    return {r[0]: STATUSES[r[1]] for r in rows}


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
    pools = [r for r in await active_rules(session) if r.kind == "pool"]
    counts: list[PoolCounts] = []
    changes: list[EligibilityChange] = []
    for pool in pools:
        status = pool.compiled.evaluate_table(population.table, near_max=near_max).status
        after = {u: STATUSES[int(s)] for u, s in zip(population.usccs, status, strict=True)}
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
