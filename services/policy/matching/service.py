"""Matching every enterprise of the current evaluation against the pools and published policies.

One path does it all, whatever triggered it (a newly published evaluation, a policy published
or archived, changed seed rules): read the stored facts into a `FactTable`, evaluate each rule
in bulk with per-criterion detail, replace that rule's rows of `matches` with one COPY, then
turn what is new into pushes with one INSERT ... SELECT. It runs inside the caller's
transaction under an advisory lock, so a concurrent publication and feed sync serialise and
the table is never seen half-written.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.common import raw_connection
from services.policy.criteria import (
    STATUSES,
    CompiledRule,
    FactTable,
    Rule,
    Status,
    TableOutcome,
    compile_rule,
)
from services.policy.models import CultivationPool, Evaluation, Policy, PolicyVersion
from shared.metrics import JOB_DURATION

RuleKind = Literal["pool", "policy"]
_LOCK = zlib.crc32(b"policy:recompute")
# Pushed once: a match that becomes eligible, or near when it was never pushed as eligible.
ELIGIBLE, NEAR = STATUSES.index("eligible"), STATUSES.index("near")
STAGE_NONE = "unstaged"  # no revenue: the scoring service does not place it in a stage


@dataclass(frozen=True, slots=True)
class ActiveRule:
    key: str  # "pool:<code>" | "policy:<code>"
    kind: RuleKind
    code: str
    title: str
    compiled: CompiledRule
    leaves: tuple[str, ...]
    policy_id: uuid.UUID | None = None
    version: int | None = None


def rule_key(kind: RuleKind, code: str) -> str:
    return f"{kind}:{code}"


def leaf_ids(rule: Rule) -> tuple[str, ...]:
    """Ids of the criteria and points groups, depth first: what a match row details."""
    out: list[str] = []
    stack: list[Any] = [rule.root]
    while stack:
        node = stack.pop()
        if node.kind in ("all", "any"):
            stack.extend(reversed(node.items))
        else:
            out.append(node.id)
    return tuple(out)


@lru_cache(maxsize=256)
def _compile(rule_json: str) -> tuple[CompiledRule, tuple[str, ...]]:
    compiled = compile_rule(rule_json)
    return compiled, leaf_ids(compiled.rule)


def compiled(rule: dict[str, Any]) -> tuple[CompiledRule, tuple[str, ...]]:
    """Compile a stored rule once per content (CEL parsing is the expensive part)."""
    return _compile(json.dumps(rule, sort_keys=True, ensure_ascii=False))


async def active_rules(session: AsyncSession) -> list[ActiveRule]:
    """Every pool, then every published policy version in force today, in a stable order.

    A policy outside its validity period is not matched (nor pushed) even while published:
    staff need not archive it on the day it lapses.
    """
    out: list[ActiveRule] = []
    pools = await session.scalars(select(CultivationPool).order_by(CultivationPool.position))
    for pool in pools:
        rule, leaves = compiled(pool.rule)
        out.append(
            ActiveRule(rule_key("pool", pool.code), "pool", pool.code, pool.name_zh, rule, leaves)
        )
    rows = await session.execute(
        select(Policy, PolicyVersion)
        .join(PolicyVersion, PolicyVersion.policy_id == Policy.id)
        .where(
            PolicyVersion.status == "published",
            PolicyVersion.valid_from <= func.current_date(),
            or_(PolicyVersion.valid_to.is_(None), PolicyVersion.valid_to >= func.current_date()),
        )
        .order_by(Policy.code)
    )
    for policy, version in rows.tuples():
        rule, leaves = compiled(version.rule)
        out.append(
            ActiveRule(
                rule_key("policy", policy.code),
                "policy",
                policy.code,
                version.title_zh,
                rule,
                leaves,
                policy.id,
                version.version,
            )
        )
    return out


async def current_evaluation(session: AsyncSession) -> Evaluation | None:
    return (
        await session.scalars(select(Evaluation).order_by(Evaluation.period.desc()).limit(1))
    ).first()


@dataclass
class Population:
    """The current evaluation's enterprises as columns, in USCC order."""

    usccs: list[str]
    stages: npt.NDArray[np.object_]
    table: FactTable

    @property
    def n(self) -> int:
        return len(self.usccs)


