"""`GET /v1/stats`, the government's programme figures, without FastAPI's routing and
dependency solving (`shared.app.HotRoute`), in one statement where the route makes five.

Nearly all of the route's cost was PostgreSQL's: the base-line coverage aggregates every
enterprise's best line of the current run (13.6 ms of the server's CPU per call at 5,036
enterprises, issue 11; it grows with the enterprises). The coverage depends only on the
run's scores, which never change once imported, on the lines, and on the configured base
amount. So the process keeps the coverage it last computed under the run and the lines'
generation (`models.LineGeneration`, counted by a trigger on every statement that writes
what the lines are computed from), and the statement, which reads both, computes the
coverage only when they differ from what the process holds (a one-time filter: otherwise
that part of the plan is never executed). What the statement reads and what it computes
are of one snapshot, so what is remembered is exactly what the database held under that
key, in every replica. The
applications' figures change with every application and decision and are aggregated on
every call, in one pass (grouping sets) instead of three.

The document is the route's, field for field; anything else (another caller, a query, a
failure) is the route's to answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from services.credit.reads import HotReads, answered, dumps
from services.credit.settings import CreditSettings
from services.credit.stats.router import _FIGURES, Figures
from shared.app import HotRoute
from shared.auth.principal import PrincipalKind
from shared.hot import caller

STATS = "/v1/stats"
_MEMO = "stats.coverage"
_SEES_ALL = frozenset({PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE})
_FIELDS = tuple(Figures.model_fields)
# `grouping(bank_id, stage)`: a bit set for each column a grouping set leaves out.
_ALL, _PER_BANK = 0b11, 0b01

# $1, $2: the run and the lines' generation of the coverage the process holds (NULL for
# none); $3: the base amount. The coverage's query is the route's (`router._coverage`).
STATS_SQL = f"""
WITH ev AS (
    SELECT run_id, period, model_version FROM credit.evaluations
    ORDER BY period DESC, event_id DESC LIMIT 1
), at AS (
    SELECT ev.run_id, ev.period, ev.model_version, g.generation,
           (ev.run_id, g.generation) IS DISTINCT FROM ($1::uuid, $2::bigint) AS changed
    FROM credit.line_generation g LEFT JOIN ev ON true
)
SELECT at.run_id, at.period, at.model_version, at.generation, at.changed, (
    SELECT array_agg(ROW(f.*))
    FROM (
        SELECT grouping(a.bank_id, a.stage) AS level, a.bank_id, a.stage, {_FIGURES}
        FROM credit.applications a
        GROUP BY GROUPING SETS ((), (a.bank_id), (a.stage))
    ) f
) AS figures, (
    SELECT array_agg(ROW(b.id, b.name) ORDER BY b.id) FROM credit.banks b
) AS banks, (
    SELECT array_agg(ROW(r.code, r.n) ORDER BY r.code)
    FROM (
        SELECT code, count(*) AS n
        FROM credit.applications a, unnest(a.reason_codes) code GROUP BY code
    ) r
) AS reasons, (
    SELECT array_agg(ROW(c.stage, c.scored, c.covered, c.excluded, c.with_line,
                         c.pre_approved) ORDER BY c.stage)
    FROM (
        SELECT coalesce(s.stage, 'unstaged') AS stage,
               count(*) FILTER (WHERE s.scored) AS scored,
               count(*) FILTER (WHERE s.scored AND b.amount >= $3) AS covered,
               count(*) FILTER (WHERE s.exclusion IS NOT NULL) AS excluded,
               count(b.uscc) AS with_line,
               coalesce(sum(b.amount), 0) AS pre_approved
        FROM credit.enterprise_scores s
        LEFT JOIN (
            SELECT uscc, max(amount) AS amount FROM credit.credit_lines
            WHERE run_id = at.run_id GROUP BY uscc
        ) b ON b.uscc = s.uscc
        WHERE s.run_id = at.run_id AND at.changed
        GROUP BY 1
    ) c
) AS coverage
FROM at
"""

Cover = tuple[int, int, int, int, int]  # scored, covered, excluded, with line, pre-approved
# What a process holds: the run, the lines' generation and the base amount it was computed
# under, and the coverage per stage.
Held = tuple[uuid.UUID, int, int, dict[str, Cover]]


def coverage_doc(base: int, values: Cover) -> dict[str, Any]:
    """`router._coverage_of` as its JSON."""
    scored, covered, excluded, with_line, total = values
    return {
        "base_amount": base,
        "scored_enterprises": scored,
        "covered_enterprises": covered,
        "ratio": round(covered / scored, 4) if scored else None,
        "excluded_enterprises": excluded,
        "enterprises_with_line": with_line,
        "pre_approved_total": total,
    }


def _figures(values: Any) -> dict[str, int]:
    return {k: int(v) for k, v in zip(_FIELDS, values, strict=True)}


_NONE = _figures((0,) * len(_FIELDS))


def _coverage(
    reads: HotReads, row: Any, base: int, held: Held | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The coverage over all stages and per stage: what the statement computed, else what
    the process held under the run and generation the statement read (`held`, taken before
    the statement, not what a concurrent request may have put in its place since)."""
    run_id, generation = row["run_id"], row["generation"]
    if run_id is None:
        return coverage_doc(base, (0, 0, 0, 0, 0)), {}
    if row["changed"] or held is None:
        per_stage: dict[str, Cover] = {}
        for r in row["coverage"] or ():
            per_stage[r[0]] = (int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
        reads.memo[_MEMO] = (run_id, generation, base, per_stage)
    else:
        per_stage = held[3]
    totals = tuple(sum(v[i] for v in per_stage.values()) for i in range(5))
    return (
        coverage_doc(base, totals),  # type: ignore[arg-type]
        {s: coverage_doc(base, v) for s, v in per_stage.items()},
    )


async def stats_document(reads: HotReads, base: int) -> bytes | None:
    held: Held | None = reads.memo.get(_MEMO)
    if held is not None and held[2] != base:
        held = None
    key = (None, None) if held is None else (held[0], held[1])
    row = await reads.connections.fetchrow(STATS_SQL, *key, base)
    if row is None:
        return None  # no generation row: the route's
    coverage, stage_coverage = _coverage(reads, row, base, held)
    totals = _NONE
    per_bank: dict[str, dict[str, int]] = {}
    stage_figures: dict[str, dict[str, int]] = {}
    for f in row["figures"] or ():
        level, bank_id, stage, values = f[0], f[1], f[2], f[3:]
        if level == _ALL:
            totals = _figures(values)
        elif level == _PER_BANK:
            per_bank[bank_id] = _figures(values)
        else:
            stage_figures[stage] = _figures(values)
    empty = coverage_doc(base, (0, 0, 0, 0, 0))
    evaluation = None
    if row["run_id"] is not None:
        evaluation = {
            "run_id": str(row["run_id"]),
            "period": row["period"],
            "model_version": row["model_version"],
        }
    return dumps(
        {
            "evaluation": evaluation,
            "totals": totals,
            "coverage": coverage,
            "by_bank": [
                {**per_bank.get(b[0], _NONE), "bank_id": b[0], "bank_name": b[1]}
                for b in row["banks"] or ()
            ],
            "by_stage": [
                {
                    **stage_figures.get(s, _NONE),
                    "stage": s,
                    "coverage": stage_coverage.get(s, empty),
                }
                for s in sorted(set(stage_coverage) | set(stage_figures))
            ],
            "reason_codes": {r[0]: int(r[1]) for r in row["reasons"] or ()},
        }
    )


async def stats(scope: Scope, params: dict[str, str]) -> Response | None:
    if scope["query_string"]:
        return None
    principal = await caller(scope)
    # `GovernmentOrServiceCaller`; anyone else's refusal is the route's to give.
    if principal is None or principal.kind not in _SEES_ALL:
        return None
    settings: CreditSettings = scope["app"].state.settings
    base = settings.base_line_amount
    return await answered(scope, lambda reads: stats_document(reads, base))


HOT_ROUTES = [HotRoute("GET", STATS, stats)]
