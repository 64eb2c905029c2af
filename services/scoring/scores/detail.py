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

The query runs on a few plain asyncpg connections (`connections.Connections`): no ORM, no
transaction (one statement reads one snapshot), no pre-ping round trip and no reset per
checkout.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
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
from services.scoring.scores import repository
from services.scoring.scores.packed import Unpacked, unpack
from services.scoring.specs.service import SpecCache
from services.scoring.specs.spec import ModelSpec
from shared.connections import Connections
from shared.db import plain_url

_N = len(INDICATORS)
_DESCRIBED = tuple((i.code, i.dimension.value) for i in INDICATORS)
_IMPROVEMENTS = 3

# The period's published run (the latest when no period is asked), the enterprise and its
# score in that run: the partition is pruned at execution, the row found by its key.
SCORE_SQL = """
SELECT r.id AS run_id, r.period, r.model_version, r.status AS run_status, e.id AS enterprise_id,
       e.uscc, e.name,
       s.stage, s.cohort, s.scored, s.exclusion, s.total, s.rank, s.cohort_size, s.percentile,
       s.tier, s.dimension_scores, s.packed, s."values", s.revenue, s.revenue_source, s.explain
FROM scoring.enterprises e
JOIN scoring.scores s ON s.enterprise_id = e.id
JOIN scoring.evaluation_runs r ON r.id = s.run_id
WHERE e.uscc = $1 AND s.run_id = (
    SELECT id FROM scoring.evaluation_runs
    WHERE status = 'published' AND ($2::int IS NULL OR period = $2::int)
    ORDER BY period DESC LIMIT 1
)
"""
HISTORY_SQL = repository.HISTORY_SQL.format(enterprise="$1")
STATS_SQL = "SELECT cohort_stats FROM scoring.evaluation_runs WHERE id = $1"
SOURCES_SQL = (
    "SELECT id, kind, system, precedence, period, as_of, import_id, objection_id, file_name, "
    "file_sha256, created_by, created_at FROM scoring.sources WHERE id = ANY($1::int[])"
)
_CACHE_LIMIT = 50_000
_COHORTS_LIMIT = 1024


class ScoreReader:
    """The connections and the caches of the read path (one per process, on `app.state`)."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self._stats: dict[uuid.UUID, dict[str, Any]] = {}
        # Source id -> its JSON as the government sees it, and as everyone else does.
        self._sources: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._cohorts: dict[tuple[uuid.UUID, str, int], Cohort] = {}

    @classmethod
    async def open(cls, database_url: str, size: int) -> ScoreReader:
        return cls(await Connections.open(plain_url(database_url), size))

    async def close(self) -> None:
        await self.connections.close()

    async def published_score(
        self, specs: SpecCache, uscc: str, period: int | None, *, with_person: bool
    ) -> dict[str, Any] | None:
        """The document, or None when this path cannot answer (`build_score` then does)."""
        conn = await self.connections.acquire()
        try:
            found = await self._read(conn, specs, uscc, period, with_person)
        except BaseException:
            self.connections.discard(conn)
            raise
        self.connections.release(conn)
        if found is None:
            return None
        row, spec, stats, sources = found
        return score_document(row, self._cohort(spec, row, stats), sources)

    async def published_portrait(
        self, specs: SpecCache, uscc: str, period: int | None
    ) -> tuple[dict[str, Any], dict[str, Any], list[asyncpg.Record]] | None:
        """What the portrait is made of: the document, the run's cohort statistics and the
        enterprise's score in every published run (`repository.history_rows`), on one
        connection; or None when this path cannot answer."""
        conn = await self.connections.acquire()
        try:
            found = await self._read(conn, specs, uscc, period, False)
            history = (
                None if found is None else await conn.fetch(HISTORY_SQL, found[0]["enterprise_id"])
            )
        except BaseException:
            self.connections.discard(conn)
            raise
        self.connections.release(conn)
        if found is None or history is None:
            return None
        row, spec, stats, sources = found
        return score_document(row, self._cohort(spec, row, stats), sources), stats, history

    async def _read(
        self,
        conn: asyncpg.Connection,
        specs: SpecCache,
        uscc: str,
        period: int | None,
        with_person: bool,
    ) -> tuple[asyncpg.Record, ModelSpec, dict[str, Any], dict[int, dict[str, Any]]] | None:
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
        return row, spec, stats, await self._source_docs(conn, row, with_person)

    def _cohort(self, spec: ModelSpec, row: asyncpg.Record, stats: dict[str, Any]) -> Cohort:
        """What every row of the row's cohort in its run shows alike (a run's statistics and
        a spec never change once read)."""
        cohort = row["cohort"] if row["scored"] else -1
        key = (row["run_id"], spec.version, cohort)
        found = self._cohorts.get(key)
        if found is None:
            if len(self._cohorts) >= _COHORTS_LIMIT:
                self._cohorts.clear()
            found = self._cohorts[key] = Cohort.of(spec, cohort, stats)
        return found

    async def _source_docs(
        self, conn: asyncpg.Connection, row: asyncpg.Record, with_person: bool
    ) -> dict[int, dict[str, Any]]:
        ids = {*unpack(row["packed"])[2], row["revenue_source"] or 0}
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


# The answers of `engine.target_for` that depend on nothing but the indicator. Shared by
# every document: a document is built only to be serialised at once, never changed.
_NO_WEIGHT = _unreachable("no_weight")
_NO_TARGET = _unreachable("no_target")
_AT_MAXIMUM = tuple(
    _unreachable("flag_yes" if j in _FLAG_COLUMNS else "at_maximum") for j in range(_N)
)
_DIMENSION_CODES = tuple(d.value for d in DIMENSIONS)


@dataclass(frozen=True, slots=True)
class Cohort:
    """A cohort of a run as its documents show it: the model's maxima, and with the run's
    statistics of the cohort (`explained`) each indicator's median and its targets, the
    boundary entries the evaluation chose among (`engine.explain_codes`), as
    `engine.target_for` answers them save the points still to gain."""

    maxima: list[float]
    dimension_max: list[float]
    explained: bool
    medians: list[float | None]
    # Per indicator, per boundary entry: the target without `points_gain`, and the
    # percentile that gain is counted from.
    targets: list[list[tuple[dict[str, Any], float]]]

    @classmethod
    def of(cls, spec: ModelSpec, cohort: int, stats: dict[str, Any]) -> Cohort:
        if cohort < 0:  # not scored: no maxima, no explanations
            return cls([0.0] * _N, [0.0] * len(DIMENSIONS), False, [], [])
        maxima = [float(m) for m in spec.max_points(cohort)]
        dimension_max = [float(m) for m in spec.dimension_max(cohort)]
        cohort_stats = stats.get(_stage(cohort) or "", {})
        if not cohort_stats:
            return cls(maxima, dimension_max, False, [], [])
        medians: list[float | None] = []
        targets: list[list[tuple[dict[str, Any], float]]] = []
        for code in INDICATOR_CODES:
            entry = cohort_stats["indicators"][code]
            median = entry.get("median")
            medians.append(None if median is None else float(median))
            targets.append([_reachable(e) for e in entry.get("boundaries") or ()])
        return cls(maxima, dimension_max, True, medians, targets)

    def target(self, j: int, code: int, points: float) -> dict[str, Any]:
        """`engine.target_for`'s answer, from the entry the batch chose."""
        if code >= 0:
            answer, pct = self.targets[j][code]
            return {**answer, "points_gain": self.maxima[j] * pct - points}
        if code == TARGET_NO_WEIGHT:
            return _NO_WEIGHT
        if code == TARGET_AT_MAXIMUM:
            return _AT_MAXIMUM[j]
        return _NO_TARGET


