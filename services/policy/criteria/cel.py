"""CEL: parsed and run (one enterprise) by cel-python; compiled to numpy for bulk evaluation.

Published expressions are limited to a typed subset that both paths evaluate identically
(a property test checks it): fact names, literals (int, double, string, bool), lists of
literals, parentheses, + - * / on doubles, + - * on ints, unary - and !, comparisons,
== and != on strings and bools, `in` (a list literal or a tags fact), && || and ?:, size(tags).
Number facts are doubles, as CEL does not compare int with double: write `employees >= 10.0`.
Division follows cel-python: x / 0.0 is +inf, so guard a ratio (`revenue > 0.0 && ...`) or
use a criterion with `per`, which is unknown on a zero denominator.
Flag indicators and bool attributes are bools, stage a string, tags a list of strings. An
expression whose facts are not all present is unknown, whatever its short-circuits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import celpy
import lark
import numpy as np
from celpy import celtypes
from celpy.celparser import CELParseError

from services.policy.criteria.facts import FACTS, FactTable, FactType, Value

CelType = Literal["double", "int", "bool", "string", "list_double", "list_int", "list_string"]


_CEL_LIST_OF: dict[CelType, CelType] = {
    "double": "list_double",
    "int": "list_int",
    "string": "list_string",
}


class CelError(Exception):
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
        raise CelError(f"unreadable literal {token}") from e
    py: object
    ctype: CelType
    if isinstance(value, celtypes.BoolType):
        py, ctype = bool(value), "bool"
    elif isinstance(value, celtypes.UintType):
        raise CelError(f"unsigned literal {token} is not supported")
    elif isinstance(value, celtypes.IntType):
        py, ctype = int(value), "int"
    elif isinstance(value, celtypes.DoubleType):
        py, ctype = float(value), "double"
    elif isinstance(value, celtypes.StringType):
        py, ctype = str(value), "string"
    else:
        raise CelError(f"literal {token} is not supported")
    return _CelExpr(ctype, lambda _t: py, const=True)


# Grammar levels that, with a single child, only wrap it.
_CEL_PASS_THROUGH = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
)
# Grammar levels that apply an operator to their children (when they have more than one).
_CEL_OPERATORS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary"}
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
        if data in _CEL_OPERATORS:
            return self._operator(data, kids)
        return self._operand(tree, data, kids)

    def _operator(self, data: str, kids: list[Any]) -> _CelExpr:
        """A grammar level that applies an operator to its children."""
        if data == "expr":
            return self._ternary(*(self.compile(k) for k in kids))
        if data in ("conditionalor", "conditionaland"):
            a, b = self.compile(kids[0]), self.compile(kids[1])
            return self._logic("||" if data == "conditionalor" else "&&", a, b)
        if data in ("relation", "addition", "multiplication"):
            op_tree = kids[0]
            a, b = self.compile(op_tree.children[0]), self.compile(kids[1])
            return self._binary(op_tree.data, a, b)
        # unary
        if len(kids) == 1:
            return self.compile(kids[0])
        return self._unary(kids[0].data, self.compile(kids[1]))

    def _operand(self, tree: lark.Tree[Any], data: str, kids: list[Any]) -> _CelExpr:
        """A member, primary or what they may hold: fact, literal, call, list, parentheses."""
        if data in ("member", "primary"):
            kid = kids[0]
            if isinstance(kid, lark.Tree) and kid.data in _CEL_PRIMARIES[data]:
                return self.compile(kid)
            raise CelError(f"unsupported CEL construct: {_construct_name(tree)}")
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
        raise CelError(f"unsupported CEL construct: {_construct_name(tree)}")

    def _ident(self, name: str) -> _CelExpr:
        spec = FACTS.get(name)
        if spec is None:
            raise CelError(f"unknown fact {name!r}")
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
            raise CelError(f"unsupported function {name}(): only size(<tags fact>) is allowed")
        fn = exprs[0].fn
        return _CelExpr("int", lambda t: np.bitwise_count(fn(t)).astype(np.int64))

    def _list(self, kids: list[Any]) -> _CelExpr:
        items = [self.compile(e) for e in kids[0].children] if kids else []
        if not items or not all(i.const for i in items):
            raise CelError("list literals must be non-empty and hold literals only")
        types = {i.type for i in items}
        ltype = _CEL_LIST_OF.get(items[0].type)
        if len(types) != 1 or ltype is None:
            raise CelError("a list literal must hold doubles, ints or strings, not a mix")
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
            raise CelError("the condition of ?: must be a bool")
        if a.type != b.type or a.type not in ("double", "int", "bool"):
            raise CelError("both branches of ?: must be doubles, ints or bools of one type")
        cf, af, bf = c.fn, a.fn, b.fn
        return self._fold(a.type, lambda t: np.where(cf(t), af(t), bf(t)), c, a, b)

    def _logic(self, op: str, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if a.type != "bool" or b.type != "bool":
            raise CelError(f"{op} needs bools on both sides")
        af, bf = a.fn, b.fn
        ufunc = np.logical_or if op == "||" else np.logical_and
        return self._fold("bool", lambda t: ufunc(af(t), bf(t)), a, b)

    def _unary(self, op: str, a: _CelExpr) -> _CelExpr:
        af = a.fn
        if op == "unary_not":
            if a.type != "bool":
                raise CelError("! needs a bool")
            return self._fold("bool", lambda t: np.logical_not(af(t)), a)
        if a.type not in ("double", "int"):
            raise CelError("unary - needs a number")
        return self._fold(a.type, lambda t: np.negative(af(t)), a)

    def _binary(self, op: str, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        af, bf = a.fn, b.fn
        if op in ("addition_add", "addition_sub", "multiplication_mul", "multiplication_div"):
            if a.type != b.type or a.type not in ("double", "int"):
                raise CelError(
                    f"arithmetic needs two doubles or two ints, got {a.type} and {b.type} "
                    "(number facts are doubles: write 10.0, not 10)"
                )
            if op == "multiplication_div" and a.type == "int":
                raise CelError("integer division is not supported; use doubles")
            ufunc = _CEL_ARITHMETIC[op]
            return self._fold(a.type, lambda t: ufunc(af(t), bf(t)), a, b)
        if op == "multiplication_mod":
            raise CelError("% is not supported")
        if op == "relation_in":
            return self._in(a, b)
        cmp = op.removeprefix("relation_")
        if a.type != b.type:
            raise CelError(
                f"cannot compare {a.type} with {b.type} "
                "(number facts are doubles: write 10.0, not 10)"
            )
        if a.type in ("double", "int"):
            cmp_ufunc = _CEL_COMPARE[cmp]
            return self._fold("bool", lambda t: cmp_ufunc(af(t), bf(t)), a, b)
        if cmp not in ("eq", "ne"):
            raise CelError(f"only == and != compare {a.type}s")
        if a.type == "bool":
            eq_ufunc = np.equal if cmp == "eq" else np.not_equal
            return self._fold("bool", lambda t: eq_ufunc(af(t), bf(t)), a, b)
        if a.type != "string":
            raise CelError(f"cannot compare {a.type}s")
        return self._string_eq(cmp == "eq", a, b)

    def _stage_code(self, fact: str, value: object) -> float:
        values = FACTS[fact].values
        if value not in values:
            raise CelError(f"{value!r} is not a {fact} (one of {', '.join(values)})")
        return float(values.index(str(value)))

    def _string_eq(self, eq: bool, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if a.const and b.const:
            return self._fold("bool", lambda t: (a.fn(t) == b.fn(t)) == eq, a, b)
        if a.enum_fact is not None and b.enum_fact is not None:
            return _CelExpr("bool", lambda t: np.full(t.n, eq))
        fact_side, lit = (a, b) if a.enum_fact is not None else (b, a)
        if fact_side.enum_fact is None:
            raise CelError("unsupported string comparison")
        code = self._stage_code(fact_side.enum_fact, lit.fn(_NO_ROWS))
        ff = fact_side.fn
        return _CelExpr("bool", lambda t: (ff(t) == code) == eq)

    def _in(self, a: _CelExpr, b: _CelExpr) -> _CelExpr:
        if b.type != _CEL_LIST_OF.get(a.type):
            raise CelError(f"cannot test a {a.type} in a {b.type}")
        af, bf = a.fn, b.fn
        if b.tags_fact is not None:
            if not a.const:
                raise CelError("`in <tags>` needs a string literal on the left")
            tag = a.fn(_NO_ROWS)
            vocab = FACTS[b.tags_fact].values
            if tag not in vocab:
                raise CelError(f"{tag!r} is not a {b.tags_fact} tag (one of {', '.join(vocab)})")
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
class CelProgram:
    source: str
    idents: tuple[str, ...]
    runner: celpy.Runner
    vector: Callable[[FactTable], Any]


def compile_cel(source: str) -> CelProgram:
    env = _cel_env()
    try:
        ast = env.compile(source)
    except CELParseError as e:
        raise CelError(f"syntax error at line {e.line}, column {e.column}") from None
    compiler = _CelCompiler()
    expr = compiler.compile(ast)
    if expr.type != "bool":
        raise CelError(f"the expression must be a bool, not a {expr.type}")
    if not compiler.idents:
        raise CelError("the expression reads no fact")
    return CelProgram(source, tuple(sorted(compiler.idents)), env.program(ast), expr.fn)


def to_cel(v: Value) -> celtypes.Value:
    if isinstance(v, bool):
        return celtypes.BoolType(v)
    if isinstance(v, float):
        return celtypes.DoubleType(v)
    if isinstance(v, str):
        return celtypes.StringType(v)
    return celtypes.ListType([celtypes.StringType(s) for s in sorted(v)])
