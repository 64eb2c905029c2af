"""The entry points: compile a rule once, then evaluate it for one enterprise (detailed
outcome) or for columns of many (bulk statuses, optionally per-criterion detail)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from services.policy.criteria.compiler import RuleCompiler, parse_rule
from services.policy.criteria.facts import BoolArray, FactTable, FloatArray, Value, coerce_facts
from services.policy.criteria.nodes import CompiledNode, Detail
from services.policy.criteria.rules import (
    NEAR_MAX_DEFAULT,
    STATUSES,
    CriterionOutcome,
    GroupOutcome,
    InvalidRuleError,
    NodeOutcome,
    PointsOutcome,
    Rule,
    RuleOutcome,
    Status,
)


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

    def __init__(self, rule: Rule, root: CompiledNode) -> None:
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
        self,
        table: FactTable,
        *,
        near_max: int = NEAR_MAX_DEFAULT,
        detail: bool = False,
        gaps: bool = True,
    ) -> TableOutcome:
        """Status of every row; with `detail`, per-criterion results and (unless not `gaps`)
        gaps as well."""
        d = Detail(with_gaps=gaps) if detail else None
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
    parsed = parse_rule(rule)
    if isinstance(parsed, list):
        raise InvalidRuleError(parsed)
    compiler = RuleCompiler()
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