async def load_population(session: AsyncSession) -> Population:
    conn = await raw_connection(session)
    # One JSON document for the whole population: a single json.loads in C beats decoding
    # thousands of jsonb values one by one.
    doc = await conn.fetchval(
        "SELECT coalesce(json_agg(json_build_array(uscc, stage, facts) ORDER BY uscc), '[]')"
        "::text FROM policy.enterprise_facts"
    )
    rows = json.loads(doc)
    records = [r[2] for r in rows]
    # The facts were typed when stored (sync.clean_facts), so they go straight into columns.
    codes = {code for r in records for code in r}
    columns = {code: [r.get(code) for r in records] for code in codes}
    return Population(
        usccs=[r[0] for r in rows],
        stages=np.array([r[1] or STAGE_NONE for r in rows], dtype=object),
        table=FactTable.from_columns(columns, len(records)),
    )


_RESULT_PREFIX = np.array(["[-1,", "[0,", "[1,"], dtype=object)


def detail_json(outcome: TableOutcome, leaves: Sequence[str], n: int) -> list[str]:
    """Each row's `[[result, gap], ...]` (in `leaves` order) as JSON text, column by column.

    Object-array concatenation runs the string joins in C, and only gaps that exist are
    formatted: 5,036 x 21 rows take a fraction of what one json.dumps per row would.
    """
    parts: npt.NDArray[np.object_] = np.full(n, "[", dtype=object)
    for j, leaf in enumerate(leaves):
        res = outcome.results[leaf].astype(np.intp) + 1
        gaps_text: npt.NDArray[np.object_] = np.full(n, "null]", dtype=object)
        gaps = outcome.gaps.get(leaf)
        if gaps is not None:
            idx = np.flatnonzero(np.isfinite(gaps))
            if idx.size:
                gaps_text[idx] = [f"{g!r}]" for g in gaps[idx].tolist()]
        parts = parts + (_RESULT_PREFIX[res] if j == 0 else "," + _RESULT_PREFIX[res]) + gaps_text
    out: list[str] = (parts + "]").tolist()
    return out


@dataclass
class RecomputeReport:
    enterprises: int = 0
    rules: list[str] = field(default_factory=list)
    rows: int = 0
    pushes: int = 0
    counts: dict[str, dict[Status, int]] = field(default_factory=dict)
    seconds: float = 0.0


async def lock(session: AsyncSession) -> None:
    await session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK})"))


async def recompute(
    session: AsyncSession,
    keys: Iterable[str] | None = None,
    *,
    near_max: int = 2,
    push: bool = True,
) -> RecomputeReport:
    """Rewrite the matches of `keys` (every active rule when None) and push what is new.

    Keys that are no longer active (an archived policy) lose their rows. Idempotent: the
    same facts and rules give the same rows, and nothing is pushed twice.
    """
    start = time.perf_counter()
    await lock(session)
    conn = await raw_connection(session)
    rules = await active_rules(session)
    if keys is None:
        await conn.execute("TRUNCATE policy.matches")
    else:
        wanted = set(keys)
        rules = [r for r in rules if r.key in wanted]
        await conn.execute(
            "DELETE FROM policy.matches WHERE rule_key = ANY($1::text[])", sorted(wanted)
        )
    report = RecomputeReport(rules=[r.key for r in rules])
    evaluation = await current_evaluation(session)
    if evaluation is None or not rules:
        report.seconds = time.perf_counter() - start
        return report
    population = await load_population(session)
    report.enterprises = population.n

    def rows(rule: ActiveRule) -> tuple[dict[Status, int], list[tuple[Any, ...]]]:
        outcome = rule.compiled.evaluate_table(population.table, near_max=near_max, detail=True)
        details = detail_json(outcome, rule.leaves, population.n)
        # repeat() is endless: the three columns decide the length.
        records = list(
            zip(repeat(rule.key), population.usccs, outcome.status.tolist(), details, strict=False)
        )
        return outcome.counts(), records

    # The next rule's rows are built on a thread while PostgreSQL ingests the current ones.
    pending = asyncio.create_task(asyncio.to_thread(rows, rules[0]))
    for i, rule in enumerate(rules):
        rule_counts, records = await pending
        if i + 1 < len(rules):
            pending = asyncio.create_task(asyncio.to_thread(rows, rules[i + 1]))
        report.counts[rule.key] = rule_counts
        await conn.copy_records_to_table(
            "matches",
            schema_name="policy",
            columns=("rule_key", "uscc", "status", "detail"),
            records=records,
        )
        report.rows += len(records)
    if push:
        report.pushes = await push_new_matches(session, rules, evaluation.run_id)
    report.seconds = time.perf_counter() - start
    JOB_DURATION.labels("policy", "recompute").observe(report.seconds)
    return report


