"""Imports at scale: gzip-compressed uploads, bombs refused (gzip and XLSX), and the columnar
reader answering exactly what the row reader answers, problem for problem."""

from __future__ import annotations

import gzip
import io
import random
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from stdnum.cn import uscc as uscc_std

from services.scoring.imports.columnar import _pg_array, columnar_parse
from services.scoring.imports.parser import iter_rows, parse
from tests.platform import Platform
from tests.scoring.test_imports import code, csv_file, fact_count, upload


async def test_a_gzip_compressed_csv_imports_like_the_plain_one(platform: Platform) -> None:
    await platform.start("scoring")
    content = csv_file(
        f"{code(1)},杭州一号科技有限公司,2025,1200,150,12.5,3,0,hnte;st_sme",
        f"{code(2)},杭州二号科技有限公司,2025,30,0,,0,1,",
    )
    packed = gzip.compress(content)
    r = await upload(platform, packed, name="facts.csv.gz")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["rows_total"], body["rows_inserted"], body["file_format"]) == (2, 2, "csv")
    assert body["filename"] == "facts.csv"
    again = (await upload(platform, content)).json()
    assert (again["rows_inserted"], again["rows_unchanged"]) == (0, 2)
    assert await fact_count(platform) == 2


async def test_a_gzip_bomb_is_refused_and_nothing_written(platform: Platform) -> None:
    await platform.start("scoring", max_import_inflated_bytes=1024 * 1024)
    header = b"uscc,name,period\n"
    bomb = gzip.compress(header + b"0" * (8 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    r = await upload(platform, bomb, name="facts.csv.gz")
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = await upload(platform, gzip.compress(header)[:-6], name="cut.csv.gz")
    assert r.status_code == 422
    assert await fact_count(platform) == 0


def _workbook(rows: int, cols: int) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["uscc", "name", "period", *[f"x{i}" for i in range(cols - 3)]])
    for i in range(rows):
        ws.append([code(i), f"企业{i}", 2025, *[1] * (cols - 3)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def test_xlsx_decompression_bombs_are_refused(platform: Platform) -> None:
    await platform.start("scoring", max_xlsx_inflated_bytes=2 * 1024 * 1024, max_xlsx_cells=500)
    # A workbook whose sheet inflates past the bound: refused before openpyxl reads it.
    real = _workbook(2, 3)
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(real)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("sheet1.xml"):
                data = data.replace(
                    b"</worksheet>", b"<!--" + b" " * (4 << 20) + b"--></worksheet>"
                )
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    assert len(buf.getvalue()) < 256 * 1024
    async with platform.client("scoring", "government") as gov:
        r = await gov.post("/v1/imports", files={"file": ("bomb.xlsx", buf.getvalue(), "x")})
        assert r.status_code == 413, r.text
        assert r.headers["content-type"] == "application/problem+json"
        # Small on disk and in bytes, but more cells than a sheet may have.
        r = await gov.post("/v1/imports", files={"file": ("wide.xlsx", _workbook(60, 12), "x")})
        assert r.status_code == 413, r.text
        r = await gov.post("/v1/imports", files={"file": ("ok.xlsx", _workbook(3, 3), "x")})
        assert r.status_code == 201, r.text
    assert await fact_count(platform) == 3


# The columnar reader against the row reader, on files with every kind of problem and on clean
# files written every which way (spaces, lower case, "1,200", "是", tags in any order).
HEADER = (
    "uscc,name,period,operating_revenue,rd_expense,rd_intensity,invention_patents,listed,"
    "qualifications,district,founded_on,industry,legal_rep"
)
_BAD: dict[str, list[str]] = {
    "uscc": ["{lc}", " {c}", "abc", "", "{c}x"],
    "name": ["", " x ", "a" * 201, "Foo, Inc.", 'say "hi"'],
    "period": ["2024", "1e400", "abc", "", "2025.0", " 2025", "1999"],
    "num": ["", "-5", "1,200", "abc", "1e400", "nan", " 3 ", "1.5", "120", "+4", ".5", "1_0"],
    "listed": ["0", "1", "", "yes", "是", "maybe", " 1"],
    "qualifications": ["", "hnte", "hnte;st_sme", "nobel", "ST_SME , hnte"],
    "district": ["滨江区", "", "=HYPERLINK(1)", "区" * 65, " 西湖区 "],
    "founded_on": ["2010-01-02", "", "2999-01-01", "notadate", "2010-01-02T00:00"],
    "industry": ["C39", "", " C40 "],
    "legal_rep": ["张三", "", " 李四"],
}
_CLEAN: dict[str, list[str]] = {
    "uscc": ["{c}", "{c}", "{lc}", " {c}"],
    "name": ["企业{i}", " 企业{i} "],
    "period": ["2025", "2025.0", " 2025"],
    "num": ["{n}", "", "1,2", " 3", "+4", "7.0", "{n}"],
    "listed": ["0", "1", "", "yes", "是", " 1"],
    "qualifications": ["", "hnte", "hnte;st_sme", "ST_SME , hnte"],
    "district": ["滨江区", "", " 西湖区 "],
    "founded_on": ["2010-01-02", "", "2010-01-02T00:00"],
    "industry": ["C39", "", " C40 "],
    "legal_rep": ["张三", "", " 李四"],
}


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(ch in cell for ch in ',"\n') else cell


def _file(rng: random.Random, rows: int, bad_rate: float) -> bytes:
    cols = HEADER.split(",")
    lines = [HEADER]
    for i in range(rows):
        if rng.random() < 0.03:
            lines.append(rng.choice(["", "," * 12, "  ," + "," * 11]))
            continue
        if rng.random() < 0.02:  # a repeat of an earlier enterprise
            i = max(0, i - rng.randint(1, 5))
        table = _BAD if rng.random() < bad_rate else _CLEAN
        cells = []
        for col in cols:
            choices = table.get(col, table["num"])
            c, n = uscc_std.compact(code(i)), str(rng.randint(0, 90))
            cells.append(_quote(rng.choice(choices).format(c=c, lc=c.lower(), i=i, n=n)))
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def _same(content: bytes, tmp_path: Path, period: int | None) -> None:
    path = tmp_path / "facts.csv"
    path.write_bytes(content)
    rows = parse(iter_rows("csv", content), period=period, max_errors=100_000)
    columnar = columnar_parse(path, period=period, max_errors=100_000)
    assert columnar is not None
    got = columnar.parsed
    assert [e.as_dict() for e in got.errors] == [e.as_dict() for e in rows.errors]
    assert (got.error_count, got.rows_total, got.period) == (
        rows.error_count,
        rows.rows_total,
        rows.period,
    )
    if rows.error_count:
        return
    assert columnar.table is not None

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return {k: None if v != v else v for k, v in row.items()}  # NaN is missing

    expected = [
        plain({c: _pg_array(r.get(c)) if c == "qualifications" else r.get(c) for c in got.columns})
        for r in rows.rows
    ]
    actual = [plain(r) for r in columnar.table.to_pylist()]
    assert sorted(actual, key=lambda r: r["uscc"]) == sorted(expected, key=lambda r: r["uscc"])


@pytest.mark.parametrize("seed", range(12))
def test_the_columnar_reader_answers_as_the_row_reader(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    _same(_file(rng, 300, bad_rate=0.3), tmp_path, None)
    _same(_file(rng, 200, bad_rate=0.0), tmp_path, 2025 if seed % 2 else None)


def test_files_pyarrow_would_read_otherwise_go_to_the_row_reader(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    for content in (
        b"uscc,name,period\n1,2\n",  # a short row
        b"\nuscc,name,period\n",  # the header not on the first line
        "uscc,name,period\n企业".encode("gb18030"),
        b"uscc,name\x00,period\n",
    ):
        path.write_bytes(content)
        assert columnar_parse(path, period=None, max_errors=10) is None
