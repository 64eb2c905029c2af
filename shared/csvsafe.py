"""CSV files the platform produces, safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before reading a formula) is taken for a formula by Excel, LibreOffice and
WPS: `=HYPERLINK("http://evil", "点此")` in an enterprise's name becomes a live link, and DDE
payloads have run commands. Such a cell is prefixed with a single quote, as OWASP's "CSV
Injection" advice says, so it is shown as the text it is. The full-width forms (＝＋－＠),
which WPS also reads as formula starts, are treated alike.

Only text is neutralised: numbers (int, float) are written as numbers, so a negative growth
stays -12.5. What was stored is never changed; this applies when a file is produced.

Written by hand: the standard `csv` module quotes correctly but knows nothing of formulas,
and the few libraries that do (defusedcsv) are thin wrappers over the same rule, unmaintained.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠")
# Excel reads a UTF-8 file as the local code page unless it starts with a byte-order mark.
BOM = "\ufeff"

Cell = str | int | float | bool | None


def neutralise(value: Cell) -> str | int | float:
    """One cell as it goes into the file."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int | float):
        return value
    text = str(value)
    if text and (text[0] in FORMULA_STARTS or text.lstrip()[:1] in FORMULA_STARTS):
        return "'" + text
    return text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[str]:
    """The file, line by line (for a streaming response): BOM, header, rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")

    def line(cells: Sequence[Cell]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([neutralise(c) for c in cells])
        return buffer.getvalue()

    yield BOM + line(header)
    for row in rows:
        yield line(row)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    return "".join(csv_lines(header, rows))
