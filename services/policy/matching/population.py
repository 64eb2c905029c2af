"""The enterprises of an evaluation as columns: built from scoring's bulk items, stored beside
their facts, read back for bulk matching.

Pure code (no I/O): the feed sync and a what-if of a scoring run build the same `Population`
from the same items; `matching.repository` stores and reads its columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import structlog
from pyarrow import csv as pa_csv

from contracts.catalogue import INDICATOR_CODES, PROFILE, RUN_SCORE_FIELDS
from services.policy.criteria import FACTS, FactError, FactTable, coerce_facts
from shared import pgcopy

log = structlog.get_logger("policy.population")

STAGE_NONE = "unstaged"  # no revenue: the scoring service does not place it in a stage
USCC_COLUMN = "uscc"  # not a fact: the codes, in position order


def clean_facts(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The known facts, typed, as JSON values; and the codes of values that were unusable.

    One bad value upstream must not keep an enterprise (or the whole evaluation) from being
    matched: it is dropped, which makes the criteria reading it unknown, never failed.
    """
    try:
        typed = coerce_facts(raw)
    except FactError:
        pass  # some value is unusable: find which, one by one
    else:
        return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in typed.items()}, []
    out: dict[str, Any] = {}
    bad: list[str] = []
    for code, value in raw.items():
        if value is None or code not in FACTS:
            continue
        try:
            typed = coerce_facts({code: value})
        except FactError:
            bad.append(code)
            continue
        v = typed.get(code)
        if v is not None:
            out[code] = sorted(v) if isinstance(v, frozenset) else v
    return out, bad


def enterprise_facts(item: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An item of scoring's bulk scores as the facts criteria read (score, tier, stage too)."""
    raw = dict(item.get("facts") or {})
    raw.update(
        score=item.get("total"),
        tier=item.get("tier"),
        percentile=item.get("percentile"),
        stage=item.get("stage"),
    )
    return clean_facts(raw)


@dataclass(frozen=True, slots=True)
class Enterprise:
    """One enterprise as stored: its cleaned facts are what every criterion reads."""

    uscc: str
    name: str
    facts: dict[str, Any]


def enterprises_of(items: Iterable[Mapping[str, Any]]) -> list[Enterprise]:
    """Scoring's bulk items, cleaned, in USCC order (the population's position order)."""
    out = []
    for item in items:
        facts, bad = enterprise_facts(item)
        if bad:
            log.warning("unusable facts dropped", uscc=item.get("uscc"), facts=bad)
        out.append(Enterprise(str(item["uscc"]), str(item.get("name") or ""), facts))
    out.sort(key=lambda e: e.uscc)
    return out


@dataclass
class Population:
    """Enterprises as columns, position i being the i-th USCC in byte order.

    `stored` is false when the columns were rebuilt from the stored facts rather than read
    (a population stored before the columns existed), so that a writer stores them.
    """

    usccs: npt.NDArray[np.str_]
    stages: npt.NDArray[np.object_]
    table: FactTable
    stored: bool = True
    _stage_index: tuple[npt.NDArray[np.intp], list[str]] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.usccs)

    def stage_index(self) -> tuple[npt.NDArray[np.intp], list[str]]:
        """Each enterprise's stage as an index into the stage names (`STAGE_NONE` last)."""
        if self._stage_index is None:
            names = [*FACTS["stage"].values, STAGE_NONE]
            col: npt.NDArray[np.float64] = self.table.column("stage")
            codes = np.where(np.isnan(col), len(names) - 1, col).astype(np.intp)
            self._stage_index = (codes, names)
        return self._stage_index


def population_of(enterprises: Sequence[Enterprise]) -> Population:
    """The columns of cleaned enterprises (already in position order)."""
    records = [e.facts for e in enterprises]
    codes = {code for r in records for code in r}
    columns = {code: [r.get(code) for r in records] for code in sorted(codes)}
    return Population(
        usccs=np.array([e.uscc for e in enterprises], dtype=str),
        stages=np.array([r.get("stage") or STAGE_NONE for r in records], dtype=object),
        table=FactTable.from_columns(columns, len(records)),
    )


def population_from_items(items: Iterable[Mapping[str, Any]]) -> Population:
    """Scoring's bulk items (`/v1/evaluations/{id}/scores?include=facts`) as a population,
    cleaned exactly as the feed sync stores them: what a what-if of a run matches."""
    return population_of(enterprises_of(items))


# --------------------------------------------------------------------------------------------
# Scoring's CSV export (`/v1/evaluations/{id}/scores/export?include=facts`) as bulk items
# --------------------------------------------------------------------------------------------

_TAG_FACTS = frozenset(p.code for p in PROFILE if p.kind == "tags")


