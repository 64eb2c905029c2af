"""Validation and compilation: one walk over a rule collects every problem and, when there
is none, builds the compiled tree."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from services.policy.criteria.cel import CelError, compile_cel
from services.policy.criteria.compare import NumThreshold
from services.policy.criteria.facts import FACTS, FactSpec
from services.policy.criteria.nodes import (
    BoolLeaf,
    CelLeaf,
    CompiledItem,
    CompiledNode,
    CompiledScale,
    EnumLeaf,
    GroupNode,
    Leaf,
    NumberLeaf,
    PointsNode,
    TagsLeaf,
)
from services.policy.criteria.rules import (
    OPS,
    OPS_BY_TYPE,
    ORDER_OPS,
    Criterion,
    Group,
    PointsGroup,
    Problem,
    ProblemCode,
    Rule,
    Scalar,
    Threshold,
)


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


class RuleCompiler:
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

    def node(self, node: Criterion | Group | PointsGroup, path: str) -> CompiledNode | None:
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
        return GroupNode(node, [c for c in children if c is not None])

    def number_fact(self, code: str | None, path: str, cid: str, role: str) -> FactSpec | None:
        spec = FACTS.get(code or "")
        if spec is None:
            self.problem("unknown_fact", path, f"unknown {role} {code!r}", cid)
            return None
        if spec.type != "number":
            self.problem("op_not_allowed", path, f"{role} {code!r} is not a number", cid)
            return None
        return spec

    def criterion(self, c: Criterion, path: str) -> CompiledNode | None:
        before = len(self.problems)
        if c.op == "cel":
            return self.cel(c, path)
        if c.expr is not None:
            self.problem("bad_threshold", path, "`expr` is only for op 'cel'", c.id)
        spec = self.operand(c, path)
        if spec is None:
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
            self.bool_threshold(c, path)
            return BoolLeaf(c) if len(self.problems) == before else None
        if not self.words(c, spec, path):
            return None
        leaf: Leaf = EnumLeaf(c) if spec.type == "enum" else TagsLeaf(c)
        return leaf if len(self.problems) == before else None

    def operand(self, c: Criterion, path: str) -> FactSpec | None:
        """The fact a criterion reads, or None after reporting that it is unknown or does not
        take the criterion's op."""
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
        return spec

    def bool_threshold(self, c: Criterion, path: str) -> None:
        if c.op in ("is_true", "is_false"):
            if c.threshold is not None:
                self.problem("bad_threshold", path, f"{c.op} takes no threshold", c.id)
        elif not isinstance(c.threshold, bool):
            self.problem("bad_threshold", path, "threshold must be true or false", c.id)

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

    def number(self, c: Criterion, spec: FactSpec, path: str, before: int) -> CompiledNode | None:
        bands: list[tuple[float | None, bool, float]] = []
        static: NumThreshold | None = None
        if c.banded is not None:
            if c.threshold is not None:
                self.problem("bad_threshold", path, "give a threshold or bands, not both", c.id)
            if c.op not in ORDER_OPS:
                self.problem("bad_band", path, "banded thresholds take >=, >, <= or <", c.id)
            self.number_fact(c.banded.by, path + ".banded.by", c.id, "band fact")
            bands = self.bands(c, spec, path)
        else:
            static = self.number_threshold(c, spec, c.threshold, path)
        if len(self.problems) != before:
            return None
        return NumberLeaf(c, static, bands, spec.integer)

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

    def cel(self, c: Criterion, path: str) -> CompiledNode | None:
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
            program = compile_cel(c.expr)
        except CelError as e:
            self.problem("bad_cel", path + ".expr", str(e), c.id)
            return None
        return None if extra else CelLeaf(c, program)

    def points(self, g: PointsGroup, path: str) -> CompiledNode | None:
        before = len(self.problems)
        if not g.items:
            self.problem("empty_group", path, f"points group {g.id!r} has no items", g.id)
            return None
        items: list[CompiledItem] = []
        for i, item in enumerate(g.items):
            ipath = f"{path}.items[{i}]"
            self.check_id(item.id, ipath)
            if not item.scales:
                self.problem("bad_points", ipath, "an item needs at least one scale", item.id)
                continue
            scales: list[CompiledScale] = []
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
                    CompiledScale(
                        s.fact,
                        s.per,
                        tuple(b.min for b in s.bands),
                        tuple(b.points for b in s.bands),
                    )
                )
            top = max((max(s.points, default=0.0) for s in scales), default=0.0)
            items.append(CompiledItem(item, tuple(scales), top))
        possible = sum(i.max_points for i in items)
        if len(self.problems) == before and not 0 < g.pass_at <= possible:
            self.problem(
                "bad_points", path, f"pass_at must be in (0, {possible}], the points on offer", g.id
            )
        return PointsNode(g, items) if len(self.problems) == before else None


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


def parse_rule(rule: Rule | Mapping[str, Any] | str | bytes) -> Rule | list[Problem]:
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
    parsed = parse_rule(rule)
    if isinstance(parsed, list):
        return parsed
    compiler = RuleCompiler()
    compiler.node(parsed.root, "root")
    return compiler.problems
