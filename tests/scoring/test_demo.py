"""The demo generator (devtools/demo/): identities, realism, determinism, CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import uscc as uscc_std

from contracts.catalogue import (
    INDICATOR_CODES,
    INDICATORS,
    NEGATIVE_FLAGS,
    PROFILE,
    PROFILE_CODES,
    QUALIFICATIONS,
)
from devtools import demo
from devtools.demo import identity
from services.scoring.engine import evaluate

N = 5036
TARGET_MIX = {"seed": 0.20, "seedling": 0.35, "growth": 0.22, "expansion": 0.15, "mature": 0.08}
RANGES = {
    "amount": (0.0, 1e12),
    "count": (0.0, 1e9),
    "ratio": (0.0, 100.0),
    "growth": (-100.0, 10000.0),
    "roe": (-1000.0, 1000.0),
    "flag": (0.0, 1.0),
}


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.generate(N)


def org_check(body: str) -> str:
    """GB 11714, written out independently of the generator."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    value = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
    c = 11 - sum(value[ch] * w for ch, w in zip(body, weights, strict=True)) % 11
    return {10: "X", 11: "0"}.get(c, str(c))


def test_usccs_are_valid_unique_and_carry_an_organisation_code(data: demo.DemoData) -> None:
    codes = data.uscc.tolist()
    assert len(set(codes)) == N
    assert all(uscc_std.is_valid(c) for c in codes)
    assert all(c.startswith("91330") for c in codes)
    assert all(c[16] == org_check(c[8:16]) for c in codes)
    # firms registered since the unified code carry "MA" organisation codes
    new = data.founded_on >= np.datetime64("2015-10-01")
    assert all(c[8:10] == "MA" for c in data.uscc[new].tolist())
    assert all(c[8:16].isdigit() for c in data.uscc[~new].tolist())


def test_names_look_chinese_and_are_unique(data: demo.DemoData) -> None:
    names = data.name.tolist()
    assert len(set(names)) == N
    assert all(n.startswith("杭州") and n.endswith("有限公司") for n in names)
    assert all(2 <= len(r) <= 3 for r in data.legal_rep.tolist())
    assert data.founded_on.max() <= np.datetime64("2024-12-31")
    assert set(data.industry.tolist()) <= {label for label, _, _ in identity.INDUSTRIES}


def test_stage_mix_matches_the_target(data: demo.DemoData) -> None:
    counts = demo.stage_counts(data, 2024)
    for stage, share in TARGET_MIX.items():
        assert counts[stage] / N == pytest.approx(share, abs=0.03), (stage, counts)
    later = demo.stage_counts(data, 2025)
    assert all(v >= 30 for v in later.values())  # every stage is a cohort in both periods


def test_values_are_in_range_and_realistic(data: demo.DemoData) -> None:
    for period in (2024, 2025):
        p = data.periods[period]
        for j, ind in enumerate(INDICATORS):
            x = p.indicators[:, j]
            known = x[~np.isnan(x)]
            lo, hi = RANGES[ind.kind]
            assert lo <= known.min() <= known.max() <= hi, ind.code
            if ind.kind in ("count", "flag"):
                assert np.all(known == np.round(known)), ind.code
        for attr in PROFILE:
            col = p.profile[attr.code]
            if attr.kind in RANGES:
                known = col[~np.isnan(col)]
                lo, hi = RANGES[attr.kind]
                assert lo <= known.min() <= known.max() <= hi, attr.code
        assert not np.isnan(p.revenue).any()
        patents = p.column("invention_patents")
        assert 0.3 < np.mean(patents == 0) < 0.7  # many firms hold no invention patent
        growth = p.column("revenue_growth")
        assert 10.0 <= np.nanmedian(growth) <= 30.0
        assert 0.05 < np.mean(growth < 0) < 0.35
        gaps = np.isnan(p.indicators).any(axis=1).mean()
        assert 0.005 < gaps < 0.02
        negative = (p.profile["negative_flags"] > 0).mean()
        assert 0.002 < negative < 0.01
        # stage-dependent: the mature firms out-patent the seed firms
        stage = p.stage()
        assert np.nanmean(patents[stage == 4]) > 5 * np.nanmean(patents[stage == 0])


