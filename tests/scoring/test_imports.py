"""Imports: every bad row and field reported with its reason, nothing half-written, idempotent
re-import, CSV and XLSX."""

from __future__ import annotations

import io
from typing import Any

import openpyxl
from stdnum.cn import uscc as uscc_std

from tests.platform import Platform


def code(i: int) -> str:
    base = f"91330108{i:09d}"
    return base + uscc_std.calc_check_digit(base)


HEADER = (
    "uscc,name,period,operating_revenue,rd_expense,rd_intensity,invention_patents,"
    "listed,qualifications"
)


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


async def upload(platform: Platform, content: bytes, name: str = "facts.csv", **form: Any) -> Any:
    async with platform.client("scoring", "government") as gov:
        return await gov.post(
            "/v1/imports",
            files={"file": (name, content, "text/csv")},
            data={k: str(v) for k, v in form.items()},
        )


async def fact_count(platform: Platform) -> int:
    async with platform.fastapi["scoring"].state.engine.connect() as conn:
        from sqlalchemy import text

        return int((await conn.execute(text("SELECT count(*) FROM scoring.facts"))).scalar_one())


async def test_clean_file_imports_and_reimport_is_idempotent(platform: Platform) -> None:
    await platform.start("scoring")
    content = csv_file(
        f"{code(1)},杭州一号科技有限公司,2025,1200,150,12.5,3,0,hnte;st_sme",
        f"{code(2)},杭州二号科技有限公司,2025,30,0,,0,1,",
    )
    r = await upload(platform, content)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["rows_total"], body["rows_inserted"], body["rows_updated"]) == (2, 2, 0)
    assert body["status"] == "succeeded" and body["period"] == 2025
    assert len(body["file_sha256"]) == 64
    again = (await upload(platform, content)).json()
    assert (again["rows_inserted"], again["rows_updated"], again["rows_unchanged"]) == (0, 0, 2)
    changed = csv_file(f"{code(1)},杭州一号科技有限公司,2025,1300,150,12.5,3,0,hnte;st_sme")
    third = (await upload(platform, changed)).json()
    assert (third["rows_inserted"], third["rows_updated"], third["rows_unchanged"]) == (0, 1, 0)
    assert await fact_count(platform) == 2
    async with platform.client("scoring", "government") as gov:
        got = await gov.get(f"/v1/imports/{body['id']}")
        assert got.status_code == 200 and got.json()["created_by"] == "test-government"
        listing = await gov.get("/v1/imports", params={"period": 2025})
        assert listing.json()["total"] == 3


async def test_every_bad_field_reported_and_nothing_written(platform: Platform) -> None:
    await platform.start("scoring")
    bad_check = code(3)[:-1] + ("0" if code(3)[-1] != "0" else "1")
    content = csv_file(
        f"{code(1)},好企业,2025,100,10,5,1,0,",  # fine on its own
        f"{bad_check},校验位错,2025,100,10,5,1,0,",
        f"{code(4)},负数金额,2025,100,-5,5,1,0,",
        f"{code(5)},比例越界,2025,100,10,140,1,0,",
        f"{code(1)},重复行,2025,100,10,5,1,0,",
        f"{code(6)},类型错误,2025,abc,10,5,1.5,maybe,",
        f"{code(7)},未知资质,2025,100,10,5,1,0,nobel_prize",
    )
    r = await upload(platform, content)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    found = {(e["row"], e["column"], e["code"]) for e in problem["errors"]}
    assert (3, "uscc", "invalid_uscc") in found
    assert (4, "rd_expense", "negative_amount") in found
    assert (5, "rd_intensity", "ratio_out_of_range") in found
    assert (6, "uscc", "duplicate_row") in found
    assert (7, "operating_revenue", "wrong_type") in found
    assert (7, "invention_patents", "wrong_type") in found
    assert (7, "listed", "wrong_type") in found
    assert (8, "qualifications", "unknown_value") in found
    assert problem["error_count"] == len(found)
    assert await fact_count(platform) == 0
    async with platform.client("scoring", "government") as gov:
        record = (await gov.get(f"/v1/imports/{problem['import_id']}")).json()
        assert record["status"] == "rejected" and record["error_count"] == problem["error_count"]


async def test_unknown_and_missing_columns(platform: Platform) -> None:
    await platform.start("scoring")
    r = await upload(platform, csv_file(f"{code(1)},x,2025,7", header="uscc,name,period,colour"))
    assert r.status_code == 422
    assert {e["code"] for e in r.json()["errors"]} == {"unknown_column"}
    r = await upload(platform, csv_file("x,2025", header="name,period"))
    assert {e["code"] for e in r.json()["errors"]} == {"missing_column"}
    r = await upload(platform, csv_file(f"{code(1)},x", header="uscc,name"))
    assert {e["code"] for e in r.json()["errors"]} == {"missing_period"}
    r = await upload(platform, csv_file(f"{code(1)},x", header="uscc,name"), period=2024)
    assert r.status_code == 201, r.text
    r = await upload(
        platform, csv_file(f"{code(1)},x,2025", header="uscc,name,period"), period=2024
    )
    assert {e["code"] for e in r.json()["errors"]} == {"period_mismatch"}
    r = await upload(platform, b"", name="empty.csv")
    assert r.status_code == 422


async def test_xlsx_import_and_wrong_file_type(platform: Platform) -> None:
    await platform.start("scoring")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["uscc", "name", "period", "operating_revenue", "listed"])
    ws.append([code(11), "表格企业", 2024, 880.5, 1])
    ws.append([code(12), "表格企业二", 2024, None, 0])
    buf = io.BytesIO()
    wb.save(buf)
    async with platform.client("scoring", "government") as gov:
        r = await gov.post(
            "/v1/imports",
            files={"file": ("facts.xlsx", buf.getvalue(), "application/octet-stream")},
        )
        assert r.status_code == 201, r.text
        assert r.json()["rows_inserted"] == 2 and r.json()["file_format"] == "xlsx"
        r = await gov.post("/v1/imports", files={"file": ("facts.pdf", b"%PDF-1.4", "x/y")})
        assert r.status_code == 415
        r = await gov.post("/v1/imports", files={"file": ("broken.xlsx", b"PK\x03\x04junk", "x")})
        assert r.status_code == 422


async def test_only_the_government_imports(platform: Platform) -> None:
    await platform.start("scoring")
    content = csv_file(f"{code(1)},x,2025,1,1,1,1,0,")
    for kind, extra in (
        ("enterprise", {"uscc": code(1)}),
        ("bank", {"bank_id": "icbc-binjiang"}),
        ("service", {}),
    ):
        async with platform.client("scoring", kind, **extra) as c:
            r = await c.post("/v1/imports", files={"file": ("f.csv", content, "text/csv")})
            assert r.status_code == 403, kind
    assert await fact_count(platform) == 0


async def test_a_period_too_large_for_a_year_is_a_bad_field(platform: Platform) -> None:
    # float("1e400") is infinite and int() of it overflows: that must be the row's problem,
    # not the service's.
    await platform.start("scoring")
    content = csv_file(
        f"{code(1)},杭州一号科技有限公司,1e400,1200,150,12.5,3,0,",
        f"{code(2)},杭州二号科技有限公司,2025,30,0,,0,1,",
    )
    r = await upload(platform, content)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert [(e["row"], e["column"], e["code"]) for e in problem["errors"]] == [
        (2, "period", "wrong_type"),
        (2, "period", "required"),
    ]
    assert await fact_count(platform) == 0