def _reachable(e: dict[str, Any]) -> tuple[dict[str, Any], float]:
    pct = float(e["percentile"])
    answer = {
        "reachable": True,
        "reason": None,
        "target_op": str(e["op"]),
        "target_value": float(e["value"]),
        "target_percentile": pct,
        "boundary": float(e["boundary"]),
    }
    return answer, pct


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def _explained(
    explain: bytes, cohort: Cohort, indicators: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reasons and improvements (`engine.reasons` / `engine.improvements`) in stored order."""
    reasons: list[dict[str, Any]] = []
    improvements: list[dict[str, Any]] = []
    for rank, raw in enumerate(explain[2 * _N : 2 * _N + REASONS_STORED]):
        j = _signed(raw)
        if j < 0:
            break
        ind = indicators[j]
        code = INDICATOR_CODES[j]
        reasons.append(
            {
                "code": code,
                "status": ind["status"],
                "explanation": explanation(ind["status"], ind["percentile"]),
                "points": ind["points"],
                "max_points": ind["max_points"],
                "points_lost": ind["max_points"] - ind["points"],
                "value": ind["value"],
                "cohort_median": cohort.medians[j],
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


def _indicators(
    row: asyncpg.Record,
    packed: Unpacked,
    cohort: Cohort,
    sources: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    explain: bytes = row["explain"]
    scored = bool(row["scored"])
    explained = scored and cohort.explained
    maxima = cohort.maxima
    points_row, value_sources = packed[1], packed[2]
    values_row = row["values"]
    indicators: list[dict[str, Any]] = []
    for j, (code, dimension) in enumerate(_DESCRIBED):
        p = points_row[j]
        points = float(p) if p == p else 0.0
        m = maxima[j]
        status = STATUSES[explain[j]]
        v = values_row[j]
        indicators.append(
            {
                "code": code,
                "dimension": dimension,
                "value": None if v is None or v != v else float(v),
                "status": status,
                "percentile": (points / m if m > 0 else (1.0 if points > 0 else 0.0))
                if scored
                else None,
                "points": points if scored else 0.0,
                "max_points": m,
                "missing": status == "missing",
                "target": cohort.target(j, _signed(explain[_N + j]), points) if explained else None,
                "source": sources.get(value_sources[j] or 0),
            }
        )
    return indicators


def score_document(
    row: asyncpg.Record, cohort: Cohort, sources: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """The detail as `service.build_score` shows it (see the module docstring)."""
    explain: bytes = row["explain"]
    assert len(explain) == EXPLAIN_WIDTH
    scored = bool(row["scored"])
    packed = unpack(row["packed"])
    indicators = _indicators(row, packed, cohort, sources)
    reasons, improvements = (
        _explained(explain, cohort, indicators) if scored and cohort.explained else ([], [])
    )
    dim_scores, dim_pcts = row["dimension_scores"], packed[0]
    return {
        "uscc": row["uscc"],
        "name": row["name"],
        "stage": _stage(row["stage"]),
        "cohort": _stage(row["cohort"]) if scored else None,
        "scored": scored,
        "exclusion": row["exclusion"],
        "total": _num(row["total"]),
        "rank": row["rank"],
        "cohort_size": row["cohort_size"],
        "percentile": _num(row["percentile"]),
        "tier": row["tier"],
        "dimensions": [
            {
                "code": d,
                "score": _num(dim_scores[k]) if scored else None,
                "max": cohort.dimension_max[k],
                "percentile": _num(dim_pcts[k]) if scored else None,
            }
            for k, d in enumerate(_DIMENSION_CODES)
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
