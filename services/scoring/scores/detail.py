"""The score (一图清) of the published run, on the read path every portal page and mini-app
call takes: one indexed query and one orjson serialisation.

What the detail shows besides the stored row (statuses, targets, reasons and improvements)
was computed once in the evaluation's vectorised batch and stored with the score
(`engine.explain_codes`); the run's cohort statistics and model spec are immutable and
cached, and so are sources (never updated once recorded). The document built here is the
one `service.build_score` builds, field for field and in the same order (a test holds the
two equal for every enterprise of a run); `build_score` remains the path for previews of
other runs, for rows stored before explanations were, and for anything this query does not
find (so every error is the one it always was).

The query runs on a pool of plain asyncpg connections: no ORM, no transaction (one
statement reads one snapshot), no pre-ping round trip per checkout.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import asyncpg
from fastapi import FastAPI

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES, INDICATORS, STAGES
from services.scoring.engine import (
    _FLAG_COLUMNS,
    EXPLAIN_WIDTH,
    REASONS_STORED,
    STATUSES,
    TARGET_AT_MAXIMUM,
    TARGET_NO_WEIGHT,
    explanation,
)
from services.scoring.provenance.schemas import SourceOut
from services.scoring.specs.service import SpecCache
from services.scoring.specs.spec import ModelSpec
from shared.db import plain_url

_N = len(INDICATORS)
_DESCRIBED = tuple((i.code, i.dimension.value) for i in INDICATORS)
_IMPROVEMENTS = 3

# The period's published run (the latest when no period is asked), the enterprise and its
# score in that run: the partition is pruned at execution, the row found by its key.
SCORE_SQL = """
SELECT r.id AS run_id, r.period, r.model_version, r.status AS run_status, e.uscc, e.name,
       s.stage, s.cohort, s.scored, s.exclusion, s.total, s.rank, s.cohort_size, s.percentile,
       s.tier, s.dimension_scores, s.dimension_percentiles, s.points, s."values", s.revenue,
       s.value_sources, s.revenue_source, s.explain
