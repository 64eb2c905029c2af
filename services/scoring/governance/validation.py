"""One model version, one period: the whole validation, with what it was computed from.

`validate` runs every statistic of this package over one published period (the scores as
published, the outcomes observed afterwards) and, when given, the period before it, and returns
a `ValidationReport` that names the model version, the evaluation runs and a sha256 of every
input array, so a reviewer can tell exactly which data a figure came from and recompute it.
`ValidationReport.to_dict()` is the JSON of `/v1/scoring/models/{version}/validation?period=`:
`auc`, `ks`, `gini`, `psi` and `tiers` (`tier`, `count`, `bad`, `bad_rate`) at the top, every
section in full below, curve points included.

Populations: PSI, CSI, concentration, migration and fairness look at the scored firms (a score
and a tier); discrimination, rank ordering and calibration at the scored firms whose outcome is
known (`bad` is 0 or 1, NaN where no loan was observed). A section that cannot be computed (no
defaults yet, no previous period) is None and `notes` says why: a young programme must still
get its stability and fairness figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from services.scoring.governance._base import (
    FloatArray,
    GovernanceInputError,
    IntArray,
    Result,
    as_float_vector,
    as_tier_vector,
    fingerprint,
    same_length,
)
from services.scoring.governance.discrimination import (
    DEFAULT_CONFIDENCE,
    DEFAULT_CURVE_POINTS,
    DEFAULT_RESAMPLES,
    Discrimination,
    discrimination,
)
from services.scoring.governance.fairness import (
    DEFAULT_MIN_GROUP_SIZE,
    DEFAULT_RATIO_THRESHOLD,
    CompareTo,
    FairnessMetric,
    FairnessReport,
    Grouping,
    fairness,
)
from services.scoring.governance.migration import (
    Concentration,
    Migration,
    concentration,
    match_enterprises,
    migration_matrix,
)
from services.scoring.governance.stability import (
    ACT_AT,
    DEFAULT_BINS,
    DEFAULT_EPSILON,
    WATCH_AT,
    Flag,
    StabilityIndex,
    characteristic_stability,
    psi,
)
from services.scoring.governance.tiers import (
    DEFAULT_ALPHA,
    DEFAULT_TIERS,
    RED_AT,
    YELLOW_AT,
    Calibration,
    RankOrdering,
    TierRow,
    TierTable,
    calibration,
    tier_table,
)


@dataclass(frozen=True, slots=True)
class PeriodScores:
    """One published evaluation run, row i being one enterprise throughout.

    `score`: the published total (NaN for a firm not scored); `tier`: 1..n_tiers (0 = not
    scored); `characteristics`: per-firm values of each indicator and dimension score, by code.
    `run_fingerprint`: the run's own input fingerprint (`evaluation_runs.input_fingerprint`).
    """

    period: int
    run_id: str
    enterprise_ids: npt.ArrayLike
    score: npt.ArrayLike
    tier: npt.ArrayLike
    characteristics: Mapping[str, npt.ArrayLike] = field(default_factory=dict)
    run_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class ValidationConfig(Result):
    """Every knob of a validation; stored in the report so a figure can be recomputed."""

    n_tiers: int = DEFAULT_TIERS
    # Scores are compared at the precision they are published with (2 decimals on 0-100): a
    # difference below it is no ranking a bank can act on, and it bounds the distinct values,
    # hence the bootstrap's cost. None = use the scores as given.
    score_decimals: int | None = 2
    resamples: int = DEFAULT_RESAMPLES
    confidence: float = DEFAULT_CONFIDENCE
    seed: int | None = 0
    curve_points: int = DEFAULT_CURVE_POINTS
    alpha: float = DEFAULT_ALPHA
    yellow_at: float = YELLOW_AT
    red_at: float = RED_AT
    # Total-score PSI bins: a count of reference quantiles or fixed score cut points.
    psi_bins: int | tuple[float, ...] = DEFAULT_BINS
    characteristic_bins: int = DEFAULT_BINS
    epsilon: float = DEFAULT_EPSILON
    watch_at: float = WATCH_AT
    act_at: float = ACT_AT
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    ratio_threshold: float = DEFAULT_RATIO_THRESHOLD
    compare_to: CompareTo = "overall"


@dataclass(frozen=True, slots=True)
class InputDigest(Result):
    name: str
    sha256: str
    rows: int


@dataclass(frozen=True, slots=True)
class Provenance(Result):
    model_version: str
    period: int
    run_id: str
    run_fingerprint: str | None
    reference_period: int | None
    reference_run_id: str | None
    reference_run_fingerprint: str | None
    inputs: tuple[InputDigest, ...]


@dataclass(frozen=True, slots=True)
class ValidationReport(Result):
    provenance: Provenance
    # The API contract's headline figures (None where the section could not be computed).
    auc: float | None
    ks: float | None
    gini: float | None
    psi: float | None
    psi_flag: Flag | None
    tiers: tuple[TierRow, ...]
    scored: int
    observed: int
    discrimination: Discrimination | None
    rank_ordering: RankOrdering | None
    calibration: Calibration | None
    stability: StabilityIndex | None
    characteristics: tuple[StabilityIndex, ...]
    migration: Migration | None
    concentration: Concentration
    fairness: tuple[FairnessReport, ...]
    config: ValidationConfig
    notes: tuple[str, ...]


def expected_rates(table: TierTable) -> dict[int, float]:
    """A reference period's observed bad rate per tier, as the expectation for `calibration`.

    Tiers without firms or with no default at all (a rate of 0 promises nothing testable) or
    only defaults are left out; they appear among the calibration's untested tiers.
    """
    return {r.tier: r.bad / r.count for r in table.rows if r.count and 0 < r.bad < r.count}


@dataclass(frozen=True, slots=True)
class _Period:
    ids: npt.NDArray[Any]
    score: FloatArray
    tier: IntArray
    scored: npt.NDArray[np.bool_]


def _period(p: PeriodScores, label: str, cfg: ValidationConfig) -> _Period:
    score = as_float_vector(p.score, f"{label} score", allow_nan=True)
    tier = as_tier_vector(p.tier, f"{label} tier", cfg.n_tiers)
    ids = np.asarray(p.enterprise_ids)
    same_length(f"{label} score", score, f"{label} tier", tier)
    same_length(f"{label} score", score, f"{label} enterprise_ids", ids)
    scored = ~np.isnan(score)
    if not np.array_equal(scored, tier > 0):
        raise GovernanceInputError(
            f"{label}: a firm has a score without a tier or a tier without a score"
        )
    if cfg.score_decimals is not None:
        score = np.round(score, cfg.score_decimals)
    for code, values in p.characteristics.items():
        same_length(f"{label} score", score, f"{label} {code}", np.asarray(values))
    return _Period(ids=ids, score=score, tier=tier, scored=scored)


def _scored_only(
    columns: Mapping[str, npt.ArrayLike], scored: npt.NDArray[np.bool_]
) -> dict[str, npt.NDArray[Any]]:
    # Copying 28 columns of a million rows costs ~0.3 s; skip it when every firm is scored.
    if scored.all():
        return {k: np.asarray(v) for k, v in columns.items()}
    return {k: np.asarray(v)[scored] for k, v in columns.items()}


def _digests(
    cur: PeriodScores,
    bad: npt.NDArray[Any],
    ref: PeriodScores | None,
    groupings: Mapping[str, Grouping],
    metrics: Sequence[FairnessMetric],
) -> tuple[InputDigest, ...]:
    out = []

    def add(name: str, *arrays: npt.ArrayLike) -> None:
        out.append(InputDigest(name, fingerprint(*arrays), int(np.asarray(arrays[-1]).shape[0])))

    for prefix, p in (("", cur), ("reference_", ref)):
        if p is None:
            continue
        add(f"{prefix}enterprise_ids", p.enterprise_ids)
        add(f"{prefix}score", p.score)
        add(f"{prefix}tier", p.tier)
        if p.characteristics:
            codes = sorted(p.characteristics)
            add(
                f"{prefix}characteristics",
                np.array(codes),
                *(p.characteristics[c] for c in codes),
            )
    add("bad", bad)
    for name in sorted(groupings):
        g = groupings[name]
        add(f"grouping:{name}", np.array(g.labels), g.codes)
    for m in metrics:
        add(f"metric:{m.name}", m.values)
    return tuple(out)


def validate(
    model_version: str,
    current: PeriodScores,
    bad: npt.ArrayLike,
    *,
    reference: PeriodScores | None = None,
    expected_bad_rate: Mapping[int, float] | None = None,
    groupings: Mapping[str, Grouping] | None = None,
    fairness_metrics: Sequence[FairnessMetric] = (),
    config: ValidationConfig | None = None,
) -> ValidationReport:
    """The validation of `model_version` on `current`, against `reference` (the period before).

    `bad` is aligned with `current`'s rows: 1 defaulted, 0 repaid or performing, NaN no outcome.
    `groupings` (stage, industry, district, age band...) and `fairness_metrics` are aligned with
    `current` too; fairness looks at the scored firms only.
    """
    cfg = config or ValidationConfig()
    groupings = groupings or {}
    notes: list[str] = []
    cur = _period(current, "current", cfg)
    outcome = as_float_vector(bad, "bad", allow_nan=True)
    # The sha256 of every input is a fifth of the CPU at 1M firms (profiled) and hashlib and
    # numpy release the GIL, so it runs in a second thread beside the statistics.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digests") as pool:
        digests = pool.submit(_digests, current, outcome, reference, groupings, fairness_metrics)
        same_length("current score", cur.score, "bad", outcome)
        known = ~np.isnan(outcome)
        if not np.isin(outcome[known], (0.0, 1.0)).all():
            raise GovernanceInputError("bad must hold only 0, 1 or NaN (no outcome)")
        observed = cur.scored & known
        n_observed = int(observed.sum())

        table = tier_table(
            cur.tier[observed], outcome[observed], n_tiers=cfg.n_tiers, alpha=cfg.alpha
        )
        disc: Discrimination | None = None
        n_bad = int(outcome[observed].sum())
        if 0 < n_bad < n_observed:
            disc = discrimination(
                cur.score[observed],
                outcome[observed],
                resamples=cfg.resamples,
                confidence=cfg.confidence,
                seed=cfg.seed,
                max_curve_points=cfg.curve_points,
            )
        else:
            notes.append(
                f"discrimination needs defaulted and non-defaulted firms among the {n_observed} "
                f"scored firms with an outcome ({n_bad} defaulted)"
            )
        calib: Calibration | None = None
        if expected_bad_rate:
            calib = calibration(
                table,
                expected_bad_rate,
                yellow_at=cfg.yellow_at,
                red_at=cfg.red_at,
                alpha=cfg.alpha,
            )
        else:
            notes.append("calibration needs expected bad rates per tier")

        stab: StabilityIndex | None = None
        chars: tuple[StabilityIndex, ...] = ()
        migr: Migration | None = None
        if reference is not None:
            ref = _period(reference, "reference", cfg)
            stab = psi(
                ref.score[ref.scored],
                cur.score[cur.scored],
                name="total",
                bins=cfg.psi_bins,
                epsilon=cfg.epsilon,
                watch_at=cfg.watch_at,
                act_at=cfg.act_at,
            )
            chars = characteristic_stability(
                _scored_only(reference.characteristics, ref.scored),
                _scored_only(current.characteristics, cur.scored),
                bins=cfg.characteristic_bins,
                epsilon=cfg.epsilon,
                watch_at=cfg.watch_at,
                act_at=cfg.act_at,
            )
            ia, ib = match_enterprises(ref.ids, cur.ids)
            migr = migration_matrix(ref.tier[ia], cur.tier[ib], n_tiers=cfg.n_tiers)
        else:
            notes.append("stability and migration need the previous period")

        reports = []
        for name, g in groupings.items():
            same_length("current score", cur.score, f"grouping {name}", g.codes)
            sub = Grouping(codes=g.codes[cur.scored], labels=g.labels)
            metrics = []
            for m in fairness_metrics:
                values = np.asarray(m.values)
                same_length("current score", cur.score, f"metric {m.name}", values)
                metrics.append(
                    FairnessMetric(m.name, values[cur.scored], m.direction, m.difference_threshold)
                )
            reports.append(
                fairness(
                    name,
                    sub,
                    metrics,
                    min_group_size=cfg.min_group_size,
                    ratio_threshold=cfg.ratio_threshold,
                    compare_to=cfg.compare_to,
                )
            )

        return ValidationReport(
            provenance=Provenance(
                model_version=model_version,
                period=current.period,
                run_id=current.run_id,
                run_fingerprint=current.run_fingerprint,
                reference_period=reference.period if reference else None,
                reference_run_id=reference.run_id if reference else None,
                reference_run_fingerprint=reference.run_fingerprint if reference else None,
                inputs=digests.result(),
            ),
            auc=disc.auc if disc else None,
            ks=disc.ks if disc else None,
            gini=disc.gini if disc else None,
            psi=stab.psi if stab else None,
            psi_flag=stab.flag if stab else None,
            tiers=table.rows,
            scored=int(cur.scored.sum()),
            observed=n_observed,
            discrimination=disc,
            rank_ordering=table.rank_ordering,
            calibration=calib,
            stability=stab,
            characteristics=chars,
            migration=migr,
            concentration=concentration(cur.tier, n_tiers=cfg.n_tiers),
            fairness=tuple(reports),
            config=cfg,
            notes=tuple(notes),
        )
