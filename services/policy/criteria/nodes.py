"""Compiled nodes: a criterion, group or points group evaluated for one enterprise (`scalar`)
or for columns of many (`vector`), with the cost of reaching a pass that `near` needs."""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from celpy.evaluation import CELEvalError

from services.policy.criteria.cel import CelProgram, to_cel
from services.policy.criteria.compare import REL_TOL, NumThreshold, compare, gap_to_pass, tolerance
from services.policy.criteria.facts import (
    FACTS,
    MISSING_TAGS,
    BoolArray,
    FactTable,
    FloatArray,
    IntArray,
    Value,
)
from services.policy.criteria.rules import (
    Actual,
    Criterion,
    CriterionOutcome,
    Group,
    GroupOutcome,
    NodeOutcome,
    PointsGroup,
    PointsItem,
    PointsItemOutcome,
    PointsOutcome,
    Result,
    Threshold,
)

_INF = math.inf
# Per node, for bulk evaluation: (definitely passes, definitely fails, cost to reach pass).
_Vec: TypeAlias = tuple[BoolArray, BoolArray, npt.NDArray[np.float32]]


@dataclass(slots=True)
class Detail:
    """Per-criterion columns collected during bulk evaluation when asked for (the gaps only
    when `with_gaps`: storing which criteria fail does not need them)."""

    results: dict[str, npt.NDArray[np.int8]] = field(default_factory=dict)
    gaps: dict[str, FloatArray] = field(default_factory=dict)
    with_gaps: bool = True


def _cost_vec(p: BoolArray, f: BoolArray, fail_cost: float) -> npt.NDArray[np.float32]:
    # A lookup by (passes, fails) as one small integer: the nested np.where it replaces was a
    # fifth of bulk matching at a million rows (py-spy), this is a tenth of that.
    table = np.array([_INF, fail_cost, 0.0, 0.0], dtype=np.float32)
    index = np.ascontiguousarray(f).view(np.uint8) | (np.ascontiguousarray(p).view(np.uint8) << 1)
    cost: npt.NDArray[np.float32] = table.take(index)
    return cost


def _record(detail: Detail | None, node_id: str, p: BoolArray, f: BoolArray) -> None:
    if detail is not None:
        detail.results[node_id] = p.astype(np.int8) - (~p & ~f).astype(np.int8)


class CompiledNode(ABC):
    id: str
    facts: frozenset[str]

    @abstractmethod
    def scalar(self, facts: Mapping[str, Value]) -> tuple[NodeOutcome, float, list[str]]:
        """Outcome, cost to reach pass (see `near`), and the failing ids on that cheapest way."""

    @abstractmethod
    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
        """Definitely-pass and definitely-fail masks and the cost column for every row."""


class Leaf(CompiledNode):
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


class NumberLeaf(Leaf):
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
        ok = bool(compare(self.c.op, v, t))
        gap = None if ok else gap_to_pass(self.c.op, v, t, self.integer)
        return ok, v, shown, None if gap is None else float(gap)

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
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
        ok: BoolArray = compare(self.c.op, v, t)
        p = known & ok
        f = known & ~ok
        _record(detail, self.id, p, f)
        if detail is not None and detail.with_gaps:
            gap = gap_to_pass(self.c.op, v, t, self.integer)
            if gap is not None:
                detail.gaps[self.id] = np.where(f, gap, np.nan)
        return p, f, _cost_vec(p, f, self.fail_cost)


class BoolLeaf(Leaf):
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

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
        col: FloatArray = table.column(self.fact)
        p = col == (1.0 if self.want else 0.0)
        f = col == (0.0 if self.want else 1.0)
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


class EnumLeaf(Leaf):
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

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
        col: FloatArray = table.column(self.fact)
        known = ~np.isnan(col)
        hit = np.isin(col, self.codes)
        ok = hit if self.positive else ~hit
        p, f = known & ok, known & ~ok
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


def _words(t: Threshold) -> list[str]:
    return [str(v) for v in t] if isinstance(t, list) else [str(t)]


class TagsLeaf(Leaf):
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

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
        col: IntArray = table.column(self.fact)
        known = col != MISSING_TAGS
        hit = (col & self.mask) != 0
        ok = hit if self.positive else ~hit
        p, f = known & ok, known & ~ok
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


class CelLeaf(Leaf):
    def __init__(self, c: Criterion, program: CelProgram) -> None:
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
            value = self.program.runner.evaluate({k: to_cel(v) for k, v in inputs.items()})
        except CELEvalError:
            # The typed subset leaves no runtime error on complete data; should one appear,
            # it is not evidence against the firm.
            return None, shown, self.program.source, None
        return bool(value), shown, self.program.source, None

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
        known = np.ones(table.n, dtype=np.bool_)
        for ident in self.program.idents:
            col = table.column(ident)
            known &= (col != MISSING_TAGS) if FACTS[ident].type == "tags" else ~np.isnan(col)
        ok = np.broadcast_to(np.asarray(self.program.vector(table), dtype=np.bool_), known.shape)
        p, f = known & ok, known & ~ok
        _record(detail, self.id, p, f)
        return p, f, _cost_vec(p, f, _INF)


@dataclass(frozen=True, slots=True)
class CompiledScale:
    fact: str
    per: str | None
    mins: tuple[float, ...]
    points: tuple[float, ...]

    def value(self, facts: Mapping[str, Value]) -> float | None:
        return _number(facts, self.fact, self.per)

    def score(self, v: float) -> float:
        i = bisect.bisect_right(self.mins, v + tolerance(v)) - 1
        return self.points[i] if i >= 0 else 0.0

    def value_vec(self, table: FactTable) -> FloatArray:
        return _number_column(table, self.fact, self.per)

    def score_vec(self, v: FloatArray) -> FloatArray:
        """Points, NaN where the value is missing."""
        tol = REL_TOL * np.maximum(1.0, np.abs(v))
        i = np.searchsorted(np.asarray(self.mins), v + tol, side="right") - 1
        pts = np.concatenate(([0.0], np.asarray(self.points)))[i + 1]
        return np.where(np.isnan(v), np.nan, pts)


@dataclass(frozen=True, slots=True)
class CompiledItem:
    item: PointsItem
    scales: tuple[CompiledScale, ...]
    max_points: float


class PointsNode(CompiledNode):
    def __init__(self, g: PointsGroup, items: list[CompiledItem]) -> None:
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
        if zero_required or possible < pass_at - tolerance(pass_at):
            result = "fail"
        elif total >= pass_at - tolerance(pass_at) and not unsure_required:
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

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
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
        f = zero_required | (possible < pass_at - tolerance(pass_at))
        p = ~f & (total >= pass_at - tolerance(pass_at)) & ~unsure_required
        _record(detail, self.id, p, f)
        if detail is not None and detail.with_gaps:
            detail.gaps[self.id] = np.where(f, np.maximum(pass_at - total, 0.0), np.nan)
        return p, f, _cost_vec(p, f, 1.0)


class GroupNode(CompiledNode):
    def __init__(self, g: Group, children: list[CompiledNode]) -> None:
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

    def vector(self, table: FactTable, detail: Detail | None) -> _Vec:
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
