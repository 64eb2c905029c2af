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

The package, one module per part: `facts` (what a criterion reads, coercion, columns),
`rules` (the rule model, outcomes, problems), `compare` (comparisons and gaps), `cel` (the CEL
subset), `nodes` (compiled nodes, both paths), `compiler` (validation and compilation),
`engine` (the entry points). Import from the package: its names below are the public API,
the modules' other names are its workings.
"""

from services.policy.criteria.cel import CelType
from services.policy.criteria.compare import NumThreshold
from services.policy.criteria.compiler import validate_rule
from services.policy.criteria.engine import (
    CompiledRule,
    TableOutcome,
    compile_rule,
    evaluate,
    evaluate_rules,
    match_table,
)
from services.policy.criteria.facts import (
    FACTS,
    BoolArray,
    FactError,
    FactSpec,
    FactTable,
    FactType,
    FloatArray,
    IntArray,
    Value,
    coerce_facts,
)
from services.policy.criteria.rules import (
    NEAR_MAX_DEFAULT,
    OPS,
    OPS_BY_TYPE,
    STATUSES,
    Actual,
    Band,
    Banded,
    Criterion,
    CriterionOutcome,
    Group,
    GroupOutcome,
    InvalidRuleError,
    Node,
    NodeOutcome,
    Op,
    PointsBand,
    PointsGroup,
    PointsItem,
    PointsItemOutcome,
    PointsOutcome,
    PointsScale,
    Problem,
    ProblemCode,
    Result,
    Rule,
    RuleOutcome,
    Scalar,
    Status,
    Threshold,
)

__all__ = [
    "FACTS",
    "NEAR_MAX_DEFAULT",
    "OPS",
    "OPS_BY_TYPE",
    "STATUSES",
    "Actual",
    "Band",
    "Banded",
    "BoolArray",
    "CelType",
    "CompiledRule",
    "Criterion",
    "CriterionOutcome",
    "FactError",
    "FactSpec",
    "FactTable",
    "FactType",
    "FloatArray",
    "Group",
    "GroupOutcome",
    "IntArray",
    "InvalidRuleError",
    "Node",
    "NodeOutcome",
    "NumThreshold",
    "Op",
    "PointsBand",
    "PointsGroup",
    "PointsItem",
    "PointsItemOutcome",
    "PointsOutcome",
    "PointsScale",
    "Problem",
    "ProblemCode",
    "Result",
    "Rule",
    "RuleOutcome",
    "Scalar",
    "Status",
    "TableOutcome",
    "Threshold",
    "Value",
    "coerce_facts",
    "compile_rule",
    "evaluate",
    "evaluate_rules",
    "match_table",
    "validate_rule",
]
