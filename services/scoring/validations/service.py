"""One model version on one period: the validation, computed once per input and stored.

The inputs are the run's scores (immutable), the previous period's published run (for
stability and migration) and credit's outcomes (addressed by the sha256 credit gives of
them). A stored report is keyed by all of them and the configuration, so a request whose
inputs have not changed is one row read; new outcome reports change the snapshot and the next
request computes a new report (the old one stays: what was shown then can be shown again).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from contracts.catalogue import STAGES
from services.scoring.governance import (
    FairnessMetric,
    GovernanceInputError,
    Grouping,
    PeriodScores,
    ValidationConfig,
    age_bands,
    expected_rates,
    tier_table,
    validate,
)
from services.scoring.models import EvaluationRun, ValidationRecord
from services.scoring.validations import outcomes as outcome_source
from services.scoring.validations.outcomes import Outcomes
from services.scoring.validations.repository import (
    RunColumns,
    latest_run_of,
    published_run,
    run_columns,
)
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import NotFound, Unprocessable


class NoRunForModel(NotFound):
    slug = "no-run-for-model"
    title = "This model version has no published scores for the period"


class InvalidValidationInput(Unprocessable):
    slug = "invalid-validation-input"
    title = "The validation cannot be computed from these inputs"


@dataclass(frozen=True, slots=True)
class Knobs:
    """What a caller may set: the fairness threshold (ratio, the four-fifths rule by default)
    and the smallest group that can be flagged."""

    disparity_threshold: float = 0.8
    min_group_size: int = 30

    def config(self, n_tiers: int) -> ValidationConfig:
        return ValidationConfig(
            n_tiers=n_tiers,
            ratio_threshold=self.disparity_threshold,
            min_group_size=self.min_group_size,
        )


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _grouping(values: npt.NDArray[Any]) -> Grouping:
    """Codes into the sorted distinct labels (what `np.unique(..., return_inverse=True)`
    gives), by pyarrow's hash encoding: np.unique sorts a million Python strings, seconds per
    grouping at a province's size."""
    encoded = pa.array(values, type=pa.string()).dictionary_encode()
    found = encoded.dictionary.to_pylist()
    order = sorted(range(len(found)), key=found.__getitem__)
    rank = np.empty(len(found), dtype=np.int64)
    rank[order] = np.arange(len(found))
    codes = rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    return Grouping(codes=codes, labels=tuple(found[i] for i in order))


def groupings(cols: RunColumns, period: int) -> dict[str, Grouping]:
    stage_names = np.array([s.value for s in STAGES] + ["unstaged"], dtype=object)
    stage = stage_names[np.where(cols.stage >= 0, cols.stage, len(STAGES))]
    return {
        "stage": _grouping(stage),
        "industry": _grouping(cols.industry),
        "district": _grouping(cols.district),
        "age_band": age_bands(cols.founded_on, date(period, 12, 31)),
    }


def fairness_metrics(
    cols: RunColumns,
    bad: npt.NDArray[np.float64],
    n_tiers: int,
    outcomes: Outcomes | None = None,
) -> list[FairnessMetric]:
    """Mean score, share in the top two tiers, default rate; with credit's data also the
    approval rate (firms with a decided application) and the share with a line (when credit's
    lines come from this very run)."""
    top = np.where(cols.tier > 0, (cols.tier >= n_tiers - 1).astype(np.float64), np.nan)
    metrics = [
        FairnessMetric("mean_score", cols.score, "higher_is_better", difference_threshold=10.0),
        FairnessMetric("top_two_tiers", top, "higher_is_better"),
    ]
    if outcomes is not None:
        lines = outcomes.has_line(cols.uscc, cols.tier > 0)
        if lines is not None and outcomes.lines_run_id == str(cols.run.id):
            metrics.append(FairnessMetric("line_at_or_above_base", lines, "higher_is_better"))
        metrics.append(
            FairnessMetric("approval_rate", outcomes.approval(cols.uscc), "higher_is_better")
        )
    metrics.append(
        FairnessMetric("default_rate", bad, "lower_is_better", difference_threshold=0.05)
    )
    return metrics


def period_scores(cols: RunColumns) -> PeriodScores:
    return PeriodScores(
        period=cols.run.period,
        run_id=str(cols.run.id),
        enterprise_ids=cols.uscc.astype(str),
        score=cols.score,
        tier=cols.tier,
        characteristics=cols.characteristics,
        run_fingerprint=cols.run.input_fingerprint,
    )


