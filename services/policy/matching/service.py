"""Matching every enterprise of the current evaluation against the pools and published policies.

One path does it all, whatever triggered it (a newly published evaluation, a policy published
or archived, changed seed rules): read the population's fact columns, evaluate each rule in
bulk (numpy), store per rule the status and the failing criteria of every enterprise as two
vectors (`rule_matches`), then turn what is new into pushes with one INSERT ... SELECT. It runs
inside the caller's transaction under an advisory lock, so a concurrent publication and feed
sync serialise and no reader sees a half-written state.

What is not stored, the criterion-by-criterion explanation, is computed on demand for one
enterprise (`CompiledRule.evaluate`) from its stored facts and the rule as matched (kept with
the vectors), so it is the explanation of the stored status.

`match_population` is the pure part (facts in, statuses out, nothing read or written), for
callers that want matches without storing them; `recompute` stores them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.policy.criteria import (
    NEAR_MAX_DEFAULT,
    STATUSES,
    CompiledRule,
    Rule,
    Status,
    compile_rule,
)
from services.policy.matching import repository
from services.policy.matching.population import (
    Population,
    align,
    decode_columns,
    decode_usccs,
    encode_columns,
    population_from_json_rows,
)
from services.policy.models import Evaluation
from shared import pgcopy
from shared.metrics import JOB_DURATION

RuleKind = Literal["pool", "policy"]
_LOCK = zlib.crc32(b"policy:recompute")
# Pushed once: a match that becomes eligible, or near when it was never pushed as eligible.
ELIGIBLE, NEAR = STATUSES.index("eligible"), STATUSES.index("near")


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
    # The rule as stored, and the SHA-256 of its canonical JSON: what a match row records.
    rule: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""


def rule_key(kind: RuleKind, code: str) -> str:
    return f"{kind}:{code}"


def leaf_ids(rule: Rule) -> tuple[str, ...]:
    """Ids of the criteria and points groups, depth first: what the failing bits refer to."""
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
def _compile(rule_json: str) -> tuple[CompiledRule, tuple[str, ...], str]:
    compiled = compile_rule(rule_json)
    fingerprint = hashlib.sha256(rule_json.encode()).hexdigest()
    return compiled, leaf_ids(compiled.rule), fingerprint


def _canonical(rule: Mapping[str, Any]) -> str:
    return json.dumps(rule, sort_keys=True, ensure_ascii=False)


def compiled(rule: Mapping[str, Any]) -> tuple[CompiledRule, tuple[str, ...]]:
    """Compile a stored rule once per content (CEL parsing is the expensive part)."""
    c, leaves, _ = _compile(_canonical(rule))
    return c, leaves


def fingerprint_of(rule: Mapping[str, Any]) -> str:
    return _compile(_canonical(rule))[2]


def _active(
    kind: RuleKind,
    code: str,
    title: str,
    rule: dict[str, Any],
    policy_id: uuid.UUID | None = None,
    version: int | None = None,
) -> ActiveRule:
    c, leaves, fingerprint = _compile(_canonical(rule))
    return ActiveRule(
        rule_key(kind, code), kind, code, title, c, leaves, policy_id, version, rule, fingerprint
    )


# Row as read (kind, code, title, rule text, policy id, version) -> its ActiveRule. The key is
# the row's whole content, so a published, withdrawn or edited rule, or one whose validity
# starts or ends today, is a different set of rows and is seen by the next request on every
# replica: nothing to invalidate. Bounded, as rule texts come and go with new versions.
_ActiveKey = tuple[str, str, str, str, uuid.UUID | None, int | None]
_ACTIVE_CACHE: dict[_ActiveKey, ActiveRule] = {}
_ACTIVE_CACHE_MAX = 1024
# (the database, the rules' digest) -> the set they make (a few sets live at once: before
# and after a publication, a day's validity change). The digest is of the rows' versions,
# which mean nothing in another database (tests run many in one process).
_RULE_SETS: dict[tuple[str, str], tuple[ActiveRule, ...]] = {}
_RULE_SETS_MAX = 16


def _cached_active(key: _ActiveKey) -> ActiveRule:
    hit = _ACTIVE_CACHE.get(key)
    if hit is None:
        kind, code, title, rule_text, policy_id, version = key
        assert kind in ("pool", "policy")
        rule_kind: RuleKind = "pool" if kind == "pool" else "policy"
        # asyncpg's own UUID type without the ORM's column type: the ORM's uuid.UUID here.
        pid = uuid.UUID(str(policy_id)) if policy_id is not None else None
        hit = _active(rule_kind, code, title, json.loads(rule_text), pid, version)
        if len(_ACTIVE_CACHE) >= _ACTIVE_CACHE_MAX:
            _ACTIVE_CACHE.clear()
        _ACTIVE_CACHE[key] = hit
    return hit


async def active_rules(session: AsyncSession, digest: str | None = None) -> list[ActiveRule]:
    """Every pool, then every published policy version in force today, in a stable order.

    A policy outside its validity period is not matched (nor pushed) even while published:
    staff need not archive it on the day it lapses.

    What is read per call is the rules' digest (`repository.RULES_DIGEST`: one value, or
    `digest` when the caller read it in its own statement); the rules themselves only when
    this process has not built the set with that digest yet. A rule seen before with the
    same content is not decoded, hashed or compiled again (the returned `ActiveRule`s are
    shared: read-only). Nothing is invalidated: a publication, an archive, an edit or a
    validity that starts or ends today is another digest, seen by the next read on every
    replica.
    """
    return (await active_rule_set(session, digest))[1]


async def active_rule_set(
    session: AsyncSession, digest: str | None = None
) -> tuple[str, list[ActiveRule]]:
    """`active_rules` with the digest of the set returned: `digest` itself unless the rules
    changed between the caller's read of it and this one (the newer set is returned)."""
    # A raw statement does not autoflush: pending ORM changes (a pool or policy written in
    # this transaction) must be visible to it as they were to the ORM query it replaces.
    await session.flush()
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    return await rule_set_on(raw, str(conn.engine.url), digest)


