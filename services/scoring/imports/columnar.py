"""Reading a CSV import column by column (pyarrow), for files of a million rows.

The row-by-row reader (`parser.parse`) costs about 40 µs a row in Python. Here pyarrow's CSV
reader parses the file into string columns and each column is checked as a whole; a cell is
accepted here only when it is plainly valid (a number pyarrow reads, finite and in range; a
well-formed USCC whose check character matches; a name without surrounding whitespace...).
Every row with a cell that is not plainly valid, or a repeated USCC, goes to the row reader,
so the problems reported are the row reader's own, with its codes and messages, in the same
order; plainly valid rows never become Python objects. Columns of few distinct values
(period, yes/no, tags, industry, district, founding date) are decided once per distinct value
by the row reader's own rules.

A file pyarrow cannot read as the row reader would (not UTF-8, NUL bytes, rows of unequal
width, the header not on the first line) is left to the row reader whole: `columnar_parse`
answers None.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from services.scoring.imports.parser import (
    _RANGES,
    BOOL_COLUMNS,
    NUMERIC_COLUMNS,
    TAG_COLUMNS,
    ParsedImport,
    RowError,
    _Reader,
    _validate_uscc,
)

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
_USCC_RE = r"^[0-9]{8}[0-9A-HJ-NPQRTUWXY]{10}$"
# Python's float() reads all that pyarrow reads, to the same double; "1,200" and the like are
# the row reader's. The pattern only finds which cells, when a column does not cast whole.
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
# What str.strip() removes: a cell starting or ending with one is the row reader's.
_EDGE_SPACE_RE = r"^[\x09-\x0d\x1c-\x1f\x85\pZ]|[\x09-\x0d\x1c-\x1f\x85\pZ]$"
_BLOCK = 16 << 20
_HEAD = 1 << 16


@dataclass
class ColumnarImport:
    """A validated file: `parsed` has the errors and counts (its `rows` stays empty), `table`
    the accepted rows with one typed column per name in `columns`."""

    parsed: ParsedImport
    columns: list[str]
    table: pa.Table | None


def _header(path: Path) -> list[str] | None:
    with path.open("rb") as fh:
        head = fh.read(_HEAD)
    if b"\x00" in head:
        return None
    # A character cut at the end of the read is fine; anything else that is not UTF-8 is
    # the row reader's (it tries GB18030).
    for cut in range(4 if len(head) == _HEAD else 1):
        try:
            text = head[: len(head) - cut].decode("utf-8-sig")
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), None)
    except csv.Error:
        return None
    if not first or not any(c.strip() for c in first):
        return None
    return first


def _has_nul(path: Path) -> bool:
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            if b"\x00" in chunk:
                return True
    return False


def _read_table(path: Path, width: int) -> pa.Table | None:
    names = [f"f{i}" for i in range(width)]
    try:
        return pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=_BLOCK),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        ).slice(1)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _np(mask: Any) -> npt.NDArray[np.bool_]:
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _pg_array(tags: list[str] | None) -> str | None:
    if tags is None:
        return None
    return (
        "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in tags) + "}"
    )


class _Probe(_Reader):
    """A row reader that only notes whether a value is acceptable: it decides the distinct
    values of a column by the row reader's own rules."""

    def add(self, err: RowError) -> None:
        self.result.error_count += 1

    def decide(self, col: str, method: Callable[[], None]) -> Callable[[str], tuple[bool, Any]]:
        def one(raw: str) -> tuple[bool, Any]:
            cells = [""] * self.width
            cells[self.index[col]] = raw
            self.raw, self.row, self.ok = cells, {}, True
            method()
            return self.ok, self.row.get(col)

        return one


