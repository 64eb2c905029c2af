"""`validate`: every section from the same inputs, the API contract's keys, provenance."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from scripts.bench_validation import run, synthetic
from services.scoring.governance import (
    FairnessMetric,
    GovernanceInputError,
    Grouping,
    PeriodScores,
    ValidationConfig,
    discrimination,
    migration_matrix,
    psi,
    tier_table,
    validate,
)


def _periods(n: int = 3000, seed: int = 1) -> tuple[PeriodScores, PeriodScores, np.ndarray]:
    rng = np.random.default_rng(seed)
    q0 = rng.normal(0, 1, n)
    q1 = 0.9 * q0 + 0.4 * rng.normal(0, 1, n)

    def period(q: np.ndarray, year: int, ids: np.ndarray) -> PeriodScores:
        score = np.round(50 + 12 * q + rng.normal(0, 4, n), 3)
        tier = np.searchsorted(np.quantile(score, [0.1, 0.325, 0.675, 0.9]), score) + 1
        score[:5] = np.nan  # five firms not scored
        tier[:5] = 0
        return PeriodScores(
            period=year,
            run_id=f"run-{year}",
            enterprise_ids=ids,
            score=score,
            tier=tier,
            characteristics={"rd_expense": np.exp(q + rng.normal(0, 1, n)), "input": score / 3},
            run_fingerprint=f"fp-{year}",
        )

    ids = np.arange(n)
    before = period(q0, 2024, np.where(ids < 100, ids + 10_000, ids))
    after = period(q1, 2025, ids)
    bad = np.where(rng.random(n) < 0.8, rng.random(n) < 1 / (1 + np.exp(3 + q1)), np.nan)
    return before, after, bad


def test_sections_equal_the_functions_on_the_same_rows() -> None:
    before, after, bad = _periods()
    groups = {"stage": Grouping.of(np.arange(3000) % 3, ["seed", "growth", "mature"])}
    metrics = [FairnessMetric("mean_score", np.nan_to_num(np.asarray(after.score), nan=0.0))]
    cfg = ValidationConfig(resamples=200, score_decimals=2)
    report = validate(
        "v1",
        after,
        bad,
        reference=before,
        expected_bad_rate={1: 0.2, 2: 0.1, 3: 0.05, 4: 0.03, 5: 0.01},
        groupings=groups,
        fairness_metrics=metrics,
        config=cfg,
    )
    score = np.round(np.asarray(after.score), 2)
    tier = np.asarray(after.tier)
    observed = ~np.isnan(score) & ~np.isnan(bad)
    d = discrimination(score[observed], bad[observed], resamples=200, seed=0)
    assert report.discrimination == d
    assert (report.auc, report.ks, report.gini) == (d.auc, d.ks, d.gini)
    assert report.tiers == tier_table(tier[observed], bad[observed]).rows
    assert report.observed == int(observed.sum())
    assert report.scored == 2995
    ref_score = np.round(np.asarray(before.score), 2)
    p = psi(ref_score[~np.isnan(ref_score)], score[~np.isnan(score)])
    assert report.stability == p and report.psi == p.psi and report.psi_flag == p.flag
    assert [c.name for c in report.characteristics] == ["rd_expense", "input"]
    # Migration pairs the 2,900 firms present in both periods (ids 100.. are shared).
    m = migration_matrix(np.asarray(before.tier)[100:], tier[100:])
    assert report.migration == m
    assert report.concentration.counts == tuple(int(np.sum(tier == t)) for t in range(1, 6))
    assert report.calibration is not None and len(report.calibration.rows) == 5
    assert report.fairness[0].grouping == "stage"
    assert report.fairness[0].metrics[0].count == 2995  # scored firms only
    assert report.notes == ()


def test_contract_json_and_provenance() -> None:
    before, after, bad = _periods()
    report = validate("v1", after, bad, reference=before, config=ValidationConfig(resamples=50))
    body = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    for key in ("auc", "ks", "gini", "psi"):
        assert isinstance(body[key], float)
    assert [set(t) >= {"tier", "count", "bad", "bad_rate"} for t in body["tiers"]] == [True] * 5
    curve = body["discrimination"]["curve"]
    assert 3 <= len(curve["fpr"]) <= 200
    assert len(body["migration"]["counts"]) == 5
    prov = body["provenance"]
    assert (prov["model_version"], prov["period"], prov["run_id"]) == ("v1", 2025, "run-2025")
    assert (prov["reference_period"], prov["reference_run_id"]) == (2024, "run-2024")
    assert prov["run_fingerprint"] == "fp-2025"
    names = {i["name"] for i in prov["inputs"]}
    assert {"score", "tier", "bad", "characteristics", "reference_score"} <= names
    assert "calibration needs expected bad rates per tier" in body["notes"]
    assert body["config"]["resamples"] == 50


def test_same_inputs_same_report_and_a_changed_input_changes_its_digest() -> None:
    before, after, bad = _periods()
    cfg = ValidationConfig(resamples=50)
    a = validate("v1", after, bad, reference=before, config=cfg)
    b = validate("v1", after, bad.copy(), reference=before, config=cfg)
    assert a.to_dict() == b.to_dict()
    changed = bad.copy()
    changed[np.flatnonzero(changed == 0)[0]] = 1
    c = validate("v1", after, changed, reference=before, config=cfg)
    digests = {i.name: i.sha256 for i in a.provenance.inputs}
    digests_c = {i.name: i.sha256 for i in c.provenance.inputs}
    assert digests["bad"] != digests_c["bad"]
    assert {k: v for k, v in digests.items() if k != "bad"} == {
        k: v for k, v in digests_c.items() if k != "bad"
    }


def test_a_young_programme_still_gets_what_can_be_computed() -> None:
    _, after, _ = _periods()
    no_outcomes = np.full(3000, np.nan)
    report = validate("v1", after, no_outcomes, config=ValidationConfig(resamples=10))
    assert report.discrimination is None and report.auc is None
    assert report.stability is None and report.migration is None and report.psi is None
    assert report.observed == 0
    assert [t.count for t in report.tiers] == [0] * 5
    assert report.concentration.unrated == 5
    assert len(report.notes) == 3
    assert json.dumps(report.to_dict(), allow_nan=False)


def test_inconsistent_input_is_refused() -> None:
    before, after, bad = _periods()
    tier = np.asarray(after.tier).copy()
    tier[0] = 3  # a tier for a firm without a score
    broken = dataclasses.replace(after, tier=tier)
    with pytest.raises(GovernanceInputError, match="score without a tier or a tier without"):
        validate("v1", broken, bad)
    with pytest.raises(GovernanceInputError, match="only 0, 1 or NaN"):
        validate("v1", after, np.where(np.isnan(bad), np.nan, 2.0))
    with pytest.raises(GovernanceInputError, match="one entry per enterprise"):
        validate("v1", after, bad[:10])
    short = dataclasses.replace(after, characteristics={"x": np.ones(3)})
    with pytest.raises(GovernanceInputError, match="one entry per enterprise"):
        validate("v1", short, bad)
    with pytest.raises(GovernanceInputError, match="differ in"):
        validate("v1", after, bad, reference=dataclasses.replace(before, characteristics={}))


def test_benchmark_population_runs_small() -> None:
    data = synthetic(4000, seed=3)
    report = run(data, ValidationConfig(resamples=20))
    assert report.discrimination is not None and report.discrimination.auc > 0.6
    assert report.rank_ordering is not None and report.rank_ordering.trend is not None
    assert report.migration is not None and report.migration.count < 4000
    assert {f.grouping for f in report.fairness} == {"stage", "industry", "district", "age_band"}
    assert len(report.characteristics) == 28
    flags = {c.name: c.flag for c in report.characteristics}
    assert flags["equity_raised"] == "act"