def _export_types() -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {c: pa.string() for c in ("uscc", "name", "stage")}
    types.update(exclusion=pa.string(), founded_on=pa.string(), scored=pa.bool_())
    types.update({c: pa.int64() for c in ("rank", "cohort_size", "tier")})
    types.update({c: pa.float64() for c in ("total", "percentile", "age_years")})
    types.update({c: pa.float64() for c in INDICATOR_CODES})
    for p in PROFILE:
        kind = {"bool": pa.bool_(), "tags": pa.string()}.get(p.kind, pa.float64())
        types[p.code] = kind
    return types


EXPORT_TYPES = _export_types()


@lru_cache(maxsize=4096)
def _tags(cell: str) -> tuple[str, ...]:
    return tuple(json.loads(cell))


def _values(column: pa.ChunkedArray, code: str) -> list[Any]:
    """A column as Python values, NaN as None (as the JSON pages give it)."""
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    values: list[Any] = column.to_pylist()
    if code in _TAG_FACTS:
        return [list(_tags(v)) if v is not None else None for v in values]
    return values


def export_items(path: str) -> list[dict[str, Any]]:
    """The items of scoring's CSV export in the bulk pages' shape (facts nested): what
    `enterprises_of` cleans, as for the pages (the reference the column path is tested by)."""
    table = read_export(path)
    names = table.column_names
    missing = [c for c in ("uscc", "name") if c not in names]
    if missing:
        raise ValueError(f"export without {missing}")
    top = [c for c in names if c in RUN_SCORE_FIELDS]
    facts = [c for c in names if c not in RUN_SCORE_FIELDS and c != "uscc"]
    top_values = [_values(table.column(c), c) for c in top]
    fact_values = [_values(table.column(c), c) for c in facts]
    fact_rows = zip(*fact_values, strict=True) if fact_values else iter([()] * table.num_rows)
    items: list[dict[str, Any]] = []
    for row, fact_row in zip(zip(*top_values, strict=True), fact_rows, strict=True):
        item = dict(zip(top, row, strict=True))
        item["facts"] = dict(zip(facts, fact_row, strict=True))
        items.append(item)
    return items


# The export's column for each fact (the item's top-level fields stand for four of them).
EXPORT_SOURCE = {"score": "total", "tier": "tier", "percentile": "percentile", "stage": "stage"}