class _Columns:
    """The file's string columns, the rows that need the row reader (`slow`), and the
    accepted values, column by column."""

    def __init__(self, table: pa.Table, reader: _Reader) -> None:
        self.n = table.num_rows
        self.table = table
        self.index = reader.index
        self.raw: dict[str, Any] = {c: table.column(pos) for c, pos in reader.index.items()}
        self.raw["uscc"] = self.raw["uscc"].combine_chunks()
        self.slow = np.zeros(self.n, dtype=bool)
        self.values: dict[str, Any] = {}
        self.probe = _Probe(ParsedImport(period=None, columns=[]), None, 0)
        self.probe.index, self.probe.width = reader.index, reader.width

    def mark(self, mask: npt.NDArray[np.bool_]) -> None:
        self.slow |= mask

    def by_value(
        self,
        col: str,
        method: Callable[[], None],
        typ: pa.DataType,
        convert: Callable[[Any], Any] = lambda v: v,
    ) -> None:
        """Decide each distinct value of `col` once, as the row reader would."""
        encoded = pc.dictionary_encode(self.raw[col].combine_chunks())
        decide = self.probe.decide(col, method)
        decided = [decide(u) for u in encoded.dictionary.to_pylist()]
        ok = np.array([d[0] for d in decided], dtype=bool)
        self.mark(~ok[encoded.indices.to_numpy(zero_copy_only=False)])
        dictionary = pa.array([convert(d[1]) for d in decided], type=typ)
        self.values[col] = dictionary.take(encoded.indices)

    def text(self, col: str, required: bool) -> None:
        raw = self.raw[col]
        self.mark(_np(pc.match_substring_regex(raw, _EDGE_SPACE_RE)))
        length = pc.utf8_length(raw)
        if required:
            self.mark(_np(pc.or_(pc.equal(length, 0), pc.greater(length, 200))))
            self.values[col] = raw
        else:
            self.values[col] = pc.if_else(pc.equal(length, 0), pa.scalar(None, pa.string()), raw)

    def number(self, col: str, kind: str) -> None:
        raw = self.raw[col]
        text = pc.if_else(pc.equal(raw, ""), pa.scalar(None, pa.string()), raw)
        try:
            values = pc.cast(text, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # One cell that is not a plain number fails the whole column's cast: cast only
            # the plain ones and mark the others, whose rows the row reader then reports.
            plain = pc.or_(pc.equal(raw, ""), pc.match_substring_regex(raw, _NUMBER_RE))
            self.mark(~_np(plain))
            values = pc.cast(pc.if_else(plain, text, pa.scalar(None, pa.string())), pa.float64())
        floats = values.to_numpy(zero_copy_only=False)
        lo, hi, integer = _RANGES[kind]
        present = ~np.isnan(floats)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(floats) | (floats < lo) | (floats > hi)
            if integer:
                bad |= floats != np.floor(floats)
        self.mark(present & bad)
        self.values[col] = values

    def uscc(self) -> npt.NDArray[np.bool_]:
        """Plainly valid codes (the others are marked)."""
        raw = self.raw["uscc"]
        ok = _np(pc.match_substring_regex(raw, _USCC_RE))
        if ok.any():
            plain = pc.if_else(pa.array(ok), raw, pa.scalar("0" * 18)).cast(pa.binary())
            data = np.frombuffer(plain.buffers()[2], dtype=np.uint8)
            offsets = np.frombuffer(plain.buffers()[1], dtype=np.int32)[plain.offset :]
            digits = np.zeros(256, dtype=np.int64)
            for value, ch in enumerate(_USCC_ALPHABET):
                digits[ord(ch)] = value
            grid = digits[data[offsets[0] : offsets[0] + 18 * self.n].reshape(self.n, 18)]
            check = (31 - (grid[:, :17] * _USCC_WEIGHTS).sum(axis=1) % 31) % 31
            ok &= check == grid[:, 17]
        self.mark(~ok)
        self.values["uscc"] = raw
        return ok

    def repeats(self, ok: npt.NDArray[np.bool_]) -> dict[str, int]:
        """Marks every repeat of a code; answers the first line of each repeated one."""
        raw = self.raw["uscc"]
        codes = pc.if_else(pa.array(ok), raw, pa.scalar(None, pa.string()))
        odd = np.flatnonzero(~ok)
        if odd.size:
            # Written otherwise (lower case, spaces), a code is the same enterprise once
            # compacted; such rows are few, and the row reader's rule reads them.
            fixed = [_validate_uscc(str(v).strip())[0] for v in raw.take(pa.array(odd)).to_pylist()]
            mask = np.zeros(self.n, dtype=bool)
            mask[odd] = True
            codes = pc.replace_with_mask(codes, pa.array(mask), pa.array(fixed, pa.string()))
        idx = pc.fill_null(pc.dictionary_encode(codes).indices, -1).to_numpy(zero_copy_only=False)
        idx = idx.astype(np.int64)
        # Codes are numbered as they first appear: a row repeats one iff its number is not
        # above every number before it.
        before = np.maximum.accumulate(np.concatenate(([-1], idx[:-1])))
        repeat = (idx >= 0) & (idx <= before)
        if not repeat.any():
            return {}
        self.mark(repeat)
        first = np.flatnonzero((idx >= 0) & ~repeat)[np.unique(idx[repeat])]
        return {
            str(c): int(r) + 2
            for c, r in zip(codes.take(pa.array(first)).to_pylist(), first, strict=True)
        }

    def period(self, result: ParsedImport, upload: int | None) -> None:
        """The file's period is the first plausible one (the row reader's rule); rows with
        another or a bad one are the row reader's."""
        encoded = pc.dictionary_encode(self.raw["period"].combine_chunks())
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        years: list[int | None] = []
        for raw in encoded.dictionary.to_pylist():
            try:
                p: int | None = int(float(raw.strip())) if raw.strip() else None
            except (ValueError, OverflowError):
                p = None
            plausible = p is not None and 2000 <= p <= 2100 and upload in (None, p)
            years.append(p if plausible else None)
        usable = np.array([y is not None for y in years], dtype=bool)
        # A blank row has no period: the first usable one is on a row the reader reads.
        rows = np.flatnonzero(usable[indices])
        if rows.size:
            result.period = years[int(indices[rows[0]])]
        same = np.array([y is not None and y == result.period for y in years], dtype=bool)
        self.mark(~same[indices])


def _check_columns(cols: _Columns, result: ParsedImport, upload: int | None) -> dict[str, int]:
    probe = cols.probe
    ok = cols.uscc()
    cols.text("name", required=True)
    if "legal_rep" in cols.index:
        cols.text("legal_rep", required=False)
    if "period" in cols.index:
        cols.period(result, upload)
    for col in ("industry", "founded_on"):
        if col in cols.index:
            typ = pa.date32() if col == "founded_on" else pa.string()
            cols.by_value(col, probe._identity_extras, typ)
    if "district" in cols.index:
        cols.by_value("district", probe._district, pa.string())
    for col, kind in NUMERIC_COLUMNS.items():
        if col in cols.index:
            cols.number(col, kind)
    for col in BOOL_COLUMNS:
        if col in cols.index:
            cols.by_value(col, probe._bools, pa.bool_())
    for col in TAG_COLUMNS:
        if col in cols.index:
            cols.by_value(col, probe._tags, pa.string(), _pg_array)
    return cols.repeats(ok)


def _arrow_type(col: str) -> pa.DataType:
    if col in NUMERIC_COLUMNS:
        return pa.float64()
    if col in BOOL_COLUMNS:
        return pa.bool_()
    if col == "founded_on":
        return pa.date32()
    if col == "period":
        return pa.int16()
    return pa.string()


def _read_slow_rows(cols: _Columns, reader: _Reader) -> list[dict[str, Any]]:
    # Blank rows (every cell empty) have no USCC, so they are here, and skipped as the row
    # reader skips them.
    rows = np.flatnonzero(cols.slow)
    accepted: list[dict[str, Any]] = []
    if not rows.size:
        return accepted
    picked = cols.table.take(pa.array(rows)).to_pylist()
    width = cols.table.num_columns
    for i, record in zip(rows, picked, strict=True):
        cells = [str(record[f"f{k}"]).strip() for k in range(width)]
        if not any(cells):
            continue
        before = len(reader.result.rows)
        reader.read_row(int(i) + 2, cells)
        if len(reader.result.rows) > before:
            accepted.append(reader.result.rows.pop())
    return accepted


def columnar_parse(path: Path, *, period: int | None, max_errors: int) -> ColumnarImport | None:
    """Validate a CSV file as `parser.parse` would; None when it is the row reader's."""
    header = _header(path)
    if header is None or _has_nul(path):
        return None
    table = _read_table(path, len(header))
    if table is None:
        return None
    result = ParsedImport(period=period, columns=[])
    reader = _Reader(result, period, max_errors)
    reader.read_header([c.strip().lower() for c in header])
    columns = [*result.columns] + ([] if "period" in result.columns else ["period"])
    if result.error_count:
        return ColumnarImport(result, columns, None)
    cols = _Columns(table, reader)
    reader.seen = _check_columns(cols, result, period)
    slow_rows = _read_slow_rows(cols, reader)
    fast = ~cols.slow
    result.rows_total += int(fast.sum())
    if result.rows_total == 0 and not result.error_count:
        reader.add(RowError(None, None, "no_rows", "The file has a header but no rows"))
    if result.error_count:
        return ColumnarImport(result, columns, None)
    mask = None if fast.all() else pa.array(fast)
    cols.values["period"] = pa.nulls(cols.n, pa.int16()).fill_null(result.period or 0)
    arrays = []
    for col in columns:
        typ = _arrow_type(col)
        slow_values = [r.get(col) for r in slow_rows]
        if col in TAG_COLUMNS:
            slow_values = [_pg_array(v) for v in slow_values]
        values = cols.values[col] if mask is None else cols.values[col].filter(mask)
        if values.type != typ:
            values = values.cast(typ)
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        arrays.append(pa.chunked_array([*chunks, pa.array(slow_values, type=typ)], type=typ))
    return ColumnarImport(result, columns, pa.table(arrays, names=columns))
