"""Reading and validating an import file (CSV or XLSX) into typed columns.

The format (documented in docs/import-format.md with a sample file): one header row, then one
row per enterprise. Required columns `uscc` and `name`; `period` as a column or given with
the upload; every other column must be a known one (an indicator or profile code from the
catalogue, or `founded_on`, `industry`, `district`, `legal_rep`). Empty cells are missing
values.

Every bad row and field is reported with its reason; the caller writes nothing unless the
whole file is clean. CSV is read with the standard library and XLSX with openpyxl in
read-only mode; the field rules are ours, because they are the catalogue's.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from stdnum.cn import uscc as uscc_std
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength

from contracts.catalogue import (
    INDICATORS,
    NEGATIVE_FLAGS,
    PROFILE,
    QUALIFICATIONS,
)

IDENTITY_COLUMNS = ("uscc", "name", "founded_on", "industry", "district", "legal_rep", "period")
DISTRICT_MAX = 64
# A cell starting with one of these is a formula to a spreadsheet (CSV injection); a district
# never starts so, and a district is exported to spreadsheets for statistics.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
REQUIRED_COLUMNS = ("uscc", "name")
MIN_PERIOD, MAX_PERIOD = 2000, 2100

# kind -> (min, max, integer?) for numeric fields
_RANGES: dict[str, tuple[float, float, bool]] = {
    "amount": (0.0, 1e12, False),
    "count": (0.0, 1e9, True),
    "ratio": (0.0, 100.0, False),
    "growth": (-100.0, 10000.0, False),
    "roe": (-1000.0, 1000.0, False),
    "flag": (0.0, 1.0, True),
}
_TRUE = {"1", "true", "yes", "y", "是", "t"}
_FALSE = {"0", "false", "no", "n", "否", "f"}
_TAG_SPLIT = re.compile(r"[;,；，|]")

NUMERIC_COLUMNS: dict[str, str] = {i.code: i.kind for i in INDICATORS}
NUMERIC_COLUMNS.update({p.code: p.kind for p in PROFILE if p.kind not in ("bool", "tags")})
BOOL_COLUMNS = tuple(p.code for p in PROFILE if p.kind == "bool")
TAG_COLUMNS: dict[str, frozenset[str]] = {
    "qualifications": frozenset(QUALIFICATIONS),
    "negative_flags": frozenset(NEGATIVE_FLAGS),
}
KNOWN_COLUMNS = (
    frozenset(IDENTITY_COLUMNS) | NUMERIC_COLUMNS.keys() | set(BOOL_COLUMNS) | set(TAG_COLUMNS)
)


@dataclass(frozen=True)
class RowError:
    row: int | None  # 1-based line of the file (the header is row 1); None for file-level
    column: str | None
    code: str  # stable machine-readable reason
    message: str
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "message": self.message,
            "value": self.value,
        }


@dataclass
class ParsedImport:
    period: int | None
    columns: list[str]  # the known columns present in the file, in file order
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    rows_total: int = 0


class FileFormatError(ValueError):
    """The file as a whole cannot be read (wrong type, encoding, no header)."""


class FileTooLarge(FileFormatError):
    """The file holds more than a reader may take (an XLSX sheet's cells)."""


# A sheet of a million rows of every known column stays well below this.
MAX_XLSX_CELLS = 80_000_000


def detect_format(filename: str, content: bytes) -> str:
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    lower = filename.lower()
    if lower.endswith((".xlsx", ".xlsm")):
        return "xlsx"
    if lower.endswith((".csv", ".txt")) or not lower:
        return "csv"
    raise FileFormatError("Upload a .csv or .xlsx file")


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileFormatError("The CSV file is neither UTF-8 nor GB18030 encoded")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def iter_rows(fmt: str, content: bytes, max_cells: int = MAX_XLSX_CELLS) -> Iterator[list[str]]:
    if fmt == "csv":
        text = _decode(content)
        try:
            for row in csv.reader(io.StringIO(text, newline="")):
                yield [c.strip() for c in row]
        except csv.Error as exc:
            raise FileFormatError(f"The CSV file is malformed: {exc}") from exc
        return
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise FileFormatError("The XLSX file cannot be opened") from exc
    try:
        ws = wb.worksheets[0]
        # The declared dimension first (a sheet may claim none, or lie: cells are counted too).
        if (ws.max_row or 0) * (ws.max_column or 0) > max_cells:
            raise FileTooLarge(f"The sheet has more than {max_cells} cells")
        cells = 0
        for values in ws.iter_rows(values_only=True):
            cells += len(values)
            if cells > max_cells:
                raise FileTooLarge(f"The sheet has more than {max_cells} cells")
            yield [_cell_text(v) for v in values]
    finally:
        wb.close()


def _number(raw: str, kind: str) -> tuple[float | None, str | None, str | None]:
    """(value, error code, message)."""
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        return None, "wrong_type", f"'{raw}' is not a number"
    code, message = check_number(value, kind, raw)
    return (None, code, message) if code else (value, None, None)


def check_number(value: float, kind: str, raw: str | None = None) -> tuple[str | None, str]:
    """(error code, message) when `value` is not acceptable for an indicator or attribute of
    this kind, else (None, ""): the import's rules, which an objection's value follows too."""
    shown = raw if raw is not None else f"{value:g}"
    if math.isnan(value) or math.isinf(value):
        return "wrong_type", f"'{shown}' is not a finite number"
    lo, hi, integer = _RANGES[kind]
    if integer and not value.is_integer():
        return "wrong_type", f"'{shown}' must be a whole number"
    if value < lo:
        code = "negative_amount" if lo == 0 and kind in ("amount", "count") else "out_of_range"
        return code, f"{value:g} is below the minimum {lo:g}"
    if value > hi:
        code = "ratio_out_of_range" if kind == "ratio" else "out_of_range"
        return code, f"{value:g} is above the maximum {hi:g}"
    return None, ""


def _validate_uscc(raw: str) -> tuple[str | None, str | None]:
    try:
        return uscc_std.validate(raw), None
    except InvalidChecksum:
        return None, "the check character does not match (GB 32100-2015)"
    except InvalidLength:
        return None, "a unified social credit code has 18 characters"
    except (InvalidFormat, InvalidComponent):
        return None, "not a unified social credit code"
    except Exception:
        return None, "not a unified social credit code"


def parse(
    rows: Iterable[Sequence[str]],
    *,
    period: int | None,
    max_errors: int = 1000,
) -> ParsedImport:
    it = iter(rows)
    header: list[str] | None = None
    for candidate in it:
        if any(c for c in candidate):
            header = [c.strip().lower() for c in candidate]
            break
    result = ParsedImport(period=period, columns=[])
    if header is None:
        result.errors.append(RowError(None, None, "empty_file", "The file has no header row"))
        result.error_count = 1
        return result
    reader = _Reader(result, period, max_errors)
    reader.read_header(header)
    if result.error_count:
        return result
    for line_no, raw_row in enumerate(it, start=2):
        if any(c for c in raw_row):
            reader.read_row(line_no, raw_row)
    if result.rows_total == 0 and not result.error_count:
        reader.add(RowError(None, None, "no_rows", "The file has a header but no rows"))
    return result


class _Reader:
    """Reads the header, then one row at a time, into `result`.

    Every field of a row is checked (a row reports all its problems, not the first); a row
    with any problem is left out of `result.rows`. The problems are counted exactly, and the
    first `max_errors` are kept to report.
    """

    def __init__(self, result: ParsedImport, period: int | None, max_errors: int) -> None:
        self.result = result
        self.period = period  # the upload's, if given
        self.max_errors = max_errors
        self.index: dict[str, int] = {}  # known column -> position in the file
        self.width = 0
        self.seen: dict[str, int] = {}  # USCC -> the line it was first read on
        # The row being read.
        self.line_no = 0
        self.raw: Sequence[str] = ()
        self.row: dict[str, Any] = {}
        self.ok = True

    def add(self, err: RowError) -> None:
        self.result.error_count += 1
        if len(self.result.errors) < self.max_errors:
            self.result.errors.append(err)

    def read_header(self, header: list[str]) -> None:
        self.width = len(header)
        for pos, name in enumerate(header):
            if not name:
                continue
            if name not in KNOWN_COLUMNS:
                self.add(RowError(1, name, "unknown_column", f"'{name}' is not a known column"))
            elif name in self.index:
                self.add(
                    RowError(1, name, "duplicate_column", f"'{name}' appears twice in the header")
                )
            else:
                self.index[name] = pos
        for name in REQUIRED_COLUMNS:
            if name not in self.index:
                self.add(
                    RowError(1, name, "missing_column", f"the required column '{name}' is absent")
                )
        if "period" not in self.index and self.period is None:
            self.add(
                RowError(1, "period", "missing_period", "give a period column or a period field")
            )
        self.result.columns = [c for c in header if c in self.index]

    def read_row(self, line_no: int, raw: Sequence[str]) -> None:
        self.result.rows_total += 1
        self.line_no, self.raw, self.row, self.ok = line_no, raw, {}, True
        if len(raw) > self.width and any(c.strip() for c in raw[self.width :]):
            self._bad("", "extra_cells", "the row has more cells than the header", "")
        self._uscc()
        self._name()
        self._period()
        self._identity_extras()
        self._numbers()
        self._bools()
        self._tags()
        if self.ok:
            self.result.rows.append(self.row)

    def _cell(self, col: str) -> str:
        pos = self.index[col]
        return self.raw[pos].strip() if pos < len(self.raw) else ""

    def _bad(self, col: str, code: str, message: str, value: str) -> None:
        self.ok = False
        self.add(RowError(self.line_no, col, code, message, value[:100]))

    def _uscc(self) -> None:
        raw_uscc = self._cell("uscc")
        code, why = _validate_uscc(raw_uscc)
        if code is None:
            self._bad("uscc", "invalid_uscc", why or "invalid", raw_uscc)
            return
        # `seen` may come filled with the first line of every repeated code (the columnar
        # reader finds them before it hands rows here).
        first = self.seen.setdefault(code, self.line_no)
        if first != self.line_no:
            self._bad("uscc", "duplicate_row", f"the same enterprise is on row {first}", code)
        self.row["uscc"] = code

    def _name(self) -> None:
        name = self._cell("name")
        if not name:
            self._bad("name", "required", "the enterprise name is empty", name)
        elif len(name) > 200:
            self._bad("name", "too_long", "names are at most 200 characters", name)
        self.row["name"] = name

    def _period(self) -> None:
        """The row's period: the column's (one for the whole file) or the upload's."""
        period = self.period
        row_period = period
        if "period" in self.index:
            raw = self._cell("period")
            try:
                p = int(float(raw)) if raw else None
            except (ValueError, OverflowError):  # not a number; or infinite, like "1e400"
                p = None
                self._bad("period", "wrong_type", f"'{raw}' is not a year", raw)
            if p is not None:
                if not MIN_PERIOD <= p <= MAX_PERIOD:
                    self._bad("period", "out_of_range", f"{p} is not a plausible year", raw)
                elif period is not None and p != period:
                    self._bad(
                        "period", "period_mismatch", f"the upload is for {period}, not {p}", raw
                    )
                elif self.result.period is None:
                    self.result.period = p
                elif p != self.result.period:
                    self._bad("period", "mixed_periods", "one file holds one period", raw)
                row_period = p
            elif period is None:
                self._bad("period", "required", "the period is empty", raw)
        self.row["period"] = row_period

    def _identity_extras(self) -> None:
        for col in ("industry", "legal_rep"):
            if col in self.index:
                self.row[col] = self._cell(col) or None
        self._district()
        if "founded_on" not in self.index:
            return
        raw = self._cell("founded_on")
        if not raw:
            self.row["founded_on"] = None
            return
        try:
            founded = date.fromisoformat(raw[:10])
            if founded > date.today():
                self._bad("founded_on", "out_of_range", "the founding date is in the future", raw)
            self.row["founded_on"] = founded
        except ValueError:
            self._bad("founded_on", "wrong_type", f"'{raw}' is not a date (YYYY-MM-DD)", raw)

    def _district(self) -> None:
        """区县 (or 街道): free text, at most `DISTRICT_MAX` characters, never a formula."""
        if "district" not in self.index:
            return
        raw = self._cell("district")
        self.row["district"] = raw or None
        if len(raw) > DISTRICT_MAX:
            self._bad("district", "too_long", f"at most {DISTRICT_MAX} characters", raw)
        elif raw.startswith(_FORMULA_START) or any(ord(ch) < 32 for ch in raw):
            self._bad(
                "district",
                "unsafe_text",
                "a district may not start with = + - @ nor hold control characters",
                raw,
            )

    def _numbers(self) -> None:
        for col, kind in NUMERIC_COLUMNS.items():
            if col not in self.index:
                continue
            raw = self._cell(col)
            if not raw:
                self.row[col] = None
                continue
            value, err, msg = _number(raw, kind)
            if err:
                self._bad(col, err, msg or err, raw)
            self.row[col] = value

    def _bools(self) -> None:
        for col in BOOL_COLUMNS:
            if col not in self.index:
                continue
            raw = self._cell(col).lower()
            if not raw:
                self.row[col] = None
            elif raw in _TRUE:
                self.row[col] = True
            elif raw in _FALSE:
                self.row[col] = False
            else:
                self._bad(col, "wrong_type", f"'{raw}' is not yes/no (1/0)", raw)

    def _tags(self) -> None:
        for col, allowed in TAG_COLUMNS.items():
            if col not in self.index:
                continue
            raw = self._cell(col)
            tags = sorted({t.strip().lower() for t in _TAG_SPLIT.split(raw) if t.strip()})
            unknown = [t for t in tags if t not in allowed]
            if unknown:
                self._bad(col, "unknown_value", f"unknown value(s): {', '.join(unknown)}", raw)
            self.row[col] = tags