def read_export(path: str) -> pa.Table:
    """Scoring's CSV export, typed, as pyarrow columns (no Python object per row)."""
    return pa_csv.read_csv(
        path,
        convert_options=pa_csv.ConvertOptions(
            column_types=EXPORT_TYPES,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def _floats(col: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.asarray(
        col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    return out.copy()


def _tag_mask(cell: str, values: Sequence[str]) -> int:
    """A cell's tags as a bitmask; -1 (missing) when any is unknown, as `clean_facts` drops
    the fact."""
    try:
        tags = _tags(cell)
    except (ValueError, TypeError):
        return -1
    if any(not isinstance(t, str) or t not in values for t in tags):
        return -1
    return sum(1 << values.index(t) for t in set(tags))


def _clean_column(code: str, col: pa.ChunkedArray) -> npt.NDArray[Any]:
    """One fact column cleaned as `clean_facts` cleans each value, encoded as `FactTable`
    holds it: an unusable value is missing, never an error."""
    spec = FACTS[code]
    if spec.type == "tags":
        encoded = col.combine_chunks().dictionary_encode()
        words = encoded.dictionary.to_pylist()
        masks = np.array([_tag_mask(w, spec.values) for w in words] + [-1], dtype=np.int64)
        idx = encoded.indices.fill_null(len(words)).to_numpy(zero_copy_only=False)
        out: npt.NDArray[np.int64] = masks[idx]
        return out
    if spec.type == "enum":
        found = pc.index_in(col.cast(pa.string()), value_set=pa.array(spec.values))
        return _floats(found)
    values = _floats(col)
    if spec.type == "bool":
        values[(values != 0.0) & (values != 1.0)] = np.nan
    return values


def bytes_column(column: pa.ChunkedArray) -> npt.NDArray[np.bytes_]:
    """A text column without nulls as a numpy `S` array (each value's UTF-8 bytes, padded to
    the widest), laid out from Arrow's offsets and data: at a million rows, going through a
    Python object per value cost seconds (py-spy of policy's catch-up)."""
    arr = column.combine_chunks().cast(pa.large_binary())
    if arr.null_count:
        raise ValueError("a null in a column read as bytes")
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    lengths = np.diff(offsets)
    width = max(int(lengths.max()), 1) if n else 1
    out = np.zeros((n, width), dtype=np.uint8)
    if n and offsets[-1] > offsets[0]:
        data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        out[np.arange(width) < lengths[:, None]] = data[offsets[0] : offsets[-1]]
    result: npt.NDArray[np.bytes_] = out.view(f"S{width}").reshape(n)
    return result


def export_order(table: pa.Table) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]]:
    """The export's codes, and the order that puts its rows in position (USCC byte) order:
    as the export comes (it is in USCC order) without sorting a million codes again."""
    column = table.column("uscc")
    try:
        codes = bytes_column(column)
        usccs: npt.NDArray[np.str_] = pgcopy.unicode(codes)  # ASCII, as scoring checks
    except (ValueError, UnicodeDecodeError):
        usccs = np.asarray(column.to_numpy(zero_copy_only=False), dtype=str)
    else:
        if len(codes) < 2 or bool((codes[1:] >= codes[:-1]).all()):
            return usccs, np.arange(len(codes), dtype=np.intp)
    return usccs, np.argsort(usccs, kind="stable")


def population_from_export(
    table: pa.Table,
    ordered: tuple[npt.NDArray[np.str_], npt.NDArray[np.intp]] | None = None,
) -> Population:
    """The population of an export, in USCC order, cleaned as `enterprises_of` cleans items
    (the same columns `population_of` would build from them), without an object per row.
    `ordered`: what `export_order` gives for the table, when the caller has it already."""
    usccs, order = export_order(table) if ordered is None else ordered
    columns: dict[str, npt.NDArray[Any]] = {}
    for code in FACTS:
        source = EXPORT_SOURCE.get(code, code)
        if source not in table.column_names:
            continue
        col = _clean_column(code, table.column(source))[order]
        missing = col == -1 if FACTS[code].type == "tags" else np.isnan(col)
        if not missing.all():  # `population_of` has no column for a fact nobody has
            columns[code] = col
    population = Population(
        usccs=usccs[order],
        stages=np.empty(len(usccs), dtype=object),
        table=FactTable.from_columns(columns, len(usccs)),
    )
    codes, names = population.stage_index()
    population.stages = np.array(names, dtype=object)[codes]
    return population


# --------------------------------------------------------------------------------------------
# Columns as stored: (name, dtype, vocabulary, bytes)
# --------------------------------------------------------------------------------------------

Encoded = tuple[str, str, list[str] | None, bytes]
_FLOAT, _INT, _TEXT = "<f8", "<i8", "text"


def _lines(usccs: npt.NDArray[np.str_]) -> bytes:
    """The codes one per line (`decode_usccs` reads them back): laid out by numpy when they
    are all of one length, as USCCs are, rather than a Python string per code."""
    codes = pgcopy.utf8(usccs)
    width = codes.dtype.itemsize
    if not len(codes) or not (np.char.str_len(codes) == width).all():
        return "\n".join(usccs.tolist()).encode()
    rows = np.empty((len(codes), width + 1), dtype=np.uint8)
    rows[:, :width] = codes.view(np.uint8).reshape(len(codes), width)
    rows[:, width] = ord("\n")
    return rows.tobytes()[:-1]


def encode_columns(population: Population) -> list[Encoded]:
    """Every column of the population, and its codes, as stored in `population_columns`."""
    out: list[Encoded] = [(USCC_COLUMN, _TEXT, None, _lines(population.usccs))]
    for code, col in sorted(population.table.columns.items()):
        spec = FACTS[code]
        vocabulary = list(spec.values) if spec.type in ("enum", "tags") else None
        dtype = _INT if spec.type == "tags" else _FLOAT
        out.append((code, dtype, vocabulary, np.ascontiguousarray(col, dtype=dtype).tobytes()))
    return out


def decode_usccs(data: bytes) -> npt.NDArray[np.str_]:
    text = data.decode()
    return np.array(text.split("\n") if text else [], dtype=str)


UNSEEN = 255  # in aligned statuses: the enterprise was not in the earlier population


def align(
    statuses: npt.NDArray[np.uint8], before: npt.NDArray[np.str_], after: npt.NDArray[np.str_]
) -> npt.NDArray[np.uint8]:
    """Statuses of the population `before` re-indexed by the population `after` (both in
    position order, that is sorted), `UNSEEN` for enterprises new to it."""
    out = np.full(len(after), UNSEEN, dtype=np.uint8)
    if not len(after) or not len(before):
        return out
    j = np.searchsorted(after, before)
    found = j < len(after)
    found[found] = after[j[found]] == before[found]
    out[j[found]] = statuses[found]
    return out


def decode_columns(rows: Iterable[Encoded]) -> Population | None:
    """The population stored by `encode_columns`, read against today's fact vocabulary; None
    when the stored columns cannot be read as today's facts (a fact changed its type)."""
    columns: dict[str, npt.NDArray[Any]] = {}
    usccs: npt.NDArray[np.str_] | None = None
    for name, dtype, vocabulary, data in rows:
        if name == USCC_COLUMN:
            usccs = decode_usccs(data)
            continue
        spec = FACTS.get(name)
        if spec is None:
            continue  # a fact this release no longer knows: no criterion can read it
        if dtype != (_INT if spec.type == "tags" else _FLOAT):
            return None
        col = np.frombuffer(data, dtype=dtype).astype(np.int64 if dtype == _INT else np.float64)
        if spec.type in ("enum", "tags") and tuple(vocabulary or ()) != spec.values:
            col = _revocabulary(col, list(vocabulary or ()), spec.values, spec.type == "tags")
        columns[name] = col
    if usccs is None or any(len(c) != len(usccs) for c in columns.values()):
        return None
    table = FactTable.from_columns(columns, len(usccs))
    stage = columns.get("stage")
    names = np.array([*FACTS["stage"].values, STAGE_NONE], dtype=object)
    if stage is None:
        stages = np.full(len(usccs), STAGE_NONE, dtype=object)
    else:
        stages = names[np.where(np.isnan(stage), len(names) - 1, stage).astype(np.intp)]
    return Population(usccs=usccs, stages=stages, table=table)


def _revocabulary(
    col: npt.NDArray[Any], old: list[str], new: Sequence[str], tags: bool
) -> npt.NDArray[Any]:
    """Codes written against `old` words re-expressed against `new`; a word gone is missing
    (as a value the store would have dropped)."""
    where = {w: i for i, w in enumerate(new)}
    if tags:
        out = np.where(col == -1, -1, 0).astype(np.int64)
        for i, word in enumerate(old):
            j = where.get(word)
            if j is not None:
                out |= np.where(col == -1, 0, ((col >> i) & 1) << j)
        return out
    lookup = np.array([float(where.get(w, np.nan)) for w in old] + [np.nan])
    idx = np.where(np.isnan(col), len(old), col).astype(np.intp)
    result: npt.NDArray[np.float64] = lookup[idx]
    return result


def facts_records(population: Population) -> list[dict[str, Any]]:
    """Each enterprise's cleaned facts as `clean_facts` gives them (numbers as floats, flags
    as bools, the stage by name, tags as sorted lists; a missing fact absent), read back from
    the columns: the facts mapping an explanation evaluates, built on demand for a few."""
    out: list[dict[str, Any]] = [{} for _ in range(population.n)]
    for code, col in sorted(population.table.columns.items()):
        spec = FACTS[code]
        values = col.tolist()
        for record, v in zip(out, values, strict=True):
            if spec.type == "tags":
                if v != -1:
                    record[code] = sorted(w for i, w in enumerate(spec.values) if v >> i & 1)
            elif v == v:  # not NaN
                if spec.type == "bool":
                    record[code] = v == 1.0
                elif spec.type == "enum":
                    record[code] = spec.values[int(v)]
                else:
                    record[code] = float(v)
    return out


def facts_at(
    names: Sequence[str],
    dtypes: Sequence[str],
    vocabularies: Sequence[list[str] | None],
    slices: Sequence[Sequence[bytes]],
) -> list[dict[str, Any]] | None:
    """The facts of a few enterprises from their entries in the stored columns (`slices[c][i]`:
    enterprise i's bytes of column `names[c]`); None when they cannot be read as today's facts
    (a fact changed its type), for the caller to fall back on what else it has."""
    if not names:
        return None
    k = len(slices[0])
    rows: list[Encoded] = [(USCC_COLUMN, _TEXT, None, "\n".join(["-"] * k).encode())]
    for name, dtype, vocabulary, parts in zip(names, dtypes, vocabularies, slices, strict=True):
        rows.append((name, dtype, vocabulary, b"".join(parts)))
    population = decode_columns(rows)
    return None if population is None else facts_records(population)


def population_from_json_rows(rows: Sequence[Sequence[Any]]) -> Population:
    """The population from stored facts rows `[uscc, stage, facts]` in position order: the
    path for a population stored before its columns were."""
    enterprises = [Enterprise(str(r[0]), "", r[2] or {}) for r in rows]
    population = population_of(enterprises)
    population.stages = np.array([r[1] or STAGE_NONE for r in rows], dtype=object)
    population.stored = False
    return population


__all__ = [
    "STAGE_NONE",
    "UNSEEN",
    "USCC_COLUMN",
    "Encoded",
    "Enterprise",
    "Population",
    "align",
    "bytes_column",
    "clean_facts",
    "decode_columns",
    "decode_usccs",
    "encode_columns",
    "enterprise_facts",
    "enterprises_of",
    "export_items",
    "export_order",
    "facts_at",
    "facts_records",
    "population_from_export",
    "population_from_items",
    "population_from_json_rows",
    "population_of",
    "read_export",
]
