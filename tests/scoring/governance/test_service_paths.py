"""The pieces between the statistics and the API, each on a small hand-computed case."""

from __future__ import annotations

import importlib
import uuid
from datetime import date

import numpy as np
import pytest

from devtools.backbook import BASE_BAD_RATE, backbook, robust_z
from scripts.demo_data import _tilt
from services.scoring.challengers.service import _distribution
from services.scoring.models import EvaluationRun
from services.scoring.validations.outcomes import Outcomes
from services.scoring.validations.repository import RunColumns
from services.scoring.validations.service import fairness_metrics, groupings
from tests.scoring_fixtures import demo


def _outcomes(flags: dict[str, bool]) -> Outcomes:
    return Outcomes(2024, "s", "2025-01-01", "2025-12-31", "d", True, 7, flags)


def test_outcomes_align_bad_good_and_unobserved() -> None:
    uscc = np.array(["A", "B", "C", "D"], dtype=object)
    got = _outcomes({"B": True, "D": False, "Z": True}).aligned(uscc)
    assert np.array_equal(got, np.array([np.nan, 1.0, np.nan, 0.0]), equal_nan=True)
    assert _outcomes({"B": True, "D": False}).meta()["bad"] == 1


def _cols() -> RunColumns:
    run = EvaluationRun(id=uuid.uuid4(), period=2024, model_version="1.0")
    return RunColumns(
        run=run,
        uscc=np.array(["A", "B", "C", "D"], dtype=object),
        score=np.array([80.0, 40.0, np.nan, 60.0]),
        tier=np.array([5, 2, 0, 4]),
        stage=np.array([0, 4, -1, 0]),
        characteristics={},
        industry=np.array(["软件", "制造", "unknown", "软件"], dtype=object),
        district=np.array(["滨江区", "滨江区", "unknown", "西湖区"], dtype=object),
        founded_on=np.array(
            ["2022-06-01", "2010-01-01", "NaT", "2024-12-31"], dtype="datetime64[D]"
        ),
    )


def test_groupings_label_every_firm() -> None:
    g = groupings(_cols(), 2024)
    assert set(g) == {"stage", "industry", "district", "age_band"}
    stage = [g["stage"].labels[c] for c in g["stage"].codes]
    assert stage == ["seed", "mature", "unstaged", "seed"]
    age = [g["age_band"].labels[c] for c in g["age_band"].codes]
    assert age == ["0-3", "10-20", "unknown", "0-3"]
    district = [g["district"].labels[c] for c in g["district"].codes]
    assert district == ["滨江区", "滨江区", "unknown", "西湖区"]


def test_fairness_metrics_populations() -> None:
    bad = np.array([0.0, 1.0, np.nan, np.nan])
    m = {x.name: np.asarray(x.values) for x in fairness_metrics(_cols(), bad, 5)}
    # Top two tiers of five: 4 and 5; the unscored firm is outside the population.
    assert np.array_equal(m["top_two_tiers"], [1.0, 0.0, np.nan, 1.0], equal_nan=True)
    assert np.array_equal(m["default_rate"], bad, equal_nan=True)


def test_distribution_histogram_and_tiers() -> None:
    d = _distribution(np.array([5.0, 15.0, 15.0, 100.0, np.nan]), np.array([1, 2, 2, 5, 0]), 5)
    assert d["scored"] == 4 and d["enterprises"] == 5
    assert d["histogram"]["counts"] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]  # 100 in the last bin
    assert d["mean"] == pytest.approx(33.75)
    assert [t["count"] for t in d["tiers"]] == [1, 0, 0, 2, 1, 1]  # tiers 5..0


def test_tilt_keeps_the_stage_total() -> None:
    dims = {"input": 40.0, "output": 30.0, "growth": 20.0, "auxiliary": 10.0}
    t = _tilt(dims, "growth", 5.0)
    assert sum(t.values()) == pytest.approx(100.0)
    assert t["growth"] == 25.0 and t["input"] == pytest.approx(40 - 5 * 40 / 80)
    assert _tilt({"growth": 100.0}, "growth", 5.0) == {"growth": 100.0}


def test_robust_z() -> None:
    z = robust_z(np.array([1.0, 2.0, 3.0, np.nan, 100.0]))
    # median 2.5, MAD 1.0 -> scale 1.4826; missing is 0, outliers clipped at 3.
    assert z[3] == 0.0 and z[4] == 3.0
    assert z[0] == pytest.approx(-1.5 / 1.4826)


def test_backbook_relation_is_calibrated_and_risk_ordered() -> None:
    data = demo(3000, 7)
    book = backbook(data, 2024)
    assert book.probability.mean() == pytest.approx(BASE_BAD_RATE, abs=1e-6)
    assert abs(book.bad.mean() - BASE_BAD_RATE) < 0.03
    # Higher revenue growth, lower risk (the documented negative weight).
    growth = robust_z(data.periods[2024].column("revenue_growth"))
    hi, lo = growth > 1, growth < -1
    assert book.probability[hi].mean() < book.probability[lo].mean()
    # Deterministic for the seed; the paths stay within the window.
    again = backbook(data, 2024)
    assert np.array_equal(book.bad, again.bad)
    i_bad, i_good = int(np.argmax(book.bad)), int(np.argmin(book.bad))
    bad_path, good_path = book.path(i_bad, 100_000), book.path(i_good, 100_000)
    assert good_path[-1] == {"state": "repaid", "as_of": "2025-12-20", "outstanding": 0}
    assert any(p["state"] == "overdue_90_plus" for p in bad_path)
    for p in bad_path + good_path:
        assert date(2025, 1, 1) <= date.fromisoformat(str(p["as_of"])) <= date(2025, 12, 31)


def test_grouping_codes_are_those_of_np_unique() -> None:
    module = importlib.import_module("services.scoring.validations.service")
    rng = np.random.default_rng(3)
    pool = np.array(["软件", "unknown", "Z-industry", "a", "滨江区", "A", "N/A"], dtype=object)
    values = pool[rng.integers(0, pool.size, 5000)]
    g = module._grouping(values)
    labels, codes = np.unique(values.astype(str), return_inverse=True)
    assert g.labels == tuple(labels.tolist())
    np.testing.assert_array_equal(g.codes, codes)


def test_approval_and_lines_row_for_row() -> None:
    uscc = np.array(["A", "B", "C", "D"], dtype=object)
    o = Outcomes(
        2024, "s", "2025-01-01", "2025-12-31", "d", True, 7, {"B": False},
        approved=frozenset({"A", "Z"}), rejected=frozenset({"C"}),
        lines_run_id="r", with_line=frozenset({"B", "D"}),
    )  # fmt: skip
    assert np.array_equal(o.approval(uscc), [1.0, np.nan, 0.0, np.nan], equal_nan=True)
    lines = o.has_line(uscc, np.array([True, True, False, True]))
    assert lines is not None
    assert np.array_equal(lines, [0.0, 1.0, np.nan, 1.0], equal_nan=True)
    assert (
        _outcomes({}).aligned(uscc).tolist() == [np.nan] * 0
        or np.isnan(_outcomes({}).aligned(uscc)).all()
    )