async def push_new_matches(
    session: AsyncSession, rules: Sequence[ActiveRule], run_id: uuid.UUID | None
) -> int:
    """New eligible matches, and near ones never pushed before, become push records."""
    conn = await raw_connection(session)
    result: str = await conn.execute(
        """
        INSERT INTO policy.pushes (uscc, rule_key, title, status, run_id)
        SELECT m.uscc, m.rule_key, t.title, m.status, $3
        FROM policy.matches m
        JOIN unnest($1::text[], $2::text[]) AS t(rule_key, title) ON t.rule_key = m.rule_key
        -- One aggregate over the earlier pushes (a hash join) rather than a probe per match.
        LEFT JOIN (
            SELECT uscc, rule_key, bool_or(status = 0) AS eligible, bool_or(status = 1) AS near
            FROM policy.pushes WHERE rule_key = ANY($1::text[]) GROUP BY 1, 2
        ) p ON p.uscc = m.uscc AND p.rule_key = m.rule_key
        WHERE m.status IN (0, 1)
          AND (p.uscc IS NULL OR (NOT p.eligible AND (m.status = 0 OR NOT p.near)))
        ORDER BY m.uscc, m.rule_key
        """,
        [r.key for r in rules],
        [r.title for r in rules],
        run_id,
    )
    return int(result.rsplit(" ", 1)[-1])


@dataclass
class WhatIf:
    population: int
    counts: dict[Status, int]
    by_stage: dict[str, dict[Status, int]]


def what_if(rule: CompiledRule, population: Population, near_max: int = 2) -> WhatIf:
    """How many enterprises of the population the rule would place in each status, by stage."""
    status = rule.evaluate_table(population.table, near_max=near_max).status
    by_stage: dict[str, dict[Status, int]] = {}
    for stage in sorted(set(population.stages.tolist())):
        sel = status[population.stages == stage]
        bins = np.bincount(sel, minlength=len(STATUSES))
        by_stage[str(stage)] = {s: int(bins[i]) for i, s in enumerate(STATUSES)}
    bins = np.bincount(status, minlength=len(STATUSES))
    return WhatIf(
        population=population.n,
        counts={s: int(bins[i]) for i, s in enumerate(STATUSES)},
        by_stage=by_stage,
    )


@dataclass(frozen=True, slots=True)
class LeafInfo:
    label_zh: str
    clause: str
    unit: str


def leaf_info(rule: Rule) -> dict[str, LeafInfo]:
    """Label, clause and unit of every leaf, for explaining stored detail without evaluating."""
    from services.policy.criteria import FACTS

    out: dict[str, LeafInfo] = {}
    stack: list[Any] = [rule.root]
    while stack:
        node = stack.pop()
        if node.kind in ("all", "any"):
            stack.extend(node.items)
        elif node.kind == "points":
            out[node.id] = LeafInfo(node.label_zh, node.clause, "分")
        else:
            unit = node.unit
            if unit is None:
                spec = FACTS.get(node.fact or "")
                unit = "%" if node.per else spec.unit if spec else ""
            out[node.id] = LeafInfo(node.label_zh, node.clause, unit)
    return out
