"""docs/scoring.md's worked example, recomputed from the document's own numbers by the engine:
if a rule changes, the page that tells reviewers how to recompute a score must change too."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest

from contracts.catalogue import DIMENSIONS, INDICATOR_CODES
from services.scoring.engine import EngineInput, EngineResult, evaluate, target_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring.md"


def block(name: str) -> list[dict[str, str]]:
    match = re.search(rf"```csv {name}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert match, f"docs/scoring.md has no `{name}` block"
    return list(csv.DictReader(io.StringIO(match.group(1))))


def number(cell: str) -> float:
    return float(cell) if cell else math.nan


@pytest.fixture(scope="module")
def example() -> tuple[list[str], EngineResult]:
    rows = block("worked-example-input")
    values = np.full((len(rows), 24), np.nan)
    for i, row in enumerate(rows):
        for code, cell in row.items():
            if code in INDICATOR_CODES:
                values[i, INDICATOR_CODES.index(code)] = number(cell)
    revenue = np.array([number(r["operating_revenue"]) for r in rows])
    firms = [r["firm"] for r in rows]
    return firms, evaluate(EngineInput(revenue, values, [None] * len(rows)))


def test_the_worked_example_standing(example: tuple[list[str], EngineResult]) -> None:
    firms, res = example
    expected = {r["firm"]: r for r in block("worked-example-output")}
    assert set(expected) == set(firms)
    input_dim = DIMENSIONS.index(next(d for d in DIMENSIONS if d.value == "input"))
    for i, firm in enumerate(firms):
        row = expected[firm]
        assert res.total[i] == pytest.approx(float(row["total"]), abs=5e-7)
        assert res.rank[i] == int(row["rank"])
        assert res.percentile[i] == pytest.approx(float(row["percentile"]))
        assert res.tier[i] == int(row["tier"])
        assert res.dimension_percentiles[i, input_dim] == pytest.approx(
            float(row["input_percentile"])
        )
        for code in ("rd_expense", "invention_patents"):
            got = res.points[i, INDICATOR_CODES.index(code)]
            assert got == pytest.approx(float(row[f"{code}_points"]), abs=5e-7), (firm, code)


def test_the_worked_example_targets(example: tuple[list[str], EngineResult]) -> None:
    firms, res = example
    stats = res.cohort_stats["growth"]
    for row in block("worked-example-targets"):
        i, j = firms.index(row["firm"]), INDICATOR_CODES.index(row["indicator"])
        value = None if math.isnan(res.values[i, j]) else float(res.values[i, j])
        t = target_for(j, value, res.points[i, j], res.max_points[res.cohort[i], j], stats)
        if not row["op"]:
            assert (t["reachable"], t["reason"]) == (False, "at_maximum")
            continue
        assert t["reachable"] and t["target_op"] == row["op"]
        assert t["target_value"] == float(row["value"])
        assert t["target_percentile"] == pytest.approx(float(row["percentile"]))
        assert t["points_gain"] == pytest.approx(float(row["points_gain"]), abs=5e-7)
