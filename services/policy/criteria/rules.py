"""The rule model (data): criteria, groups and points groups as stored and edited by staff;
the outcomes of evaluating them; the problems that keep a rule from being published."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from services.policy.criteria.facts import FactType

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
ORDER_OPS = frozenset({">=", ">", "<=", "<"})

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
    # The API publishes this model, and its schema is named after its module, as another
    # schema is called Problem too: keep the name it was published under.
    __module__ = "services.policy.criteria"

    code: ProblemCode
    path: str
    message: str
    criterion_id: str | None = None


class InvalidRuleError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