def compute(
    cur: RunColumns,
    outcomes: Outcomes,
    ref: RunColumns | None,
    ref_outcomes: Outcomes | None,
    cfg: ValidationConfig,
) -> dict[str, Any]:
    """The report's JSON (pure: no I/O), run in a worker thread."""
    bad = outcomes.aligned(cur.uscc)
    expected = None
    if ref is not None and ref_outcomes is not None and ref_outcomes.bad_by_uscc:
        ref_bad = ref_outcomes.aligned(ref.uscc)
        seen = (ref.tier > 0) & ~np.isnan(ref_bad)
        expected = expected_rates(tier_table(ref.tier[seen], ref_bad[seen], n_tiers=cfg.n_tiers))
    report = validate(
        cur.run.model_version,
        period_scores(cur),
        bad,
        reference=period_scores(ref) if ref is not None else None,
        expected_bad_rate=expected or None,
        groupings=groupings(cur, cur.run.period),
        fairness_metrics=fairness_metrics(cur, bad, cfg.n_tiers, outcomes),
        config=cfg,
    )
    return report.to_dict()


async def _run_for(
    session: AsyncSession, principal: Principal, version: str, period: int
) -> EvaluationRun:
    published = await published_run(session, period)
    if published is not None and published.model_version == version:
        return published
    # Unpublished runs (a challenger's shadow run) are the government's to look at.
    if principal.kind is PrincipalKind.GOVERNMENT:
        run = await latest_run_of(session, version, period)
        if run is not None:
            return run
    raise NoRunForModel(f"No published run of {period} with model {version}")


async def _stored(
    session: AsyncSession, run: EvaluationRun, ref_id: uuid.UUID | None, snap: str, cfg: str
) -> dict[str, Any] | None:
    row = await session.scalar(
        select(ValidationRecord)
        .options(undefer(ValidationRecord.report))
        .where(
            ValidationRecord.run_id == run.id,
            ValidationRecord.reference_run_id.is_not_distinct_from(ref_id),
            ValidationRecord.outcomes_snapshot == snap,
            ValidationRecord.config_sha256 == cfg,
        )
    )
    return None if row is None else dict(row.report)


async def validation_of_run(
    app: FastAPI, session: AsyncSession, run: EvaluationRun, knobs: Knobs, n_tiers: int
) -> dict[str, Any]:
    reference = await published_run(session, run.period - 1)
    outcomes = await outcome_source.fetch(app, run.period)
    ref_outcomes = await outcome_source.fetch(app, run.period - 1) if reference else None
    cfg = knobs.config(n_tiers)
    snap = _sha([outcomes.snapshot, ref_outcomes.snapshot if ref_outcomes else None])
    cfg_sha = _sha(cfg.to_dict())
    ref_id = reference.id if reference else None
    stored = await _stored(session, run, ref_id, snap, cfg_sha)
    if stored is not None:
        return {**stored, "cached": True}
    started = time.perf_counter()
    cur = await run_columns(session, run)
    ref = await run_columns(session, reference) if reference else None
    try:
        body = await asyncio.to_thread(compute, cur, outcomes, ref, ref_outcomes, cfg)
    except GovernanceInputError as exc:
        raise InvalidValidationInput(str(exc)) from exc
    duration_ms = int((time.perf_counter() - started) * 1000)
    body = {
        "model_version": run.model_version,
        "period": run.period,
        "run_id": str(run.id),
        "run_status": run.status,
        "reference_run_id": str(ref_id) if ref_id else None,
        "outcomes": outcomes.meta(),
        "reference_outcomes": ref_outcomes.meta() if ref_outcomes else None,
        "outcomes_snapshot": snap,
        "synthetic": outcomes.synthetic,
        "computed_at": datetime.now(UTC).isoformat(),
        "duration_ms": duration_ms,
        **body,
    }
    await session.execute(
        insert(ValidationRecord)
        .values(
            id=uuid.uuid4(),
            model_version=run.model_version,
            period=run.period,
            run_id=run.id,
            reference_run_id=ref_id,
            outcomes_snapshot=snap,
            config_sha256=cfg_sha,
            synthetic=outcomes.synthetic,
            report=body,
            duration_ms=duration_ms,
        )
        .on_conflict_do_nothing()
    )
    return {**body, "cached": False}


async def validation(
    app: FastAPI,
    session: AsyncSession,
    principal: Principal,
    version: str,
    period: int,
    knobs: Knobs,
    n_tiers: int,
) -> dict[str, Any]:
    run = await _run_for(session, principal, version, period)
    return await validation_of_run(app, session, run, knobs, n_tiers)


async def history(session: AsyncSession, version: str) -> list[dict[str, Any]]:
    """The headline figures of every stored validation of `version`, by period (PSI over
    periods for the portal), newest computation per period."""
    rows = (
        await session.execute(
            select(ValidationRecord)
            .options(undefer(ValidationRecord.report))
            .where(ValidationRecord.model_version == version)
            .order_by(ValidationRecord.period, ValidationRecord.created_at.desc())
        )
    ).scalars()
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r.period in out:
            continue
        rep = r.report
        out[r.period] = {
            "period": r.period,
            "run_id": str(r.run_id),
            "auc": rep.get("auc"),
            "ks": rep.get("ks"),
            "gini": rep.get("gini"),
            "psi": rep.get("psi"),
            "psi_flag": rep.get("psi_flag"),
            "observed": rep.get("observed"),
            "synthetic": r.synthetic,
            "computed_at": r.created_at.isoformat(),
        }
    return list(out.values())