def test_the_second_period_evolves_from_the_first(data: demo.DemoData) -> None:
    a, b = data.periods[2024], data.periods[2025]
    implied = (b.revenue / a.revenue - 1.0) * 100.0
    reported = b.column("revenue_growth")
    known = ~np.isnan(reported)
    assert known.mean() > 0.99
    assert np.allclose(reported[known], implied[known], atol=0.005)
    # the profile carries last period's growth, also where that indicator cell was left empty
    assert not np.isnan(b.profile["revenue_growth_prev"]).any()
    was = a.column("revenue_growth")
    seen = ~np.isnan(was)
    assert np.array_equal(b.profile["revenue_growth_prev"][seen], was[seen])
    stock_a, stock_b = a.column("class2_ip"), b.column("class2_ip")
    both = ~np.isnan(stock_a) & ~np.isnan(stock_b)
    assert np.all(stock_b[both] >= stock_a[both])  # IP stocks only accumulate
    assert np.corrcoef(stock_a[both], stock_b[both])[0, 1] > 0.8
    assert np.mean(b.revenue) > np.mean(a.revenue)


def test_the_engine_scores_the_demo(data: demo.DemoData) -> None:
    inp = demo.engine_input(data, 2024)
    res = evaluate(inp)
    negative = data.periods[2024].profile["negative_flags"] > 0
    assert np.array_equal(res.scored, ~negative)
    assert res.merges == []
    assert all(str(r).startswith("negative_list:") for r in res.exclusion[negative])
    assert 20 < np.nanmedian(res.total) < 70


def test_generation_is_deterministic() -> None:
    a, b = demo.generate(300, seed=5), demo.generate(300, seed=5)
    assert np.array_equal(a.uscc, b.uscc)
    assert np.array_equal(a.name, b.name)
    for period in (2024, 2025):
        pa, pb = a.periods[period], b.periods[period]
        assert np.array_equal(pa.indicators, pb.indicators, equal_nan=True)
        for code in PROFILE_CODES:
            assert np.array_equal(pa.profile[code], pb.profile[code], equal_nan=True), code
    c = demo.generate(300, seed=6)
    assert not np.array_equal(a.uscc, c.uscc)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**32 - 1))
def test_any_size_and_seed_gives_valid_unique_identities(n: int, seed: int) -> None:
    d = demo.generate(n, seed=seed, periods=(2023,))
    assert d.n == n
    assert list(d.periods) == [2023]
    assert len(set(d.uscc.tolist())) == n
    assert len(set(d.name.tolist())) == n
    assert all(uscc_std.is_valid(c) for c in d.uscc.tolist())
    assert d.periods[2023].indicators.shape == (n, 24)


def test_csv_matches_the_import_format(data: demo.DemoData, tmp_path: Path) -> None:
    path = tmp_path / "demo-2025.csv"
    assert demo.write_csv(data, 2025, path) == N
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        lines = list(reader)
    assert header == [
        "uscc",
        "name",
        "founded_on",
        "industry",
        "district",
        "period",
        *list(INDICATOR_CODES),
        *list(PROFILE_CODES),
    ]
    assert len(lines) == N
    p = data.periods[2025]
    for i in (0, 1, 17, N - 1):
        row = dict(zip(header, lines[i], strict=True))
        assert row["uscc"] == data.uscc[i]
        assert row["period"] == "2025"
        # The district is the one the code was registered in (characters 3-8).
        assert row["district"] == identity.DISTRICT_NAMES[row["uscc"][2:8]]
        for j, code in enumerate(INDICATOR_CODES):
            v = p.indicators[i, j]
            assert (row[code] == "") if np.isnan(v) else (float(row[code]) == v), code
        assert row["listed"] in ("0", "1")
        quals = row["qualifications"].split(";") if row["qualifications"] else []
        assert set(quals) <= set(QUALIFICATIONS)
        assert quals == demo.decode_tags(int(p.profile["qualifications"][i]), QUALIFICATIONS)
    # every missing value is an empty cell, everywhere
    gaps = int(np.isnan(p.indicators).sum())
    first = header.index(INDICATOR_CODES[0])
    cells = sum(1 for line in lines for c in line[first : first + 24] if c == "")
    assert cells == gaps
    flagged = [line for line in lines if line[header.index("negative_flags")]]
    assert flagged
    assert all(
        set(line[header.index("negative_flags")].split(";")) <= set(NEGATIVE_FLAGS)
        for line in flagged
    )


def test_rows_can_carry_the_legal_representative(data: demo.DemoData) -> None:
    first = next(demo.rows(data, 2024, legal_rep=True))
    assert first["legal_rep"] == data.legal_rep[0]
    assert "legal_rep" not in next(demo.rows(data, 2024))