async def rule_set_on(
    conn: Any, database: str, digest: str | None = None
) -> tuple[str, list[ActiveRule]]:
    """`active_rule_set` on an asyncpg connection to `database` (what the sets are kept by:
    the digest is of the rows' versions, which mean nothing in another database)."""
    if digest is None:
        digest = str(await conn.fetchval(repository.RULES_DIGEST))
    hit = _RULE_SETS.get((database, digest))
    if hit is not None:
        return digest, list(hit)
    rows = await conn.fetch(repository.ACTIVE_RULES)
    rules = [_cached_active(tuple(r[1:])) for r in rows]
    if not rows:
        return digest, rules
    read: str = rows[0]["digest"]
    if len(_RULE_SETS) >= _RULE_SETS_MAX:
        _RULE_SETS.clear()
    _RULE_SETS[database, read] = tuple(rules)
    return read, rules


async def current_evaluation(session: AsyncSession) -> Evaluation | None:
    return (
        await session.scalars(select(Evaluation).order_by(Evaluation.period.desc()).limit(1))
    ).first()


async def load_population(
    session: AsyncSession, evaluation: Evaluation | None = None
) -> Population:
    """The current evaluation's enterprises as columns, in position order.

    Read from the stored columns; rebuilt from the stored facts when there are none (a
    population stored before the columns were), in which case `stored` is false.
    """
    evaluation = evaluation or await current_evaluation(session)
    if evaluation is not None:
        population = decode_columns(await repository.read_columns(session, evaluation.run_id))
        if population is not None:
            return population
    return population_from_json_rows(await repository.read_fact_rows(session))


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule matched against a population: what `rule_matches` stores of it.

    `status[i]` is enterprise i's index into `STATUSES`; `failing[i]` packs, least significant
    bit first, which of `rule.leaves` it fails.
    """

    rule: ActiveRule
    near_max: int
    status: npt.NDArray[np.uint8]
    failing: npt.NDArray[np.uint8]
    stage_counts: dict[str, list[int]]
    near_failing: dict[str, dict[str, int]]

    def counts(self) -> dict[Status, int]:
        bins = np.bincount(self.status, minlength=len(STATUSES))
        return {s: int(bins[i]) for i, s in enumerate(STATUSES)}

    def failing_ids(self, position: int) -> list[str]:
        """The ids of the criteria enterprise `position` fails, in leaf order."""
        bits = np.unpackbits(self.failing[position], bitorder="little")[: len(self.rule.leaves)]
        return [leaf for leaf, bit in zip(self.rule.leaves, bits.tolist(), strict=True) if bit]


def match_rule(rule: ActiveRule, population: Population, *, near_max: int) -> RuleResult:
    """Statuses and failing criteria of every enterprise under one rule. Pure: nothing is read
    or written, so a what-if runs the very computation a recompute stores."""
    n = population.n
    outcome = rule.compiled.evaluate_table(
        population.table, near_max=near_max, detail=True, gaps=False
    )
    fails = np.zeros((n, len(rule.leaves)), dtype=np.bool_)
    for k, leaf in enumerate(rule.leaves):
        fails[:, k] = outcome.results[leaf] == 0
    status = outcome.status.astype(np.uint8)
    codes, names = population.stage_index()
    bins = np.bincount(
        codes * len(STATUSES) + status, minlength=len(names) * len(STATUSES)
    ).reshape(len(names), len(STATUSES))
    near = np.flatnonzero(status == NEAR)
    near_codes, near_fails = codes[near], fails[near]
    per_stage = np.stack(
        [
            np.bincount(near_codes, weights=near_fails[:, k], minlength=len(names))
            for k in range(len(rule.leaves))
        ],
        axis=1,
    ).astype(np.int64)
    near_failing = {
        name: {
            leaf: int(c) for leaf, c in zip(rule.leaves, per_stage[s].tolist(), strict=True) if c
        }
        for s, name in enumerate(names)
        if per_stage[s].any()
    }
    return RuleResult(
        rule=rule,
        near_max=near_max,
        status=status,
        failing=np.packbits(fails, axis=1, bitorder="little"),
        stage_counts={name: bins[s].tolist() for s, name in enumerate(names) if bins[s].any()},
        near_failing=near_failing,
    )


def match_population(
    rules: Sequence[ActiveRule], population: Population, *, near_max: int = NEAR_MAX_DEFAULT
) -> list[RuleResult]:
    """Every rule against the population: the pure part of `recompute` (see `match_rule`)."""
    return [match_rule(r, population, near_max=near_max) for r in rules]


@dataclass
class RecomputeReport:
    enterprises: int = 0
    rules: list[str] = field(default_factory=list)
    rows: int = 0  # enterprise x rule matches computed
    pushes: int = 0
    counts: dict[str, dict[Status, int]] = field(default_factory=dict)
    seconds: float = 0.0


async def lock(session: AsyncSession) -> None:
    await session.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK})"))


def _row(result: RuleResult, run_id: uuid.UUID, pushed: bool) -> repository.RuleRow:
    rule = result.rule
    return repository.RuleRow(
        rule_key=rule.key,
        run_id=run_id,
        policy_id=rule.policy_id,
        version=rule.version,
        rule=rule.rule,
        fingerprint=rule.fingerprint,
        near_max=result.near_max,
        leaves=rule.leaves,
        enterprises=len(result.status),
        statuses=result.status.tobytes(),
        failing=result.failing.tobytes(),
        counts={"by_stage": result.stage_counts, "near_failing": result.near_failing},
        pushed=pushed,
    )


@dataclass
class Matching:
    """`match_population` of some rules and a population, started in a thread ahead of the
    `recompute` that stores it, so that what the caller writes meanwhile (the feed sync: the
    population's rows and columns, seconds of server CPU at a million enterprises) overlaps
    the matching (seconds of numpy) instead of preceding it."""

    rules: list[ActiveRule]
    population: Population
    near_max: int
    results: asyncio.Task[list[RuleResult]]

    @classmethod
    def start(cls, rules: list[ActiveRule], population: Population, near_max: int) -> Matching:
        task = asyncio.ensure_future(
            asyncio.to_thread(match_population, rules, population, near_max=near_max)
        )
        return cls(list(rules), population, near_max, task)

    def serves(self, rules: Sequence[ActiveRule], population: Population, near_max: int) -> bool:
        """Whether these are the results `recompute` would compute now (the same rules, by
        key and content, on the same population)."""
        mine = [(r.key, r.fingerprint) for r in self.rules]
        return (
            self.population is population
            and self.near_max == near_max
            and mine == [(r.key, r.fingerprint) for r in rules]
        )

    async def settle(self) -> None:
        """Wait for the thread, whatever became of the transaction (it cannot be stopped)."""
        await asyncio.gather(self.results, return_exceptions=True)


async def recompute(
    session: AsyncSession,
    keys: Iterable[str] | None = None,
    *,
    near_max: int = 2,
    push: bool = True,
    population: Population | None = None,
    matching: Matching | None = None,
) -> RecomputeReport:
    """Rewrite the matches of `keys` (every active rule when None) and push what is new.

    Keys that are no longer active (an archived policy) lose their rows. Idempotent: the
    same facts and rules give the same rows, and nothing is pushed twice. `population`, when
    given, is the current evaluation's as just stored (the feed sync's), not read back;
    `matching`, its matching already under way (used when it serves these very rules).
    """
    start = time.perf_counter()
    await lock(session)
    rules = await active_rules(session)
    wanted = None if keys is None else sorted(set(keys))
    if wanted is not None:
        rules = [r for r in rules if r.key in wanted]
    report = RecomputeReport(rules=[r.key for r in rules])
    evaluation = await current_evaluation(session)
    if evaluation is None or not rules:
        await repository.delete_rules(session, wanted, keep=[])
        report.seconds = time.perf_counter() - start
        return report
    await repository.delete_rules(session, wanted, keep=report.rules)
    if population is None or population.n != evaluation.enterprise_count:
        population = await load_population(session, evaluation)
    if not population.stored:
        await repository.write_columns(session, evaluation.run_id, encode_columns(population))
    report.enterprises = population.n
    if matching is not None and matching.serves(rules, population, near_max):
        results = await matching.results
    else:
        # Seconds of numpy at a million enterprises: off the event loop.
        results = await asyncio.to_thread(match_population, rules, population, near_max=near_max)
    previous = (
        await _previously_pushed(session, report.rules, population, evaluation.run_id)
        if push
        else {}
    )
    await repository.write_rules(session, [_row(r, evaluation.run_id, push) for r in results])
    for result in results:
        report.counts[result.rule.key] = result.counts()
    report.rows = population.n * len(rules)
    if push:
        report.pushes = await push_new_matches(
            session, results, population, previous, evaluation.run_id
        )
    if keys is None:
        # Every row is now of this population: the codes kept to align earlier ones go.
        await repository.prune_columns(session, evaluation.run_id)
    report.seconds = time.perf_counter() - start
    JOB_DURATION.labels("policy", "recompute").observe(report.seconds)
    return report


async def stale_rules(session: AsyncSession) -> list[str]:
    """Active rules whose stored matches are missing or were made on another population or
    another rule (after the migration that introduced them, or a rule changed in code)."""
    evaluation = await current_evaluation(session)
    if evaluation is None:
        return []
    stored = {s.rule_key: s for s in await repository.rule_summaries(session, None)}
    return [
        r.key
        for r in await active_rules(session)
        if r.key not in stored or stored[r.key].fingerprint != r.fingerprint
    ]


async def _previously_pushed(
    session: AsyncSession, keys: Sequence[str], population: Population, run_id: uuid.UUID
) -> dict[str, npt.NDArray[np.uint8]]:
    """Per rule, the statuses stored with their pushes, by position in `population`.

    Statuses of an earlier population are re-indexed by USCC (its codes are kept until
    then), so that after a new evaluation only what changed, and who is new, is checked
    against the pushes made so far.
    """
    stored = await repository.pushed_statuses(session, keys)
    codes: dict[uuid.UUID, npt.NDArray[np.str_] | None] = {}
    out: dict[str, npt.NDArray[np.uint8]] = {}
    for key, pushed in stored.items():
        statuses = np.frombuffer(pushed.statuses, dtype=np.uint8)
        if pushed.run_id == run_id and len(statuses) == population.n:
            out[key] = statuses  # this very population (a run is stored once: sync)
            continue
        if pushed.run_id not in codes:
            data = await repository.read_usccs(session, pushed.run_id)
            codes[pushed.run_id] = None if data is None else decode_usccs(data)
        before = codes[pushed.run_id]
        if before is None or len(before) != len(statuses):
            continue  # cannot be lined up: every match is checked against the pushes
        out[key] = align(statuses, before, population.usccs)
    return out


async def push_new_matches(
    session: AsyncSession,
    results: Sequence[RuleResult],
    population: Population,
    previous: Mapping[str, npt.NDArray[np.uint8]],
    run_id: uuid.UUID | None,
) -> int:
    """New eligible matches, and near ones never pushed before, become push records.

    Statuses stored with their pushes (`previous`, by position) need no second look: an
    enterprise eligible then was pushed eligible, a near one was pushed. Only the others are
    looked up among the pushes made so far. The new pushes are written with one binary COPY,
    by enterprise then rule key (their ids follow that order, as the feed shows them), as a
    set of pushes per enterprise (`models.PushSet`).
    """
    ordered = sorted(results, key=lambda r: r.rule.key)
    if not ordered:
        return 0
    # Enterprise by rule, so that the new matches come out of `nonzero` in the pushes'
    # order (by enterprise, then rule key) with no sort: a lexsort of ten million of them
    # took a second or more at a million enterprises.
    statuses = np.empty((population.n, len(ordered)), dtype=np.uint8)
    new = np.empty((population.n, len(ordered)), dtype=np.bool_)
    for k, result in enumerate(ordered):
        s = result.status
        statuses[:, k] = s
        p = previous.get(result.rule.key)
        if p is None:
            new[:, k] = s <= NEAR
        else:
            new[:, k] = ((s == ELIGIBLE) & (p != ELIGIBLE)) | ((s == NEAR) & (p > NEAR))
    pos, rank = np.nonzero(new)
    if not len(pos):
        return 0
    status = statuses[pos, rank]
    keys = [r.rule.key for r in ordered]
    seen: list[tuple[str, str, bool]] = []
    # None of these rules pushed yet (a first evaluation): nothing to look up, and no list of
    # a million codes to build (np.unique of ten million positions and the list took 30 % of
    # the recompute's samples at a million enterprises, py-spy).
    if await repository.any_pushed(session, keys):
        distinct = pos[_run_starts(pos)]
        seen = await repository.pushed_before(session, population.usccs[distinct].tolist(), keys)
    if seen:
        where = {k: i for i, k in enumerate(keys)}
        seen_key = np.searchsorted(population.usccs, [u for u, _, _ in seen]) * len(keys) + [
            where[k] for _, k, _ in seen
        ]
        seen_eligible = seen_key[[e for _, _, e in seen]]
        key = pos * len(keys) + rank
        # Eligible: unless pushed eligible before. Near: unless pushed at all.
        drop = np.where(status == ELIGIBLE, np.isin(key, seen_eligible), np.isin(key, seen_key))
        pos, rank, status = pos[~drop], rank[~drop], status[~drop]
    return await _write_pushes(session, population, ordered, pos, rank, status, run_id)


# A push names its rule by a byte (its index in the batch's rules): a recompute of more rules
# than that writes a batch per group of them.
_RULES_PER_BATCH = 255
_CHUNK = 250_000


async def _write_pushes(
    session: AsyncSession,
    population: Population,
    ordered: Sequence[RuleResult],
    pos: npt.NDArray[np.intp],
    rank: npt.NDArray[np.intp],
    status: npt.NDArray[np.uint8],
    run_id: uuid.UUID | None,
) -> int:
    """The pushes `(pos, rank, status)`, sorted by enterprise then rule, as a batch and a set
    per enterprise (one binary COPY); their ids follow that order, as the feed shows them."""
    written = 0
    for start in range(0, len(ordered), _RULES_PER_BATCH):
        group = ordered[start : start + _RULES_PER_BATCH]
        mine = (rank >= start) & (rank < start + len(group))
        p, r, s = pos[mine], (rank[mine] - start).astype(np.uint8), status[mine]
        if not len(p):
            continue
        batch = await repository.add_push_batch(
            session, run_id, [x.rule.key for x in group], [x.rule.title for x in group]
        )
        first = await repository.reserve_push_ids(session, len(p))
        await repository.copy_push_sets(
            session, pgcopy.stream(_push_set_chunks(population, p, r, s, batch, first))
        )
        written += len(p)
    return written


def _run_starts(sorted_values: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """Where each run of equal values starts in a sorted, non-empty array."""
    change = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    out: npt.NDArray[np.intp] = np.concatenate(([0], change)).astype(np.intp)
    return out


def _push_set_chunks(
    population: Population,
    pos: npt.NDArray[np.intp],
    rules: npt.NDArray[np.uint8],
    status: npt.NDArray[np.uint8],
    batch: int,
    first: int,
) -> Iterator[list[pgcopy.Field]]:
    """Rows of `repository.PUSH_SET_COLUMNS`: per enterprise, its pushes' rule indexes and
    statuses as bytes (laid out at the widest set, each row's length its count)."""
    # `pos` is sorted: its runs are the enterprises (np.unique would sort it again).
    starts = _run_starts(pos)
    enterprises = pos[starts]
    counts = np.diff(np.append(starts, len(pos)))
    width = int(counts.max())
    group = np.repeat(np.arange(len(enterprises)), counts)
    within = np.arange(len(pos)) - starts[group]
    rule_bytes = np.zeros((len(enterprises), width), dtype=np.uint8)
    status_bytes = np.zeros((len(enterprises), width), dtype=np.uint8)
    rule_bytes[group, within] = rules
    status_bytes[group, within] = status
    usccs = pgcopy.utf8(population.usccs[enterprises])
    first_ids = (first + starts).astype(">i8")
    lengths = counts.astype(np.int32)
    for at in range(0, len(enterprises), _CHUNK):
        end = at + _CHUNK
        yield [
            pgcopy.text_field(usccs[at:end]),
            pgcopy.Field(first_ids[at:end]),
            pgcopy.Field(np.full(len(first_ids[at:end]), batch, dtype=">i8")),
            pgcopy.Field(rule_bytes[at:end].view(f"V{width}").reshape(-1), lengths[at:end]),
            pgcopy.Field(status_bytes[at:end].view(f"V{width}").reshape(-1), lengths[at:end]),
        ]


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
