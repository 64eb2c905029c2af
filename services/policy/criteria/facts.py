"""Facts: what a criterion reads (types, units, ranges, vocabularies), and their coercion
for one enterprise (`coerce_facts`) or encoding as columns for many (`FactTable`)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from contracts.catalogue import (
    INDICATORS,
    NEGATIVE_FLAGS,
    PROFILE,
    QUALIFICATIONS,
    STAGES,
)

FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
IntArray: TypeAlias = npt.NDArray[np.int64]


FactType = Literal["number", "bool", "enum", "tags"]


@dataclass(frozen=True, slots=True)
class FactSpec:
    """What a fact is: its type, unit and, for validation, its range or vocabulary."""

    code: str
    type: FactType
    unit: str
    name_zh: str
    integer: bool = False  # counts: gaps are whole units
    minimum: float | None = None
    maximum: float | None = None
    grows_only: bool = False  # an upper limit on it can never be met by waiting or working
    values: tuple[str, ...] = ()  # vocabulary of enum and tags facts


_KIND_RANGE: dict[str, tuple[float | None, float | None]] = {
    "amount": (0.0, None),
    "count": (0.0, None),
    "ratio": (0.0, 100.0),
    "growth": (-100.0, 10000.0),
    "roe": (-1000.0, 1000.0),
}


def _build_facts() -> dict[str, FactSpec]:
    facts: dict[str, FactSpec] = {}
    for ind in INDICATORS:
        if ind.kind == "flag":
            facts[ind.code] = FactSpec(ind.code, "bool", ind.unit, ind.name_zh)
        else:
            lo, hi = _KIND_RANGE[ind.kind]
            facts[ind.code] = FactSpec(
                ind.code, "number", ind.unit, ind.name_zh, ind.kind == "count", lo, hi
            )
    for attr in PROFILE:
        if attr.kind == "bool":
            facts[attr.code] = FactSpec(attr.code, "bool", attr.unit, attr.name_zh)
        elif attr.kind == "tags":
            vocab = QUALIFICATIONS if attr.code == "qualifications" else NEGATIVE_FLAGS
            facts[attr.code] = FactSpec(attr.code, "tags", attr.unit, attr.name_zh, values=vocab)
        else:
            lo, hi = _KIND_RANGE[attr.kind]
            facts[attr.code] = FactSpec(
                attr.code,
                "number",
                attr.unit,
                attr.name_zh,
                attr.kind == "count",
                lo,
                hi,
                grows_only=attr.code == "niche_years",
            )
    facts["score"] = FactSpec("score", "number", "分", "创新积分总分", False, 0.0, 100.0)
    # Same scales as services.scoring.engine and the credit service: tier 5 is the best band,
    # percentile is the within-stage share in 0..1 with 1 best.
    facts["tier"] = FactSpec("tier", "number", "档", "积分档次(5为最高)", True, 1.0, 5.0)
    facts["percentile"] = FactSpec("percentile", "number", "", "阶段内百分位", False, 0.0, 1.0)
    facts["age_years"] = FactSpec(
        "age_years", "number", "年", "成立年限", False, 0.0, None, grows_only=True
    )
    facts["stage"] = FactSpec("stage", "enum", "", "发展阶段", values=tuple(str(s) for s in STAGES))
    return facts


FACTS: Mapping[str, FactSpec] = MappingProxyType(_build_facts())


class FactError(ValueError):
    """A supplied fact has the wrong type or an unknown value: a bug upstream, not missing data."""


# A fact value after coercion: numbers are floats, flags bools, stage a str, tags a frozenset.
Value: TypeAlias = float | bool | str | frozenset[str]


def _as_number(code: str, raw: object) -> float | None:
    if type(raw) is float or type(raw) is int:  # the common case, without the ABC checks
        return None if raw != raw else float(raw)
    if isinstance(raw, bool | np.bool_):
        raise FactError(f"{code}: expected a number, got a bool")
    if isinstance(raw, numbers.Real | Decimal):
        v = float(raw)
        return None if math.isnan(v) else v
    raise FactError(f"{code}: expected a number, got {type(raw).__name__}")


def _as_bool(code: str, raw: object) -> bool | None:
    if isinstance(raw, bool | np.bool_):
        return bool(raw)
    # Flags are stored as 0/1 numbers in the indicator tables.
    if isinstance(raw, numbers.Real | Decimal):
        v = float(raw)
        if math.isnan(v):
            return None
        if v in (0.0, 1.0):
            return v == 1.0
    raise FactError(f"{code}: expected a bool or 0/1, got {raw!r}")


def _coerce(spec: FactSpec, raw: object) -> Value | None:
    if raw is None:
        return None
    if spec.type == "number":
        return _as_number(spec.code, raw)
    if spec.type == "bool":
        return _as_bool(spec.code, raw)
    if spec.type == "enum":
        if isinstance(raw, str) and raw in spec.values:
            return str(raw)
        raise FactError(f"{spec.code}: {raw!r} is not one of {spec.values}")
    # A bare string is iterable too; refusing it catches "hnte" passed instead of ["hnte"].
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise FactError(f"{spec.code}: expected a collection of tags, got {raw!r}")
    tags = frozenset(raw)
    unknown = sorted(str(t) for t in tags if t not in spec.values)
    if unknown:
        raise FactError(f"{spec.code}: unknown tags {unknown}")
    return tags


def coerce_facts(
    facts: Mapping[str, object], only: Iterable[str] | None = None
) -> dict[str, Value]:
    """Known facts (or those in `only`), typed; None and NaN are dropped (missing). Other keys
    are ignored."""
    out: dict[str, Value] = {}
    for code in facts if only is None else only:
        spec = FACTS.get(code)
        if spec is None or code not in facts:
            continue
        v = _coerce(spec, facts[code])
        if v is not None:
            out[code] = v
    return out


MISSING_TAGS = -1


class FactTable:
    """Facts of many enterprises as columns, the input of bulk evaluation.

    Encoding: number, bool (1/0) and enum (index into `FactSpec.values`) facts are float64 with
    NaN for missing; tags are an int64 bitmask over `FactSpec.values` with -1 for missing. A
    fact without a column is missing for every row.
    """

    __slots__ = ("_columns", "_missing_float", "_missing_tags", "n")

    def __init__(self, n: int, columns: Mapping[str, FloatArray | IntArray]) -> None:
        self.n = n
        self._columns = dict(columns)
        self._missing_float: FloatArray | None = None
        self._missing_tags: IntArray | None = None

    def column(self, code: str) -> Any:
        col = self._columns.get(code)
        if col is not None:
            return col
        if FACTS[code].type == "tags":
            if self._missing_tags is None:
                self._missing_tags = np.full(self.n, MISSING_TAGS, dtype=np.int64)
            return self._missing_tags
        if self._missing_float is None:
            self._missing_float = np.full(self.n, np.nan)
        return self._missing_float

    @property
    def columns(self) -> Mapping[str, FloatArray | IntArray]:
        """The encoded columns present (a fact no row has has none), read-only."""
        return MappingProxyType(self._columns)

    def slice(self, start: int, stop: int) -> FactTable:
        stop = min(stop, self.n)
        return FactTable(stop - start, {k: v[start:stop] for k, v in self._columns.items()})

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, object]]) -> FactTable:
        """Rows as fact dicts (the same shape `evaluate` takes)."""
        rows = [coerce_facts(r) for r in records]
        present = {code for row in rows for code in row}
        return cls.from_columns({c: [row.get(c) for row in rows] for c in present}, len(rows))

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], n: int | None = None) -> FactTable:
        """Columns as arrays or sequences.

        Numbers: any numeric array, None/NaN = missing. Bools: bool or 0/1 array. Stage: the
        stage names (or their index), None = missing. Tags: a sequence of collections (None =
        missing), or an integer bitmask array (-1 = missing). Unknown names are ignored.
        """
        out: dict[str, FloatArray | IntArray] = {}
        for code, raw in columns.items():
            spec = FACTS.get(code)
            if spec is None:
                continue
            col = _encode_column(spec, raw)
            if n is None:
                n = len(col)
            if len(col) != n:
                raise FactError(f"{code}: column has {len(col)} rows, expected {n}")
            out[code] = col
        return cls(n or 0, out)


def _encode_column(spec: FactSpec, raw: Any) -> FloatArray | IntArray:
    if spec.type == "tags":
        if isinstance(raw, np.ndarray) and raw.dtype.kind in "iu":
            mask = raw.astype(np.int64)
            if np.any((mask < MISSING_TAGS) | (mask >= 1 << len(spec.values))):
                raise FactError(f"{spec.code}: bitmask out of range")
            return mask
        bits = {t: 1 << i for i, t in enumerate(spec.values)}
        out = np.full(len(raw), MISSING_TAGS, dtype=np.int64)
        for i, item in enumerate(raw):
            v = _coerce(spec, item)
            if isinstance(v, frozenset):
                out[i] = sum(bits[t] for t in v)
        return out
    if spec.type == "enum":
        arr = np.asarray(raw)
        if arr.dtype.kind in "iuf":
            codes = arr.astype(np.float64)
            ok = np.isnan(codes) | np.isin(codes, np.arange(len(spec.values)))
            if not ok.all():
                raise FactError(f"{spec.code}: codes out of range")
            return codes
        index = {s: float(i) for i, s in enumerate(spec.values)}
        try:
            return np.array([np.nan if v is None else index[str(v)] for v in raw])
        except KeyError as e:
            raise FactError(f"{spec.code}: unknown value {e.args[0]!r}") from None
    try:
        col = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise FactError(f"{spec.code}: not numeric ({e})") from None
    if spec.type == "bool" and not np.all(np.isnan(col) | (col == 0.0) | (col == 1.0)):
        raise FactError(f"{spec.code}: a bool column holds values other than 0/1")
    return col
