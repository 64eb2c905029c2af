"""What the notice tests share: a clock the tests move, a crafted cohort imported as the
portal would, and small valid evidence files."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from stdnum.cn import uscc as uscc_std

COLUMNS = (
    "uscc,name,district,period,operating_revenue,rd_expense,invention_patents,rd_platform,"
    "equity_raised,st_awards,revenue_growth"
)
SIZE = 40


@dataclass
class Clock:
    """Scoring's clock in a test: notices end when the test says so, not after days."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def code(i: int) -> str:
    base = f"91330108{i:09d}"
    return base + uscc_std.calc_check_digit(base)


def cohort_row(i: int, period: int, **override: Any) -> str:
    """Enterprise i of a growth-stage cohort: distinct values, a few gaps, zeros and noes."""
    values: dict[str, Any] = {
        "operating_revenue": 600 + 30 * i,
        "rd_expense": 40 + 7 * i,
        "invention_patents": i % 9,
        "rd_platform": 1 if i % 4 == 0 else 0,
        "equity_raised": "" if i % 5 == 0 else 10 * (i % 7),
        "st_awards": 1 if i % 13 == 0 else 0,
        "revenue_growth": (i % 11) * 5 - 10,
    }
    values.update(override)
    cells = [code(i), f"杭州测试{i}号科技有限公司", "滨江区", str(period)]
    cells += [str(values[c]) for c in COLUMNS.split(",")[4:]]
    return ",".join(cells)


def cohort_csv(period: int = 2025, **overrides: dict[str, Any]) -> bytes:
    """The cohort as an import file; `overrides` maps "i" (a number) to changed values."""
    rows = [cohort_row(i, period, **overrides.get(str(i), {})) for i in range(1, SIZE + 1)]
    return ("\n".join([COLUMNS, *rows]) + "\n").encode()


async def import_csv(gov: httpx.AsyncClient, content: bytes, prefix: str = "") -> dict[str, Any]:
    r = await gov.post(f"{prefix}/v1/imports", files={"file": ("cohort.csv", content, "text/csv")})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def new_run(
    gov: httpx.AsyncClient, period: int = 2025, prefix: str = "", **extra: Any
) -> str:
    r = await gov.post(f"{prefix}/v1/evaluations", json={"period": period, "wait": True, **extra})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "completed", r.json()
    return str(r.json()["id"])


def pdf_bytes() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def png_bytes() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )
