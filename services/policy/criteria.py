"""Eligibility criteria as data, and the engine that evaluates them.

A rule (`Rule`) is a tree: `all` / `any` groups, `points` groups (scored self-evaluations) and
leaf `Criterion`s. Rules are plain Pydantic models, so they are stored as JSON and edited by
staff; `validate_rule` is the gate that keeps a broken rule from ever being published, and
`compile_rule` refuses one too.

Facts are what a criterion reads: every indicator and profile attribute of
`contracts.catalogue`, plus `score`, `tier`, `stage`, `percentile` and `age_years` (see
`FACTS` for types and units). Missing data is never a failure: a criterion whose facts are
absent is `unknown`, and groups combine results with Kleene three-valued logic.

Status of a rule for one enterprise:

* `eligible`   the rule passes.
* `unknown`    the rule neither passes nor fails: missing facts decide it.
* `near`       the rule fails, but there is a way to pass by closing at most `near_max`
               (default 2) failing criteria, each of which is *closeable* (numeric, with a gap,
               not marked `closeable=False`, not an upper limit on a fact that only grows), while
               every other criterion on that way already passes. An unknown criterion on the way
               disqualifies it ("unknown-critical"): near is a promise we can only make on data.
               A failing `points` group counts as one closeable criterion (gap in points).
* `ineligible` otherwise.

Two evaluation paths share one compiled form: `CompiledRule.evaluate` gives the detailed
outcome for one enterprise; `CompiledRule.evaluate_table` / `match_table` evaluate columns of
many enterprises with numpy, which is what bulk matching uses.

Why by hand: none of the rules engines surveyed (OpenFisca, GoRules ZEN, OPA, JsonLogic)
says which criterion failed and by how much, which is the answer an enterprise needs, nor
treats missing data as unknown rather than false. Where a criterion needs a custom
expression, it is cel-python (safe, non-Turing-complete), one expression per criterion so a
failure still maps to it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, get_args

import celpy
import lark
import numpy as np
import numpy.typing as npt
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

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

# Values computed upstream (ratios, growth rates) arrive with float noise; a firm at exactly
# 5.0% must not fail a >= 5% criterion because it was stored as 4.999999999999.
_REL_TOL = 1e-9


def _tol(t: float) -> float:
    return _REL_TOL * max(1.0, abs(t))


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------

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


_MISSING_TAGS = -1


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
                self._missing_tags = np.full(self.n, _MISSING_TAGS, dtype=np.int64)
            return self._missing_tags
        if self._missing_float is None:
            self._missing_float = np.full(self.n, np.nan)
        return self._missing_float

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
            if np.any((mask < _MISSING_TAGS) | (mask >= 1 << len(spec.values))):
                raise FactError(f"{spec.code}: bitmask out of range")
            return mask
        bits = {t: 1 << i for i, t in enumerate(spec.values)}
        out = np.full(len(raw), _MISSING_TAGS, dtype=np.int64)
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


# --------------------------------------------------------------------------------------------
# Rules (data)
# --------------------------------------------------------------------------------------------

Op = Literal[
    ">=",
    ">",
    "<=",
    "<",
    "==",
    "!=",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "between",
    "is_true",
    "is_false",
    "cel",
]
OPS: tuple[str, ...] = get_args(Op)

OPS_BY_TYPE: Mapping[FactType, frozenset[str]] = MappingProxyType(
    {
        "number": frozenset({">=", ">", "<=", "<", "==", "!=", "between", "in", "not_in"}),
        "bool": frozenset({"is_true", "is_false", "==", "!="}),
        "enum": frozenset({"==", "!=", "in", "not_in"}),
        "tags": frozenset({"contains", "not_contains"}),
    }
)
_ORDER_OPS = frozenset({">=", ">", "<=", "<"})

Scalar: TypeAlias = bool | int | float | str
Threshold: TypeAlias = Scalar | list[Scalar] | None


class _Model(BaseModel):
    # A typo in stored JSON ("treshold") must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


class Band(_Model):
    """One band of a banded threshold: applies while the `by` fact is up to `upper`."""

    upper: float | None = None  # None: no upper bound (the last band)
    upper_inclusive: bool = False
    threshold: Threshold = None


class Banded(_Model):
    """A threshold that depends on the band another fact falls in (bands in ascending order)."""

    by: str
    bands: list[Band]


class Criterion(_Model):
    """One condition. `fact op threshold`, or a CEL expression when `op == "cel"`.

    `per` turns the fact into a percentage of another fact (`fact * 100 / per`), for shares the
    catalogue does not hold as such (S&T staff / employees). `closeable=False` marks a condition
    a firm cannot sensibly work towards (an upper size limit, holding a title): its failure
    never counts towards `near`.
    """

    kind: Literal["criterion"] = "criterion"
    id: str = Field(min_length=1, max_length=120)
    fact: str | None = None
    per: str | None = None
    op: Op
    threshold: Threshold = None
    banded: Banded | None = None
    expr: str | None = None
    unit: str | None = None  # default: the fact's unit ("%" with `per`)
    label_zh: str = Field(min_length=1)
    clause: str = ""
    closeable: bool = True


class Group(_Model):
    """`all`: every item must pass; `any`: one is enough (Kleene logic with unknowns)."""

    kind: Literal["all", "any"]
    id: str = Field(min_length=1, max_length=120)
    label_zh: str = ""
    clause: str = ""
    items: list[Node]


class PointsBand(_Model):
    min: float  # points are awarded from this value up
    points: float


class PointsScale(_Model):
    """One way to score an item: the points of the highest band the value reaches."""

    fact: str
    per: str | None = None
    bands: list[PointsBand]


class PointsItem(_Model):
    """A scored item; with several scales, the best one counts (the firm picks its method)."""

    id: str = Field(min_length=1, max_length=120)
    label_zh: str = Field(min_length=1)
    clause: str = ""
    required_nonzero: bool = False
    scales: list[PointsScale]


class PointsGroup(_Model):
    """Scored self-evaluation: passes when the total reaches `pass_at` and every
    `required_nonzero` item scores above zero."""

    kind: Literal["points"] = "points"
    id: str = Field(min_length=1, max_length=120)
    label_zh: str = ""
    clause: str = ""
    pass_at: float
    items: list[PointsItem]


def _node_tag(v: Any) -> str | None:
    # A leaf may omit `kind`: most authored nodes are criteria.
    kind = v.get("kind", "criterion") if isinstance(v, dict) else getattr(v, "kind", None)
    return "group" if kind in ("all", "any") else kind


Node: TypeAlias = Annotated[
    Annotated[Criterion, Tag("criterion")]
    | Annotated[Group, Tag("group")]
    | Annotated[PointsGroup, Tag("points")],
    Discriminator(_node_tag),
]
Group.model_rebuild()


class Rule(_Model):
    id: str = Field(min_length=1, max_length=120)
    root: Node


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

Result = Literal["pass", "fail", "unknown"]
Status = Literal["eligible", "near", "ineligible", "unknown"]
STATUSES: tuple[Status, ...] = ("eligible", "near", "ineligible", "unknown")
NEAR_MAX_DEFAULT = 2

Actual: TypeAlias = (
    float | bool | str | list[str] | dict[str, float | bool | str | list[str]] | None
)


class CriterionOutcome(_Model):
    kind: Literal["criterion"] = "criterion"
    id: str
    label_zh: str
    result: Result
    fact: str | None
    op: Op
    actual: Actual  # for CEL: the facts the expression read
    threshold: Threshold  # resolved band for banded; the expression for CEL
    # Signed change of `actual` needed to pass, in `unit`, for numeric comparisons; reported
    # even when not `closeable` (a size over a limit), which only keeps it out of `near`.
    gap: float | None
    unit: str
    closeable: bool
    clause: str
    missing: list[str] = Field(default_factory=list)


class PointsItemOutcome(_Model):
    id: str
    label_zh: str
    points: float | None  # best points over the scales that have data
    max_points: float
    basis: str | None  # the fact whose scale gave `points`
    actual: float | None
    complete: bool  # every scale had data
    clause: str


class PointsOutcome(_Model):
    kind: Literal["points"] = "points"
    id: str
    label_zh: str
    result: Result
    total: float  # points with missing data counted as zero
    total_possible: float  # points with missing data counted at their best
    pass_at: float
    gap: float | None  # points short, when failed
    zero_required: list[str]  # required items scoring zero
    items: list[PointsItemOutcome]
    clause: str
    missing: list[str] = Field(default_factory=list)


class GroupOutcome(_Model):
    kind: Literal["all", "any"]
    id: str
    label_zh: str
    result: Result
    items: list[NodeOutcome]
    clause: str


NodeOutcome: TypeAlias = Annotated[
    CriterionOutcome | GroupOutcome | PointsOutcome, Field(discriminator="kind")
]
GroupOutcome.model_rebuild()


class RuleOutcome(_Model):
    rule_id: str
    status: Status
    result: Result
    blocking: list[str]  # when near: the criteria to close, cheapest way first found
    missing_facts: list[str]
    root: NodeOutcome

    def criteria(self) -> list[CriterionOutcome]:
        """Every leaf criterion, depth first."""
        out: list[CriterionOutcome] = []
        stack: list[CriterionOutcome | GroupOutcome | PointsOutcome] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, CriterionOutcome):
                out.append(node)
            elif isinstance(node, GroupOutcome):
                stack.extend(reversed(node.items))
        return out

    def criterion(self, criterion_id: str) -> CriterionOutcome:
        for c in self.criteria():
            if c.id == criterion_id:
                return c
        raise KeyError(criterion_id)

    def find(self, node_id: str) -> CriterionOutcome | GroupOutcome | PointsOutcome:
        stack: list[CriterionOutcome | GroupOutcome | PointsOutcome] = [self.root]
        while stack:
            node = stack.pop()
            if node.id == node_id:
                return node
            if isinstance(node, GroupOutcome):
                stack.extend(node.items)
        raise KeyError(node_id)


# --------------------------------------------------------------------------------------------
# Validation problems
# --------------------------------------------------------------------------------------------

ProblemCode = Literal[
    "schema",
    "unknown_fact",
    "unknown_op",
    "op_not_allowed",
    "bad_threshold",
    "bad_band",
    "bad_cel",
    "empty_group",
    "duplicate_id",
    "bad_points",
]


class Problem(_Model):
    code: ProblemCode
    path: str
    message: str
    criterion_id: str | None = None


class InvalidRuleError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


# --------------------------------------------------------------------------------------------
# Numeric comparisons, shared by both paths
# --------------------------------------------------------------------------------------------

NumThreshold: TypeAlias = float | tuple[float, ...]
# The threshold a comparison sees: static, per row (banded, bulk path), or a list / range.
_Against: TypeAlias = float | FloatArray | tuple[float, ...]


def _compare(op: str, v: Any, t: _Against) -> Any:
    """`v op t` within tolerance, for a float or a column alike (numpy ufuncs take both)."""
    if isinstance(t, tuple):
        if op == "between":
            lo, hi = t
            return np.logical_and(v >= lo - _tol(lo), v <= hi + _tol(hi))
        hit = np.logical_or.reduce([np.abs(v - x) <= _tol(x) for x in t])
        return hit if op == "in" else np.logical_not(hit)
    tol = _REL_TOL * np.maximum(1.0, np.abs(t))
    if op == ">=":
        return v >= t - tol
    if op == ">":
        return v > t + tol
    if op == "<=":
        return v <= t + tol
    if op == "<":
        return v < t - tol
    eq = np.abs(v - t) <= tol
    return eq if op == "==" else np.logical_not(eq)


def _gap(op: str, v: Any, t: _Against, integer: bool) -> Any:
    """Signed change of v that makes a failing comparison pass (counts move in whole units);
    None where no distance applies (!=, in, not_in)."""
    if op == "between":
        assert isinstance(t, tuple)
        lo, hi = t
        return np.where(v < lo, _gap(">=", v, lo, integer), _gap("<=", v, hi, integer))
    if isinstance(t, tuple) or op == "!=":
        return None
    target: Any = t
    if integer:
        target = {
            ">=": np.ceil(t),
            ">": np.floor(t) + 1,
            "<=": np.floor(t),
            "<": np.ceil(t) - 1,
        }.get(op, t)
    # Nine decimals hide float noise (5 - 3.8) yet stay within _tol, so v + gap still passes.
    return np.round(target - v, 9)


# --------------------------------------------------------------------------------------------
# CEL: parsed and run (one enterprise) by cel-python; compiled to numpy for bulk evaluation
# --------------------------------------------------------------------------------------------
#
# Published expressions are limited to a typed subset that both paths evaluate identically
# (a property test checks it): fact names, literals (int, double, string, bool), lists of
# literals, parentheses, + - * / on doubles, + - * on ints, unary - and !, comparisons,
# == and != on strings and bools, `in` (a list literal or a tags fact), && || and ?:, size(tags).
# Number facts are doubles, as CEL does not compare int with double: write `employees >= 10.0`.
# Division follows cel-python: x / 0.0 is +inf, so guard a ratio (`revenue > 0.0 && ...`) or
# use a criterion with `per`, which is unknown on a zero denominator.
# Flag indicators and bool attributes are bools, stage a string, tags a list of strings. An
# expression whose facts are not all present is unknown, whatever its short-circuits.

CelType = Literal["double", "int", "bool", "string", "list_double", "list_int", "list_string"]


_CEL_LIST_OF: dict[CelType, CelType] = {
    "double": "list_double",
    "int": "list_int",
    "string": "list_string",
}


class _CelError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _CelExpr:
    type: CelType
    fn: Callable[[FactTable], Any]
    const: bool = False  # fn ignores the table (literals and folds)
    enum_fact: str | None = None  # string-typed stage codes
    tags_fact: str | None = None  # list_string as a tags bitmask


# Constants are evaluated once at compile time, against a table with no rows.
_NO_ROWS = FactTable(0, {})


@lru_cache(maxsize=1)
def _cel_env() -> celpy.Environment:
    # One environment: each construction re-creates the lark parser and resets the recursion
    # limit.
    return celpy.Environment()


_CEL_TYPE_OF_FACT: dict[FactType, CelType] = {
    "number": "double",
    "bool": "bool",
    "enum": "string",
    "tags": "list_string",
}


def _literal(token: str) -> _CelExpr:
    try:
        value = _cel_env().program(_cel_env().compile(token)).evaluate({})
    except Exception as e:  # cel-python raises several types for literals it cannot read
        raise _CelError(f"unreadable literal {token}") from e
    py: object
    ctype: CelType
    if isinstance(value, celtypes.BoolType):
        py, ctype = bool(value), "bool"
    elif isinstance(value, celtypes.UintType):
        raise _CelError(f"unsigned literal {token} is not supported")
    elif isinstance(value, celtypes.IntType):
        py, ctype = int(value), "int"
    elif isinstance(value, celtypes.DoubleType):
        py, ctype = float(value), "double"
    elif isinstance(value, celtypes.StringType):
        py, ctype = str(value), "string"
    else:
        raise _CelError(f"literal {token} is not supported")
    return _CelExpr(ctype, lambda _t: py, const=True)


# Grammar levels that, with a single child, only wrap it.
_CEL_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
)
# What a member or primary may hold in the subset; fields, methods, maps and macros may not.
_CEL_PRIMARIES = {
    "member": frozenset({"primary"}),
    "primary": frozenset({"literal", "ident", "ident_arg", "paren_expr", "list_lit"}),
}


class _CelCompiler:
    """Type-checks a parsed expression against FACTS and builds its numpy evaluator."""

    def __init__(self) -> None:
        self.idents: set[str] = set()

    def compile(self, tree: lark.Tree[Any]) -> _CelExpr:
        data = tree.data
        kids = [c for c in tree.children if c is not None]
        if data in _CEL_PASS_THROUGH and len(kids) == 1:
            return self.compile(kids[0])
        if data == "expr":
            return self._ternary(*(self.compile(k) for k in kids))
        if data in ("conditionalor", "conditionaland"):
            a, b = self.compile(kids[0]), self.compile(kids[1])
            return self._logic("||" if data == "conditionalor" else "&&", a, b)
        if data in ("relation", "addition", "multiplication"):
            op_tree = kids[0]
            a, b = self.compile(op_tree.children[0]), self.compile(kids[1])
            return self._binary(op_tree.data, a, b)
        if data == "unary":
            if len(kids) == 1:
                return self.compile(kids[0])
            return self._unary(kids[0].data, self.compile(kids[1]))
        if data in ("member", "primary"):
            kid = kids[0]
            if isinstance(kid, lark.Tree) and kid.data in _CEL_PRIMARIES[data]:
                return self.compile(kid)
            raise _CelError(f"unsupported CEL construct: {_construct_name(tree)}")
        if data == "paren_expr":
            return self.compile(kids[0])
        if data == "ident":
            return self._ident(str(kids[0]))
        if data == "literal":
            return _literal(str(kids[0]))
        if data == "ident_arg":
            return self._call(str(kids[0]), kids[1:])
        if data == "list_lit":
            return self._list(kids)
        raise _CelError(f"unsupported CEL construct: {_construct_name(tree)}")

    def _ident(self, name: str) -> _CelExpr:
        spec = FACTS.get(name)
        if spec is None:
            raise _CelError(f"unknown fact {name!r}")
        self.idents.add(name)
        ctype = _CEL_TYPE_OF_FACT[spec.type]
        if spec.type == "bool":
            return _CelExpr(ctype, lambda t: t.column(name) == 1.0)
        return _CelExpr(
            ctype,
            lambda t: t.column(name),
            enum_fact=name if spec.type == "enum" else None,
            tags_fact=name if spec.type == "tags" else None,
        )

    def _call(self, name: str, args: list[Any]) -> _CelExpr:
        exprs = [self.compile(a) for a in args[0].children] if args else []
        if name != "size" or len(exprs) != 1 or exprs[0].tags_fact is None:
            raise _CelError(f"unsupported function {name}(): only size(<tags fact>) is allowed")
        fn = exprs[0].fn
        return _CelExpr("int", lambda t: np.bitwise_count(fn(t)).astype(np.int64))

    def _list(self, kids: list[Any]) -> _CelExpr:
        items = [self.compile(e) for e in kids[0].children] if kids else []
        if not items or not all(i.const for i in items):
            raise _CelError("list literals must be non-empty and hold literals only")
        types = {i.type for i in items}
        ltype = _CEL_LIST_OF.get(items[0].type)
        if len(types) != 1 or ltype is None:
            raise _CelError("a list literal must hold doubles, ints or strings, not a mix")
        values = tuple(i.fn(_NO_ROWS) for i in items)
        return _CelExpr(ltype, lambda _t: values, const=True)

    @staticmethod
    def _fold(ctype: CelType, fn: Callable[[FactTable], Any], *parts: _CelExpr) -> _CelExpr:
        if all(p.const for p in parts):
            value = fn(_NO_ROWS)
            return _CelExpr(ctype, lambda _t: value, const=True)
        return _CelExpr(ctype, fn)

    def _ternary(self, c: _CelExpr, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if c.type != "bool":
            raise _CelError("the condition of ?: must be a bool")
        if a.type != b.type or a.type not in ("double", "int", "bool"):
            raise _CelError("both branches of ?: must be doubles, ints or bools of one type")
        cf, af, bf = c.fn, a.fn, b.fn
        return self._fold(a.type, lambda t: np.where(cf(t), af(t), bf(t)), c, a, b)

    def _logic(self, op: str, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if a.type != "bool" or b.type != "bool":
            raise _CelError(f"{op} needs bools on both sides")
        af, bf = a.fn, b.fn
        ufunc = np.logical_or if op == "||" else np.logical_and
        return self._fold("bool", lambda t: ufunc(af(t), bf(t)), a, b)

    def _unary(self, op: str, a: _CelExpr) -> _CelExpr:
        af = a.fn
        if op == "unary_not":
            if a.type != "bool":
                raise _CelError("! needs a bool")
            return self._fold("bool", lambda t: np.logical_not(af(t)), a)
        if a.type not in ("double", "int"):
            raise _CelError("unary - needs a number")
        return self._fold(a.type, lambda t: np.negative(af(t)), a)

    def _binary(self, op: str, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        af, bf = a.fn, b.fn
        if op in ("addition_add", "addition_sub", "multiplication_mul", "multiplication_div"):
            if a.type != b.type or a.type not in ("double", "int"):
                raise _CelError(
                    f"arithmetic needs two doubles or two ints, got {a.type} and {b.type} "
                    "(number facts are doubles: write 10.0, not 10)"
                )
            if op == "multiplication_div" and a.type == "int":
                raise _CelError("integer division is not supported; use doubles")
            ufunc = _CEL_ARITHMETIC[op]
            return self._fold(a.type, lambda t: ufunc(af(t), bf(t)), a, b)
        if op == "multiplication_mod":
            raise _CelError("% is not supported")
        if op == "relation_in":
            return self._in(a, b)
        cmp = op.removeprefix("relation_")
        if a.type != b.type:
            raise _CelError(
                f"cannot compare {a.type} with {b.type} "
                "(number facts are doubles: write 10.0, not 10)"
            )
        if a.type in ("double", "int"):
            cmp_ufunc = _CEL_COMPARE[cmp]
            return self._fold("bool", lambda t: cmp_ufunc(af(t), bf(t)), a, b)
        if cmp not in ("eq", "ne"):
            raise _CelError(f"only == and != compare {a.type}s")
        if a.type == "bool":
            eq_ufunc = np.equal if cmp == "eq" else np.not_equal
            return self._fold("bool", lambda t: eq_ufunc(af(t), bf(t)), a, b)
        if a.type != "string":
            raise _CelError(f"cannot compare {a.type}s")
        return self._string_eq(cmp == "eq", a, b)

    def _stage_code(self, fact: str, value: object) -> float:
        values = FACTS[fact].values
        if value not in values:
            raise _CelError(f"{value!r} is not a {fact} (one of {', '.join(values)})")
        return float(values.index(str(value)))

    def _string_eq(self, eq: bool, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if a.const and b.const:
            return self._fold("bool", lambda t: (a.fn(t) == b.fn(t)) == eq, a, b)
        if a.enum_fact is not None and b.enum_fact is not None:
            return _CelExpr("bool", lambda t: np.full(t.n, eq))
        fact_side, lit = (a, b) if a.enum_fact is not None else (b, a)
        if fact_side.enum_fact is None:
            raise _CelError("unsupported string comparison")
        code = self._stage_code(fact_side.enum_fact, lit.fn(_NO_ROWS))
        ff = fact_side.fn
        return _CelExpr("bool", lambda t: (ff(t) == code) == eq)

    def _in(self, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if b.type != _CEL_LIST_OF.get(a.type):
            raise _CelError(f"cannot test a {a.type} in a {b.type}")
        af, bf = a.fn, b.fn
        if b.tags_fact is not None:
            if not a.const:
                raise _CelError("`in <tags>` needs a string literal on the left")
            tag = a.fn(_NO_ROWS)
            vocab = FACTS[b.tags_fact].values
            if tag not in vocab:
                raise _CelError(f"{tag!r} is not a {b.tags_fact} tag (one of {', '.join(vocab)})")
            bit = 1 << vocab.index(tag)
            return _CelExpr("bool", lambda t: (bf(t) & bit) != 0)
        if a.enum_fact is not None:
            codes = [self._stage_code(a.enum_fact, v) for v in bf(_NO_ROWS)]
            return _CelExpr("bool", lambda t: np.isin(af(t), codes))
        return self._fold("bool", lambda t: np.isin(af(t), bf(t)), a, b)


def _cel_divide(a: Any, b: Any) -> Any:
    # cel-python, the reference here, makes any double divided by 0.0 +inf (0/0 and -1/0 too).
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.equal(b, 0.0), np.inf, np.divide(a, b))


_CEL_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "addition_add": np.add,
    "addition_sub": np.subtract,
    "multiplication_mul": np.multiply,
    "multiplication_div": _cel_divide,
}
_CEL_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


def _construct_name(tree: lark.Tree[Any]) -> str:
    kid = next((c for c in tree.children if isinstance(c, lark.Tree)), None)
    if tree.data in ("member", "primary") and kid is not None:
        return _construct_name(kid)
    return str(tree.data)


@dataclass(frozen=True, slots=True)
class _CelProgram:
    source: str
    idents: tuple[str, ...]
    runner: celpy.Runner
    vector: Callable[[FactTable], Any]


def _compile_cel(source: str) -> _CelProgram:
    env = _cel_env()
    try:
        ast = env.compile(source)
    except CELParseError as e:
        raise _CelError(f"syntax error at line {e.line}, column {e.column}") from None
    compiler = _CelCompiler()
    expr = compiler.compile(ast)
    if expr.type != "bool":
        raise _CelError(f"the expression must be a bool, not a {expr.type}")
    if not compiler.idents:
        raise _CelError("the expression reads no fact")
    return _CelProgram(source, tuple(sorted(compiler.idents)), env.program(ast), expr.fn)


def _to_cel(v: Value) -> celtypes.Value:
    if isinstance(v, bool):
        return celtypes.BoolType(v)
    if isinstance(v, float):
        return celtypes.DoubleType(v)
    if isinstance(v, str):
        return celtypes.StringType(v)
    return celtypes.ListType([celtypes.StringType(s) for s in sorted(v)])


# --------------------------------------------------------------------------------------------
# Compiled nodes
# --------------------------------------------------------------------------------------------

_INF = math.inf
# Per node, for bulk evaluation: (definitely passes, definitely fails, cost to reach pass).
_Vec: TypeAlias = tuple[BoolArray, BoolArray, npt.NDArray[np.float32]]


@dataclass(slots=True)
class _Detail:
    """Per-criterion columns collected during bulk evaluation when asked for."""

    results: dict[str, npt.NDArray[np.int8]] = field(default_factory=dict)
    gaps: dict[str, FloatArray] = field(default_factory=dict)


def _cost_vec(p: BoolArray, f: BoolArray, fail_cost: float) -> npt.NDArray[np.float32]:
    return np.where(p, np.float32(0.0), np.where(f, np.float32(fail_cost), np.float32(_INF)))


def _record(detail: _Detail | None, node_id: str, p: BoolArray, f: BoolArray) -> None:
    if detail is not None:
        detail.results[node_id] = p.astype(np.int8) - (~p & ~f).astype(np.int8)


class _Node(ABC):
    id: str
    facts: frozenset[str]

    @abstractmethod
    def scalar(self, facts: Mapping[str, Value]) -> tuple[NodeOutcome, float, list[str]]:
        """Outcome, cost to reach pass (see `near`), and the failing ids on that cheapest way."""

    @abstractmethod
    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        """Definitely-pass and definitely-fail masks and the cost column for every row."""


class _Leaf(_Node):
    """Common outcome building of a criterion; subclasses supply value, test and gap."""

    def __init__(self, c: Criterion, unit: str, closeable: bool, facts: Iterable[str]) -> None:
        self.c = c
        self.id = c.id
        self.unit = unit
        self.closeable = closeable
        self.facts = frozenset(facts)
        self.fail_cost = 1.0 if closeable else _INF

    @abstractmethod
    def test(
        self, facts: Mapping[str, Value]
    ) -> tuple[bool | None, Actual, Threshold, float | None]:
        """(passes, or None when unknown), actual, resolved threshold, gap."""

    def scalar(self, facts: Mapping[str, Value]) -> tuple[NodeOutcome, float, list[str]]:
        ok, actual, threshold, gap = self.test(facts)
        result: Result = "unknown" if ok is None else "pass" if ok else "fail"
        out = CriterionOutcome(
            id=self.c.id,
            label_zh=self.c.label_zh,
            result=result,
            fact=self.c.fact,
            op=self.c.op,
            actual=actual,
            threshold=threshold,
            gap=gap,
            unit=self.unit,
            closeable=self.closeable,
            clause=self.c.clause,
            missing=sorted(f for f in self.facts if f not in facts) if ok is None else [],
        )
        cost = 0.0 if ok else self.fail_cost if ok is False else _INF
        return out, cost, [self.id] if ok is False else []


def _number(facts: Mapping[str, Value], fact: str, per: str | None) -> float | None:
    """A number fact, or its percentage of `per`; None when missing or over zero."""
    v = facts.get(fact)
    if not isinstance(v, float) or per is None:
        return v if isinstance(v, float) else None
    d = facts.get(per)
    # Multiplying first keeps an exact share exact: 29 * 100 / 100 == 29, 29 / 100 * 100 not.
    return v * 100.0 / d if isinstance(d, float) and d != 0.0 else None


def _number_column(table: FactTable, fact: str, per: str | None) -> FloatArray:
    v: FloatArray = table.column(fact)
    if per is None:
        return v
    d: FloatArray = table.column(per)
    return np.where(d != 0.0, v * 100.0 / d, np.nan)


class _NumberLeaf(_Leaf):
    def __init__(
        self,
        c: Criterion,
        threshold: NumThreshold | None,
        bands: list[tuple[float | None, bool, float]],
        integer: bool,
    ) -> None:
        assert c.fact is not None
        spec = FACTS[c.fact]
        # Waiting never lowers an age: an upper limit on it cannot be worked towards.
        closeable = (
            c.closeable
            and c.op in (">=", ">", "<=", "<", "==", "between")
            and not (spec.grows_only and c.op in ("<=", "<", "between", "=="))
        )
        unit = c.unit if c.unit is not None else "%" if c.per else spec.unit
        inputs = [c.fact, *([c.per] if c.per else []), *([c.banded.by] if c.banded else [])]
        super().__init__(c, unit, closeable, inputs)
        self.fact = c.fact
        self.per = c.per
        self.by = c.banded.by if c.banded else None
        self.threshold = threshold
        self.bands = bands
        self.integer = integer and not c.per

    def _band(self, by: float) -> float:
        for upper, inclusive, t in self.bands:
            if upper is None or by < upper or (inclusive and by == upper):
                return t
        raise AssertionError("the last band is open")  # pragma: no cover - validated

    def test(
        self, facts: Mapping[str, Value]
    ) -> tuple[bool | None, Actual, Threshold, float | None]:
        v = _number(facts, self.fact, self.per)
        t: NumThreshold | None = self.threshold
        if self.by is not None:
            by = facts.get(self.by)
            t = self._band(by) if isinstance(by, float) else None
        shown: Threshold = list(t) if isinstance(t, tuple) else t
        if v is None or t is None:
            return None, v, shown, None
        ok = bool(_compare(self.c.op, v, t))
        gap = None if ok else _gap(self.c.op, v, t, self.integer)
        return ok, v, shown, None if gap is None else float(gap)

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        v = _number_column(table, self.fact, self.per)
        known = ~np.isnan(v)
        t: Any = self.threshold
        if self.by is not None:
            by: FloatArray = table.column(self.by)
            t = np.full(table.n, np.nan)
            for upper, inclusive, bt in reversed(self.bands):
                # Later (higher) bands are written first, so lower bands overwrite them.
                sel = ~np.isnan(by) if upper is None else by <= upper if inclusive else by < upper
                t[sel] = bt
            known &= ~np.isnan(t)
        ok: BoolArray = _compare(self.c.op, v, t)
        p = known & ok
        f = known & ~ok
        _record(detail, self.id, p, f)
        if detail is not None:
            gap = _gap(self.c.op, v, t, self.integer)
            if gap is not None:
                detail.gaps[self.id] = np.where(f, gap, np.nan)
        return p, f, _cost_vec(p, f, self.fail_cost)


class _BoolLeaf(_Leaf):
    def __init__(self, c: Criterion) -> None:
        assert c.fact is not None
        super().__init__(c, c.unit or "", False, [c.fact])
        self.fact = c.fact
        want = {"is_true": True, "is_false": False}.get(c.op)
        self.want = want if want is not None else bool(c.threshold) == (c.op == "==")

    def test(
        self, facts: Mapping[str, Value]
    ) -> tuple[bool | None, Actual, Threshold, float | None]:
        v = facts.get(self.fact)
        if not isinstance(v, bool):
            return None, None, self.c.threshold, None
        return v == self.want, v, self.c.threshold, None

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        col: FloatArray = table.column(self.fact)
        p = col == (1.0 if self.want else 0.0)
        f = col == (0.0 if self.want else 1.0)
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


class _EnumLeaf(_Leaf):
    def __init__(self, c: Criterion) -> None:
        assert c.fact is not None
        super().__init__(c, c.unit or "", False, [c.fact])
        self.fact = c.fact
        self.values = frozenset(_words(c.threshold))
        self.positive = c.op in ("==", "in")
        vocab = FACTS[c.fact].values
        self.codes = np.array([float(vocab.index(v)) for v in sorted(self.values)])

    def test(
        self, facts: Mapping[str, Value]
    ) -> tuple[bool | None, Actual, Threshold, float | None]:
        v = facts.get(self.fact)
        if not isinstance(v, str):
            return None, None, self.c.threshold, None
        return (v in self.values) == self.positive, v, self.c.threshold, None

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        col: FloatArray = table.column(self.fact)
        known = ~np.isnan(col)
        hit = np.isin(col, self.codes)
        ok = hit if self.positive else ~hit
        p, f = known & ok, known & ~ok
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


def _words(t: Threshold) -> list[str]:
    return [str(v) for v in t] if isinstance(t, list) else [str(t)]


class _TagsLeaf(_Leaf):
    """`contains`: holds at least one listed tag; `not_contains`: holds none of them."""

    def __init__(self, c: Criterion) -> None:
        assert c.fact is not None
        # Holding a title, or being off a blacklist, is never "a gap away".
        super().__init__(c, c.unit or "", False, [c.fact])
        self.fact = c.fact
        self.tags = frozenset(_words(c.threshold))
        vocab = FACTS[c.fact].values
        self.mask = sum(1 << vocab.index(t) for t in self.tags)
        self.positive = c.op == "contains"

    def test(
        self, facts: Mapping[str, Value]
    ) -> tuple[bool | None, Actual, Threshold, float | None]:
        v = facts.get(self.fact)
        if not isinstance(v, frozenset):
            return None, None, self.c.threshold, None
        return bool(v & self.tags) == self.positive, sorted(v), self.c.threshold, None

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        col: IntArray = table.column(self.fact)
        known = col != _MISSING_TAGS
        hit = (col & self.mask) != 0
        ok = hit if self.positive else ~hit
        p, f = known & ok, known & ~ok
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


class _CelLeaf(_Leaf):
    def __init__(self, c: Criterion, program: _CelProgram) -> None:
        super().__init__(c, c.unit or "", False, program.idents)
        self.program = program

    def test(
        self, facts: Mapping[str, Value]
    ) -> tuple[bool | None, Actual, Threshold, float | None]:
        inputs = {k: facts[k] for k in self.program.idents if k in facts}
        shown: dict[str, float | bool | str | list[str]] = {
            k: sorted(v) if isinstance(v, frozenset) else v for k, v in inputs.items()
        }
        if len(inputs) < len(self.program.idents):
            return None, shown, self.program.source, None
        try:
            value = self.program.runner.evaluate({k: _to_cel(v) for k, v in inputs.items()})
        except CELEvalError:
            # The typed subset leaves no runtime error on complete data; should one appear,
            # it is not evidence against the firm.
            return None, shown, self.program.source, None
        return bool(value), shown, self.program.source, None

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        known = np.ones(table.n, dtype=np.bool_)
        for ident in self.program.idents:
            col = table.column(ident)
            known &= (col != _MISSING_TAGS) if FACTS[ident].type == "tags" else ~np.isnan(col)
        ok = np.broadcast_to(np.asarray(self.program.vector(table), dtype=np.bool_), known.shape)
        p, f = known & ok, known & ~ok
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


@dataclass(frozen=True, slots=True)
class _Scale:
    fact: str
    per: str | None
    mins: tuple[float, ...]
    points: tuple[float, ...]

    def value(self, facts: Mapping[str, Value]) -> float | None:
        return _number(facts, self.fact, self.per)

    def score(self, v: float) -> float:
        i = bisect.bisect_right(self.mins, v + _tol(v)) - 1
        return self.points[i] if i >= 0 else 0.0

    def value_vec(self, table: FactTable) -> FloatArray:
        return _number_column(table, self.fact, self.per)

    def score_vec(self, v: FloatArray) -> FloatArray:
        """Points, NaN where the value is missing."""
        tol = _REL_TOL * np.maximum(1.0, np.abs(v))
        i = np.searchsorted(np.asarray(self.mins), v + tol, side="right") - 1
        pts = np.concatenate(([0.0], np.asarray(self.points)))[i + 1]
        return np.where(np.isnan(v), np.nan, pts)


@dataclass(frozen=True, slots=True)
class _Item:
    item: PointsItem
    scales: tuple[_Scale, ...]
    max_points: float


class _Points(_Node):
    def __init__(self, g: PointsGroup, items: list[_Item]) -> None:
        self.g = g
        self.id = g.id
        self.items = items
        self.facts = frozenset(
            f for i in items for s in i.scales for f in (s.fact, *([s.per] if s.per else []))
        )

    def scalar(self, facts: Mapping[str, Value]) -> tuple[NodeOutcome, float, list[str]]:
        total = possible = 0.0
        zero_required: list[str] = []
        unsure_required = False
        outs: list[PointsItemOutcome] = []
        for it in self.items:
            best: tuple[float, str, float] | None = None
            ceiling = 0.0
            complete = True
            for s in it.scales:
                v = s.value(facts)
                if v is None:
                    complete = False
                    ceiling = max(ceiling, max(s.points))
                    continue
                pts = s.score(v)
                ceiling = max(ceiling, pts)
                if best is None or pts > best[0]:
                    best = (pts, s.fact, v)
            low = best[0] if best else 0.0
            total += low
            possible += ceiling
            if it.item.required_nonzero:
                if ceiling == 0.0:
                    zero_required.append(it.item.id)
                elif low == 0.0:
                    unsure_required = True
            outs.append(
                PointsItemOutcome(
                    id=it.item.id,
                    label_zh=it.item.label_zh,
                    points=best[0] if best else None,
                    max_points=it.max_points,
                    basis=best[1] if best else None,
                    actual=round(best[2], 9) if best else None,
                    complete=complete,
                    clause=it.item.clause,
                )
            )
        pass_at = self.g.pass_at
        result: Result
        if zero_required or possible < pass_at - _tol(pass_at):
            result = "fail"
        elif total >= pass_at - _tol(pass_at) and not unsure_required:
            result = "pass"
        else:
            result = "unknown"
        out = PointsOutcome(
            id=self.g.id,
            label_zh=self.g.label_zh,
            result=result,
            total=total,
            total_possible=possible,
            pass_at=pass_at,
            gap=round(max(pass_at - total, 0.0), 9) if result == "fail" else None,
            zero_required=zero_required,
            items=outs,
            clause=self.g.clause,
            missing=sorted(f for f in self.facts if f not in facts) if result == "unknown" else [],
        )
        cost = 0.0 if result == "pass" else 1.0 if result == "fail" else _INF
        return out, cost, [self.id] if result == "fail" else []

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        n = table.n
        total = np.zeros(n)
        possible = np.zeros(n)
        zero_required = np.zeros(n, dtype=np.bool_)
        unsure_required = np.zeros(n, dtype=np.bool_)
        for it in self.items:
            low = np.zeros(n)
            ceiling = np.zeros(n)
            for s in it.scales:
                pts = s.score_vec(s.value_vec(table))
                missing = np.isnan(pts)
                low = np.maximum(low, np.where(missing, 0.0, pts))
                ceiling = np.maximum(ceiling, np.where(missing, max(s.points), pts))
            total += low
            possible += ceiling
            if it.item.required_nonzero:
                zero_required |= ceiling == 0.0
                unsure_required |= (ceiling > 0.0) & (low == 0.0)
        pass_at = self.g.pass_at
        f = zero_required | (possible < pass_at - _tol(pass_at))
        p = ~f & (total >= pass_at - _tol(pass_at)) & ~unsure_required
        _record(detail, self.id, p, f)
        if detail is not None:
            detail.gaps[self.id] = np.where(f, np.maximum(pass_at - total, 0.0), np.nan)
        return p, f, _cost_vec(p, f, 1.0)


class _Group(_Node):
    def __init__(self, g: Group, children: list[_Node]) -> None:
        self.g = g
        self.id = g.id
        self.children = children
        self.facts = frozenset(f for c in children for f in c.facts)

    def scalar(self, facts: Mapping[str, Value]) -> tuple[NodeOutcome, float, list[str]]:
        outs: list[NodeOutcome] = []
        costs: list[float] = []
        blocks: list[list[str]] = []
        for child in self.children:
            o, c, b = child.scalar(facts)
            outs.append(o)
            costs.append(c)
            blocks.append(b)
        results = [o.result for o in outs]
        if self.g.kind == "all":
            result: Result = (
                "fail" if "fail" in results else "unknown" if "unknown" in results else "pass"
            )
            cost = sum(costs)
            blocking = [x for b in blocks for x in b] if cost < _INF else []
        else:
            result = "pass" if "pass" in results else "unknown" if "unknown" in results else "fail"
            cost = min(costs)
            blocking = blocks[costs.index(cost)] if cost < _INF else []
        out = GroupOutcome(
            kind=self.g.kind,
            id=self.g.id,
            label_zh=self.g.label_zh,
            result=result,
            items=outs,
            clause=self.g.clause,
        )
        return out, cost, blocking

    def vector(self, table: FactTable, detail: _Detail | None) -> _Vec:
        p, f, cost = self.children[0].vector(table, detail)
        p, f, cost = p.copy(), f.copy(), cost.copy()
        for child in self.children[1:]:
            cp, cf, cc = child.vector(table, detail)
            if self.g.kind == "all":
                p &= cp
                f |= cf
                cost += cc
            else:
                p |= cp
                f &= cf
                np.minimum(cost, cc, out=cost)
        _record(detail, self.id, p, f)
        return p, f, cost


# --------------------------------------------------------------------------------------------
# Validation and compilation
# --------------------------------------------------------------------------------------------


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class _Compiler:
    """Walks a rule once: collects every problem, and builds the compiled tree if none."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.ids: set[str] = set()

    def problem(self, code: ProblemCode, path: str, msg: str, cid: str | None = None) -> None:
        self.problems.append(Problem(code=code, path=path, message=msg, criterion_id=cid))

    def check_id(self, node_id: str, path: str) -> None:
        if node_id in self.ids:
            self.problem("duplicate_id", path, f"id {node_id!r} is used twice", node_id)
        self.ids.add(node_id)

    def node(self, node: Criterion | Group | PointsGroup, path: str) -> _Node | None:
        self.check_id(node.id, path)
        if isinstance(node, Criterion):
            return self.criterion(node, path)
        if isinstance(node, PointsGroup):
            return self.points(node, path)
        if not node.items:
            self.problem("empty_group", path, f"group {node.id!r} has no items", node.id)
            return None
        children = [self.node(child, f"{path}.items[{i}]") for i, child in enumerate(node.items)]
        if any(c is None for c in children):
            return None
        return _Group(node, [c for c in children if c is not None])

    def number_fact(self, code: str | None, path: str, cid: str, role: str) -> FactSpec | None:
        spec = FACTS.get(code or "")
        if spec is None:
            self.problem("unknown_fact", path, f"unknown {role} {code!r}", cid)
            return None
        if spec.type != "number":
            self.problem("op_not_allowed", path, f"{role} {code!r} is not a number", cid)
            return None
        return spec

    def criterion(self, c: Criterion, path: str) -> _Node | None:
        before = len(self.problems)
        if c.op == "cel":
            return self.cel(c, path)
        if c.expr is not None:
            self.problem("bad_threshold", path, "`expr` is only for op 'cel'", c.id)
        if c.op not in OPS:  # pragma: no cover - the model already restricts op
            self.problem("unknown_op", path, f"unknown op {c.op!r}", c.id)
            return None
        spec = FACTS.get(c.fact or "")
        if spec is None:
            self.problem("unknown_fact", path, f"unknown fact {c.fact!r}", c.id)
            return None
        if c.op not in OPS_BY_TYPE[spec.type]:
            allowed = ", ".join(sorted(OPS_BY_TYPE[spec.type]))
            self.problem(
                "op_not_allowed",
                path,
                f"op {c.op!r} does not apply to {spec.type} fact {spec.code!r} ({allowed})",
                c.id,
            )
            return None
        if c.per is not None:
            if spec.type != "number":
                self.problem("op_not_allowed", path, "`per` needs a number fact", c.id)
            else:
                self.number_fact(c.per, path, c.id, "per fact")
        if spec.type == "number":
            return self.number(c, spec, path, before)
        if c.banded is not None:
            self.problem("bad_band", path, "banded thresholds are for number facts", c.id)
        if spec.type == "bool":
            if c.op in ("is_true", "is_false"):
                if c.threshold is not None:
                    self.problem("bad_threshold", path, f"{c.op} takes no threshold", c.id)
            elif not isinstance(c.threshold, bool):
                self.problem("bad_threshold", path, "threshold must be true or false", c.id)
            return _BoolLeaf(c) if len(self.problems) == before else None
        if not self.words(c, spec, path):
            return None
        leaf: _Leaf = _EnumLeaf(c) if spec.type == "enum" else _TagsLeaf(c)
        return leaf if len(self.problems) == before else None

    def words(self, c: Criterion, spec: FactSpec, path: str) -> bool:
        t = c.threshold
        values: list[Scalar]
        if c.op in ("==", "!="):
            if not isinstance(t, str):
                self.problem("bad_threshold", path, f"{c.op} on {spec.code} needs one value", c.id)
                return False
            values = [t]
        elif spec.type == "tags" and isinstance(t, str):
            values = [t]
        elif isinstance(t, list) and t and all(isinstance(v, str) for v in t):
            values = t
        else:
            self.problem(
                "bad_threshold", path, f"{c.op} on {spec.code} needs a non-empty list", c.id
            )
            return False
        bad = [v for v in values if v not in spec.values]
        if bad:
            self.problem(
                "bad_threshold",
                path,
                f"{bad} not among {spec.code} values ({', '.join(spec.values)})",
                c.id,
            )
            return False
        return True

    def number_threshold(
        self, c: Criterion, spec: FactSpec, t: Threshold, path: str
    ) -> NumThreshold | None:
        """The threshold as numbers, or None after reporting why it is unusable."""
        op = c.op
        lo, hi = (None, None) if c.per else (spec.minimum, spec.maximum)

        def in_range(x: float) -> bool:
            return (lo is None or x >= lo) and (hi is None or x <= hi)

        if op == "between":
            ok = isinstance(t, list) and len(t) == 2 and all(_is_number(x) for x in t)
            if not ok:
                self.problem("bad_threshold", path, "between needs [low, high] numbers", c.id)
                return None
            assert isinstance(t, list)
            if float(t[0]) > float(t[1]):
                self.problem("bad_threshold", path, "between: low is above high", c.id)
                return None
            values = [float(x) for x in t]
        elif op in ("in", "not_in"):
            if not isinstance(t, list) or not t or not all(_is_number(x) for x in t):
                self.problem("bad_threshold", path, f"{op} needs a non-empty number list", c.id)
                return None
            values = [float(x) for x in t]
        else:
            if not _is_number(t):
                self.problem(
                    "bad_threshold",
                    path,
                    f"{op} on {spec.code} needs a number threshold, got {t!r}",
                    c.id,
                )
                return None
            assert isinstance(t, int | float)
            values = [float(t)]
        out = [x for x in values if not in_range(x) or math.isnan(x) or math.isinf(x)]
        if out:
            self.problem(
                "bad_threshold",
                path,
                f"threshold {out} outside the range of {spec.code} ({lo}..{hi} {spec.unit})",
                c.id,
            )
            return None
        whole = spec.integer and not c.per
        if whole and op in ("==", "!=", "in", "not_in") and any(x != int(x) for x in values):
            self.problem("bad_threshold", path, f"{spec.code} is a count: use whole numbers", c.id)
            return None
        if whole and op == "between" and math.ceil(values[0]) > math.floor(values[1]):
            self.problem("bad_threshold", path, f"no whole {spec.code} lies in {values}", c.id)
            return None
        return tuple(values) if op in ("between", "in", "not_in") else values[0]

    def number(self, c: Criterion, spec: FactSpec, path: str, before: int) -> _Node | None:
        bands: list[tuple[float | None, bool, float]] = []
        static: NumThreshold | None = None
        if c.banded is not None:
            if c.threshold is not None:
                self.problem("bad_threshold", path, "give a threshold or bands, not both", c.id)
            if c.op not in _ORDER_OPS:
                self.problem("bad_band", path, "banded thresholds take >=, >, <= or <", c.id)
            self.number_fact(c.banded.by, path + ".banded.by", c.id, "band fact")
            bands = self.bands(c, spec, path)
        else:
            static = self.number_threshold(c, spec, c.threshold, path)
        if len(self.problems) != before:
            return None
        return _NumberLeaf(c, static, bands, spec.integer)

    def bands(
        self, c: Criterion, spec: FactSpec, path: str
    ) -> list[tuple[float | None, bool, float]]:
        assert c.banded is not None
        out: list[tuple[float | None, bool, float]] = []
        bands = c.banded.bands
        if not bands:
            self.problem("bad_band", path + ".banded", "no bands", c.id)
            return out
        for i, band in enumerate(bands):
            bpath = f"{path}.banded.bands[{i}]"
            last = i == len(bands) - 1
            if (band.upper is None) != last:
                self.problem(
                    "bad_band", bpath, "only the last band, and always it, is open-ended", c.id
                )
            if i and band.upper is not None and bands[i - 1].upper is not None:
                prev = bands[i - 1].upper
                assert prev is not None
                if band.upper <= prev:
                    self.problem("bad_band", bpath, "band upper bounds must ascend", c.id)
            t = self.number_threshold(c, spec, band.threshold, bpath)
            if isinstance(t, float):
                out.append((band.upper, band.upper_inclusive, t))
        return out

    def cel(self, c: Criterion, path: str) -> _Node | None:
        extra = [
            name
            for name, v in (
                ("fact", c.fact),
                ("per", c.per),
                ("threshold", c.threshold),
                ("banded", c.banded),
            )
            if v is not None
        ]
        if extra:
            self.problem("bad_cel", path, f"a cel criterion takes no {', '.join(extra)}", c.id)
        if not c.expr or not c.expr.strip():
            self.problem("bad_cel", path, "a cel criterion needs `expr`", c.id)
            return None
        try:
            program = _compile_cel(c.expr)
        except _CelError as e:
            self.problem("bad_cel", path + ".expr", str(e), c.id)
            return None
        return None if extra else _CelLeaf(c, program)

    def points(self, g: PointsGroup, path: str) -> _Node | None:
        before = len(self.problems)
        if not g.items:
            self.problem("empty_group", path, f"points group {g.id!r} has no items", g.id)
            return None
        items: list[_Item] = []
        for i, item in enumerate(g.items):
            ipath = f"{path}.items[{i}]"
            self.check_id(item.id, ipath)
            if not item.scales:
                self.problem("bad_points", ipath, "an item needs at least one scale", item.id)
                continue
            scales: list[_Scale] = []
            for j, s in enumerate(item.scales):
                spath = f"{ipath}.scales[{j}]"
                self.number_fact(s.fact, spath, item.id, "fact")
                if s.per is not None:
                    self.number_fact(s.per, spath, item.id, "per fact")
                mins = [b.min for b in s.bands]
                if not s.bands or any(lo >= hi for lo, hi in itertools.pairwise(mins)):
                    self.problem(
                        "bad_points", spath, "bands must be non-empty, mins ascending", item.id
                    )
                if any(b.points < 0 or not math.isfinite(b.points) for b in s.bands):
                    self.problem("bad_points", spath, "points must be >= 0", item.id)
                scales.append(
                    _Scale(
                        s.fact,
                        s.per,
                        tuple(b.min for b in s.bands),
                        tuple(b.points for b in s.bands),
                    )
                )
            top = max((max(s.points, default=0.0) for s in scales), default=0.0)
            items.append(_Item(item, tuple(scales), top))
        possible = sum(i.max_points for i in items)
        if len(self.problems) == before and not 0 < g.pass_at <= possible:
            self.problem(
                "bad_points", path, f"pass_at must be in (0, {possible}], the points on offer", g.id
            )
        return _Points(g, items) if len(self.problems) == before else None


def _schema_problems(e: ValidationError) -> list[Problem]:
    tags = {"criterion", "group", "points"}
    out: list[Problem] = []
    for err in e.errors():
        parts: list[str] = []
        loc = list(err["loc"])
        for i, part in enumerate(loc):
            after_node = i > 0 and (loc[i - 1] == "root" or isinstance(loc[i - 1], int))
            if isinstance(part, str) and part in tags and after_node:
                continue
            parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        path = "".join(parts).lstrip(".")
        code: ProblemCode = "schema"
        if err["type"] == "literal_error" and loc and loc[-1] == "op":
            code = "unknown_op"
        out.append(Problem(code=code, path=path, message=err["msg"]))
    return out


def _parse(rule: Rule | Mapping[str, Any] | str | bytes) -> Rule | list[Problem]:
    if isinstance(rule, Rule):
        return rule
    try:
        if isinstance(rule, str | bytes):
            return Rule.model_validate_json(rule)
        return Rule.model_validate(rule)
    except ValidationError as e:
        return _schema_problems(e)


def validate_rule(rule: Rule | Mapping[str, Any] | str | bytes) -> list[Problem]:
    """Every problem that keeps the rule from being published; empty when it is sound.

    Accepts the model, its dict form or its JSON, so a stored or submitted rule is checked
    before anything is built from it.
    """
    parsed = _parse(rule)
    if isinstance(parsed, list):
        return parsed
    compiler = _Compiler()
    compiler.node(parsed.root, "root")
    return compiler.problems


@dataclass(frozen=True, slots=True)
class TableOutcome:
    """Bulk result of one rule: `status` holds indices into `STATUSES` (0 eligible, 1 near,
    2 ineligible, 3 unknown). With `detail`, per node id: `results` (1 pass, 0 fail,
    -1 unknown) and `gaps` (NaN where none)."""

    rule_id: str
    status: npt.NDArray[np.int8]
    results: Mapping[str, npt.NDArray[np.int8]] = field(default_factory=dict)
    gaps: Mapping[str, FloatArray] = field(default_factory=dict)

    def mask(self, status: Status) -> BoolArray:
        mask: BoolArray = self.status == STATUSES.index(status)
        return mask

    def counts(self) -> dict[Status, int]:
        bins = np.bincount(self.status, minlength=len(STATUSES))
        return {s: int(bins[i]) for i, s in enumerate(STATUSES)}


class CompiledRule:
    """A validated rule, ready to evaluate many times."""

    __slots__ = ("_root", "facts", "id", "rule")

    def __init__(self, rule: Rule, root: _Node) -> None:
        self.rule = rule
        self.id = rule.id
        self._root = root
        self.facts: frozenset[str] = root.facts

    def evaluate(
        self, facts: Mapping[str, object], *, near_max: int = NEAR_MAX_DEFAULT
    ) -> RuleOutcome:
        """Detailed outcome for one enterprise. Raises FactError on a mistyped fact."""
        return self.evaluate_typed(coerce_facts(facts, self.facts), near_max=near_max)

    def evaluate_typed(
        self, typed: Mapping[str, Value], *, near_max: int = NEAR_MAX_DEFAULT
    ) -> RuleOutcome:
        """As `evaluate`, on facts already passed through `coerce_facts`."""
        root, cost, blocking = self._root.scalar(typed)
        result = root.result
        status: Status
        if result == "pass":
            status = "eligible"
        elif result == "unknown":
            status = "unknown"
        else:
            status = "near" if cost <= near_max else "ineligible"
        missing = {m for o in _outcome_nodes(root) if o.result == "unknown" for m in o.missing}
        return RuleOutcome(
            rule_id=self.id,
            status=status,
            result=result,
            blocking=blocking if status == "near" else [],
            missing_facts=sorted(missing),
            root=root,
        )

    def evaluate_table(
        self, table: FactTable, *, near_max: int = NEAR_MAX_DEFAULT, detail: bool = False
    ) -> TableOutcome:
        """Status of every row; with `detail`, per-criterion results and gaps as well."""
        d = _Detail() if detail else None
        # NaN marks missing data and x/0 is inf on purpose (as in the scalar path).
        with np.errstate(all="ignore"):
            p, f, cost = self._root.vector(table, d)
        status = np.full(table.n, 3, dtype=np.int8)
        status[f] = 2
        status[f & (cost <= near_max)] = 1
        status[p] = 0
        if d is None:
            return TableOutcome(self.id, status)
        return TableOutcome(self.id, status, d.results, d.gaps)


def _outcome_nodes(node: NodeOutcome) -> Iterable[CriterionOutcome | PointsOutcome]:
    if isinstance(node, GroupOutcome):
        for item in node.items:
            yield from _outcome_nodes(item)
    else:
        yield node


def compile_rule(rule: Rule | Mapping[str, Any] | str | bytes) -> CompiledRule:
    """Build the evaluator; raises InvalidRuleError listing every problem."""
    parsed = _parse(rule)
    if isinstance(parsed, list):
        raise InvalidRuleError(parsed)
    compiler = _Compiler()
    root = compiler.node(parsed.root, "root")
    if compiler.problems or root is None:
        raise InvalidRuleError(compiler.problems)
    return CompiledRule(parsed, root)


@lru_cache(maxsize=512)
def _compiled_from_json(rule_json: str) -> CompiledRule:
    return compile_rule(rule_json)


def evaluate(
    rule: Rule, facts: Mapping[str, object], *, near_max: int = NEAR_MAX_DEFAULT
) -> RuleOutcome:
    """Evaluate one rule for one enterprise (compiled rules are cached by content)."""
    return _compiled_from_json(rule.model_dump_json()).evaluate(facts, near_max=near_max)


def evaluate_rules(
    rules: Sequence[CompiledRule],
    facts: Mapping[str, object],
    *,
    near_max: int = NEAR_MAX_DEFAULT,
) -> list[RuleOutcome]:
    """Detailed outcomes of many rules for one enterprise, coercing its facts once."""
    typed = coerce_facts(facts)
    return [r.evaluate_typed(typed, near_max=near_max) for r in rules]


def match_table(
    rules: Sequence[CompiledRule],
    table: FactTable,
    *,
    near_max: int = NEAR_MAX_DEFAULT,
    workers: int = 1,
    chunk_rows: int = 250_000,
) -> dict[str, npt.NDArray[np.int8]]:
    """Status column per rule id for every row of `table` (see `STATUSES`).

    Rows go in chunks so a million rows do not allocate 8 MB per intermediate column.
    `workers > 1` runs chunks on threads (numpy releases the GIL), but the work is memory-bound:
    on the shared 2-core benchmark machine it gained nothing measurable.
    """
    bounds = [(s, min(s + chunk_rows, table.n)) for s in range(0, max(table.n, 1), chunk_rows)]

    def run(span: tuple[int, int]) -> dict[str, npt.NDArray[np.int8]]:
        part = table if span == (0, table.n) else table.slice(*span)
        return {r.id: r.evaluate_table(part, near_max=near_max).status for r in rules}

    if workers > 1 and len(bounds) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, bounds))
    else:
        parts = [run(b) for b in bounds]
    if len(parts) == 1:
        return parts[0]
    return {r.id: np.concatenate([p[r.id] for p in parts]) for r in rules}
