"""What the demo population becomes: import files (CSV rows), the engine's input and the bulk
loader's typed columns."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.catalogue import (
    INDICATOR_CODES,
    INDICATORS_BY_CODE,
    NEGATIVE_FLAGS,
    PROFILE,
    PROFILE_CODES,
    STAGES,
)
from devtools.demo.population import NEGATIVE_LIST_REASON, TAG_VOCABULARIES, DemoData
from services.scoring.engine import EngineInput
from services.scoring.imports.bulk import BOOL_PROFILE, NUMERIC_PROFILE, TAG_PROFILE, BulkFacts

IDENTITY_COLUMNS: tuple[str, ...] = ("uscc", "name", "founded_on", "industry", "district", "period")
CSV_COLUMNS: tuple[str, ...] = IDENTITY_COLUMNS + INDICATOR_CODES + PROFILE_CODES


def decode_tags(mask: int, vocabulary: Sequence[str]) -> list[str]:
    return [tag for bit, tag in enumerate(vocabulary) if mask >> bit & 1]


def engine_input(data: DemoData, period: int) -> EngineInput:
    """The engine's view of one period: firms on the negative list are excluded."""
    p = data.periods[period]
    negative = p.profile["negative_flags"]
    table = np.empty(1 << len(NEGATIVE_FLAGS), dtype=object)
    for mask in range(table.size):
        tags = decode_tags(mask, NEGATIVE_FLAGS)
        table[mask] = f"{NEGATIVE_LIST_REASON}:{','.join(tags)}" if tags else None
    return EngineInput(
        revenue=p.revenue, values=p.indicators, excluded_reason=table[negative.astype(np.int64)]
    )


def from_demo(data: DemoData, period: int) -> BulkFacts:
    """The generator's columns as a bulk load (the demo and the benchmarks)."""
    p = data.periods[period]
    return BulkFacts(
        period=period,
        uscc=data.uscc,
        name=data.name,
        indicators=p.indicators,
        numeric={c: p.profile[c] for c in NUMERIC_PROFILE},
        bools={c: p.profile[c] for c in BOOL_PROFILE},
        tags={c: p.profile[c] for c in TAG_PROFILE},
        vocabularies=TAG_VOCABULARIES,
        founded_on=data.founded_on,
        industry=data.industry,
        district=data.district,
        legal_rep=data.legal_rep,
    )


def _format_column(kind: str, column: npt.NDArray[Any], vocabulary: Sequence[str]) -> list[str]:
    if kind == "tags":
        lookup = [";".join(decode_tags(m, vocabulary)) for m in range(1 << len(vocabulary))]
        return [lookup[m] for m in column.tolist()]
    if kind == "bool":
        return ["1" if v else "0" for v in column.tolist()]
    if kind in ("count", "flag"):
        return ["" if v != v else str(int(v)) for v in column.tolist()]
    # repr of a float round-trips exactly, so a re-imported file scores identically.
    return ["" if v != v else repr(v) for v in column.tolist()]


def rows(
    data: DemoData, period: int, *, chunk: int = 10_000, legal_rep: bool = False
) -> Iterator[dict[str, str]]:
    """The import-file rows of one period, keyed by CSV column name, values already formatted
    (tags `;`-separated, booleans 0/1, missing as ""). Formatted a chunk at a time so that a
    million rows do not sit in memory as strings."""
    p = data.periods[period]
    kinds: dict[str, str] = {c: INDICATORS_BY_CODE[c].kind for c in INDICATOR_CODES}
    kinds.update({a.code: a.kind for a in PROFILE})
    columns = list(CSV_COLUMNS) + (["legal_rep"] if legal_rep else [])
    for start in range(0, data.n, chunk):
        stop = min(start + chunk, data.n)
        cols: dict[str, list[str]] = {
            "uscc": data.uscc[start:stop].tolist(),
            "name": data.name[start:stop].tolist(),
            "founded_on": data.founded_on[start:stop].astype(str).tolist(),
            "industry": data.industry[start:stop].tolist(),
            "district": data.district[start:stop].tolist(),
            "period": [str(period)] * (stop - start),
        }
        if legal_rep:
            cols["legal_rep"] = data.legal_rep[start:stop].tolist()
        for j, code in enumerate(INDICATOR_CODES):
            cols[code] = _format_column(kinds[code], p.indicators[start:stop, j], ())
        for code in PROFILE_CODES:
            cols[code] = _format_column(
                kinds[code], p.profile[code][start:stop], TAG_VOCABULARIES.get(code, ())
            )
        for i in range(stop - start):
            yield {c: cols[c][i] for c in columns}


def write_csv(data: DemoData, period: int, path: str | Path, *, legal_rep: bool = False) -> int:
    """Write one period as an import file (UTF-8, header first); returns the number of rows."""
    columns = list(CSV_COLUMNS) + (["legal_rep"] if legal_rep else [])
    count = 0
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows(data, period, legal_rep=legal_rep):
            writer.writerow(row)
            count += 1
    return count


def stage_counts(data: DemoData, period: int) -> Mapping[str, int]:
    counts = np.bincount(data.periods[period].stage(), minlength=len(STAGES))
    return {s.value: int(c) for s, c in zip(STAGES, counts, strict=True)}