FROM scoring.enterprises e
JOIN scoring.scores s ON s.enterprise_id = e.id
JOIN scoring.evaluation_runs r ON r.id = s.run_id
WHERE e.uscc = $1 AND s.run_id = (
    SELECT id FROM scoring.evaluation_runs
    WHERE status = 'published' AND ($2::int IS NULL OR period = $2::int)
    ORDER BY period DESC LIMIT 1
)
"""
STATS_SQL = "SELECT cohort_stats FROM scoring.evaluation_runs WHERE id = $1"
SOURCES_SQL = (
    "SELECT id, kind, system, precedence, period, as_of, import_id, objection_id, file_name, "
    "file_sha256, created_by, created_at FROM scoring.sources WHERE id = ANY($1::int[])"
)
_CACHE_LIMIT = 50_000
# A cohort's 24 indicator maxima and 4 dimension maxima.
Maxima = tuple[list[float], list[float]]


class ScoreReader:
    """The pool and the caches of the read path (one per process, on `app.state`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._stats: dict[uuid.UUID, dict[str, Any]] = {}
        # Source id -> its JSON as the government sees it, and as everyone else does.
        self._sources: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._max: dict[tuple[str, int], Maxima] = {}

    @classmethod
    async def open(cls, database_url: str, size: int) -> ScoreReader:
        pool = await asyncpg.create_pool(
            plain_url(database_url), min_size=1, max_size=size, reset=_keep
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def published_score(
        self, specs: SpecCache, uscc: str, period: int | None, *, with_person: bool
    ) -> dict[str, Any] | None:
        """The document, or None when this path cannot answer (`build_score` then does)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(SCORE_SQL, uscc, period)
            if row is None or row["explain"] is None:
                return None
            spec = specs.cached(row["model_version"])
            if spec is None:
                return None
            stats = self._stats.get(row["run_id"])
            if stats is None:
                stats = json.loads(await conn.fetchval(STATS_SQL, row["run_id"]))
                if len(self._stats) >= 64:
                    self._stats.clear()
                self._stats[row["run_id"]] = stats
            sources = await self._source_docs(conn, row, with_person)
        return score_document(row, self._maxima(spec, row), stats, sources)

    def _maxima(self, spec: ModelSpec, row: asyncpg.Record) -> Maxima:
        """The cohort's indicator and dimension maxima (a spec never changes once read)."""
        cohort = row["cohort"] if row["scored"] else -1
        key = (spec.version, cohort)
        found = self._max.get(key)
        if found is None:
            if cohort < 0:
                found = ([0.0] * _N, [0.0] * len(DIMENSIONS))
            else:
                found = (
                    [float(m) for m in spec.max_points(cohort)],
                    [float(m) for m in spec.dimension_max(cohort)],
                )
            self._max[key] = found
        return found

    async def _source_docs(
        self, conn: asyncpg.Connection, row: asyncpg.Record, with_person: bool
    ) -> dict[int, dict[str, Any]]:
        ids = {*(row["value_sources"] or ()), row["revenue_source"] or 0}
        ids.discard(0)
        missing = [i for i in ids if i not in self._sources]
        if missing:
            if len(self._sources) + len(missing) > _CACHE_LIMIT:
                self._sources.clear()
            for rec in await conn.fetch(SOURCES_SQL, missing):
                full = SourceOut.model_validate(dict(rec)).model_dump(mode="json")
                self._sources[rec["id"]] = (full, {**full, "created_by": None})
        side = 0 if with_person else 1
        return {i: self._sources[i][side] for i in ids if i in self._sources}


async def _keep(conn: asyncpg.Connection) -> None:
    """No reset on release (asyncpg's default is a round trip of RESET ALL, UNLISTEN...):
    this pool only ever runs the SELECTs above, outside any transaction, and sets nothing."""


async def open_reader(app: FastAPI) -> None:
    app.state.score_reader = await ScoreReader.open(
        app.state.database_url, max(2, app.state.settings.db_pool_size // 2)
    )


async def close_reader(app: FastAPI) -> None:
    reader: ScoreReader | None = getattr(app.state, "score_reader", None)
    if reader is not None:
        await reader.close()


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _stage(i: int | None) -> str | None:
    return STAGES[i].value if i is not None and 0 <= i < len(STAGES) else None


def _unreachable(reason: str) -> dict[str, Any]:
    return {
        "reachable": False,
        "reason": reason,
        "target_op": None,
        "target_value": None,
        "target_percentile": None,
        "boundary": None,
        "points_gain": 0.0,
    }


def _target(
    j: int, code: int, points: float, max_points: float, stats: dict[str, Any]
) -> dict[str, Any]:
    """`engine.target_for`'s answer, from the entry the batch chose."""
    if code == TARGET_NO_WEIGHT:
        return _unreachable("no_weight")
    if code == TARGET_AT_MAXIMUM:
        return _unreachable("flag_yes" if j in _FLAG_COLUMNS else "at_maximum")
    if code < 0:
        return _unreachable("no_target")
    e = stats["indicators"][INDICATOR_CODES[j]]["boundaries"][code]
    pct = float(e["percentile"])
    return {
        "reachable": True,
        "reason": None,
        "target_op": str(e["op"]),
        "target_value": float(e["value"]),
        "target_percentile": pct,
        "boundary": float(e["boundary"]),
        "points_gain": max_points * pct - points,
    }


def _explained(
    row: asyncpg.Record, stats: dict[str, Any], indicators: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reasons and improvements (`engine.reasons` / `engine.improvements`) in stored order."""
    order = row["explain"][2 * _N : 2 * _N + REASONS_STORED]
    reasons: list[dict[str, Any]] = []
    improvements: list[dict[str, Any]] = []
    for rank, raw in enumerate(order):
        j = raw - 256 if raw > 127 else raw
        if j < 0:
            break
        ind = indicators[j]
        code = INDICATOR_CODES[j]
        median = stats["indicators"][code]["median"]
        reasons.append(
            {
                "code": code,
                "status": ind["status"],
                "explanation": explanation(ind["status"], ind["percentile"]),
                "points": ind["points"],
                "max_points": ind["max_points"],
                "points_lost": ind["max_points"] - ind["points"],
                "value": ind["value"],
                "cohort_median": None if median is None else float(median),
                "missing": ind["missing"],
            }
        )
        if rank < _IMPROVEMENTS:
            improvements.append(
                {
                    **ind["target"],
                    "code": code,
                    "status": ind["status"],
                    "value": ind["value"],
                    "percentile": ind["points"] / ind["max_points"],
                }
            )
    return reasons, improvements


def score_document(
    row: asyncpg.Record,
    maxima_of_cohort: Maxima,
    stats: dict[str, Any],
    sources: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """The detail as `service.build_score` shows it (see the module docstring)."""
    explain: bytes = row["explain"]
    assert len(explain) == EXPLAIN_WIDTH
    scored = bool(row["scored"])
    cohort = row["cohort"] if scored else -1
    cohort_stats = stats.get(_stage(cohort) or "", {}) if scored else {}
    maxima, dim_max = maxima_of_cohort
    value_sources = row["value_sources"] or [0] * _N
    indicators: list[dict[str, Any]] = []
    points_row, values_row = row["points"], row["values"]
    for j, (code, dimension) in enumerate(_DESCRIBED):
        p = points_row[j]
        points = float(p) if p == p else 0.0
        m = maxima[j]
        status = STATUSES[explain[j]]
        value = _num(values_row[j])
        target = None
        if cohort_stats:
            t = explain[_N + j]
            target = _target(j, t - 256 if t > 127 else t, points, m, cohort_stats)
        indicators.append(
            {
                "code": code,
                "dimension": dimension,
                "value": value,
                "status": status,
                "percentile": (points / m if m > 0 else (1.0 if points > 0 else 0.0))
                if scored
                else None,
                "points": points if scored else 0.0,
                "max_points": m,
                "missing": status == "missing",
                "target": target,
                "source": sources.get(value_sources[j] or 0),
            }
        )
    reasons, improvements = _explained(row, cohort_stats, indicators) if cohort_stats else ([], [])
    return {
        "uscc": row["uscc"],
        "name": row["name"],
        "stage": _stage(row["stage"]),
        "cohort": _stage(cohort) if scored else None,
        "scored": scored,
        "exclusion": row["exclusion"],
        "total": _num(row["total"]),
        "rank": row["rank"],
        "cohort_size": row["cohort_size"],
        "percentile": _num(row["percentile"]),
        "tier": row["tier"],
        "dimensions": [
            {
                "code": d.value,
                "score": _num(row["dimension_scores"][k]) if scored else None,
                "max": dim_max[k],
                "percentile": _num(row["dimension_percentiles"][k]) if scored else None,
            }
            for k, d in enumerate(DIMENSIONS)
        ],
        "period": row["period"],
        "run_id": str(row["run_id"]),
        "run_status": row["run_status"],
        "model_version": row["model_version"],
        "revenue": _num(row["revenue"]),
        "revenue_source": sources.get(row["revenue_source"] or 0),
        "indicators": indicators,
        "reasons": reasons,
        "improvements": improvements,
    }
