"""The criteria engine: operators, gaps, three-valued logic, near, CEL, validation, bulk path."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.policy.criteria import (
    FACTS,
    STATUSES,
    Band,
    Banded,
    Criterion,
    CriterionOutcome,
    FactError,
    FactTable,
    Group,
    InvalidRuleError,
    Node,
    PointsBand,
    PointsGroup,
    PointsItem,
    PointsOutcome,
    PointsScale,
    Rule,
    RuleOutcome,
    compile_rule,
    evaluate,
    evaluate_rules,
    match_table,
    validate_rule,
)


def crit(cid: str, fact: str | None, op: Any, threshold: Any = None, **kw: Any) -> Criterion:
    return Criterion(id=cid, fact=fact, op=op, threshold=threshold, label_zh=cid, **kw)


def cel(cid: str, expr: str) -> Criterion:
    return Criterion(id=cid, op="cel", expr=expr, label_zh=cid)


def rule(*items: Node, kind: Any = "all") -> Rule:
    return Rule(id="t", root=Group(kind=kind, id="root", items=list(items)))


def check(r: Rule, facts: dict[str, Any], near_max: int = 2) -> RuleOutcome:
    """Scalar outcome, after asserting the bulk path agrees on status and every node result."""
    out = evaluate(r, facts, near_max=near_max)
    table = compile_rule(r).evaluate_table(
        FactTable.from_records([facts]), near_max=near_max, detail=True
    )
    assert STATUSES[int(table.status[0])] == out.status
    codes = {1: "pass", 0: "fail", -1: "unknown"}
    for c in out.criteria():
        assert codes[int(table.results[c.id][0])] == c.result, c.id
        gap = table.gaps.get(c.id)
        if gap is not None and c.gap is not None:
            assert gap[0] == pytest.approx(c.gap)
    return out


def one(r: Rule, facts: dict[str, Any], cid: str = "c") -> CriterionOutcome:
    return check(r, facts).criterion(cid)


# --------------------------------------------------------------------------------------------
# Operators, boundaries and gaps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fact", "op", "threshold", "value", "result", "gap"),
    [
        ("rd_intensity", ">=", 5, 5.0, "pass", None),
        ("rd_intensity", ">=", 5, 4.9, "fail", 0.1),
        ("rd_intensity", ">=", 5, 4.9999999999999, "pass", None),  # float noise, not a miss
        ("rd_intensity", ">", 5, 5.0, "fail", 0.0),
        ("rd_intensity", ">", 5, 5.01, "pass", None),
        ("debt_ratio", "<=", 70, 70.0, "pass", None),
        ("debt_ratio", "<=", 70, 75.5, "fail", -5.5),
        ("valuation_usd_m", "<", 1000, 1000.0, "fail", 0.0),
        ("valuation_usd_m", "<", 1000, 999.0, "pass", None),
        ("score", "==", 60, 60.0, "pass", None),
        ("score", "==", 60, 58.0, "fail", 2.0),
        ("score", "!=", 60, 60.0, "fail", None),
        ("score", "between", [40, 60], 40.0, "pass", None),
        ("score", "between", [40, 60], 60.0, "pass", None),
        ("score", "between", [40, 60], 39.0, "fail", 1.0),
        ("score", "between", [40, 60], 61.5, "fail", -1.5),
        ("tier", "in", [4, 5], 5, "pass", None),
        ("tier", "in", [4, 5], 3, "fail", None),
        ("tier", "not_in", [1], 1, "fail", None),
        # Counts move in whole units.
        ("invention_patents", ">=", 2.5, 1, "fail", 2.0),
        ("invention_patents", ">", 2, 1, "fail", 2.0),
        ("invention_patents", "<", 3, 5, "fail", -3.0),
        ("class2_ip", ">=", 6, 3, "fail", 3.0),
    ],
)
def test_number_ops(
    fact: str, op: str, threshold: Any, value: float, result: str, gap: float | None
) -> None:
    c = one(rule(crit("c", fact, op, threshold)), {fact: value})
    assert (c.result, c.gap) == (result, gap)
    assert c.actual == value
    assert c.unit == FACTS[fact].unit


@pytest.mark.parametrize("missing", [{}, {"rd_intensity": None}, {"rd_intensity": math.nan}])
def test_missing_number_is_unknown_not_fail(missing: dict[str, Any]) -> None:
    out = check(rule(crit("c", "rd_intensity", ">=", 5)), missing)
    c = out.criterion("c")
    assert (c.result, c.gap, c.actual) == ("unknown", None, None)
    assert out.status == "unknown"
    assert out.missing_facts == ["rd_intensity"]


def test_per_is_a_percentage_of_another_fact() -> None:
    r = rule(crit("c", "st_staff", ">=", 29, per="employees"))
    # 29 / 100 * 100 is 28.999999999999996; the engine multiplies first.
    exact = one(r, {"st_staff": 29, "employees": 100})
    assert (exact.result, exact.actual) == ("pass", 29.0)
    c = one(r, {"st_staff": 20, "employees": 80})
    assert (c.result, c.actual, c.gap, c.unit) == ("fail", 25.0, 4.0, "%")
    assert one(r, {"st_staff": 3, "employees": 0}).result == "unknown"
    assert one(r, {"st_staff": 3}).result == "unknown"


HNTE_BANDS = Banded(
    by="operating_revenue",
    bands=[
        Band(upper=5000, upper_inclusive=True, threshold=5),
        Band(upper=20000, upper_inclusive=True, threshold=4),
        Band(threshold=3),
    ],
)


@pytest.mark.parametrize(
    ("revenue", "threshold"),
    [(0, 5.0), (5000, 5.0), (5000.01, 4.0), (20000, 4.0), (20000.01, 3.0), (1e7, 3.0)],
)
def test_banded_threshold_at_band_edges(revenue: float, threshold: float) -> None:
    r = rule(crit("c", "rd_ratio_3y", ">=", banded=HNTE_BANDS))
    at = one(r, {"rd_ratio_3y": threshold, "operating_revenue": revenue})
    assert (at.result, at.threshold) == ("pass", threshold)
    under = one(r, {"rd_ratio_3y": threshold - 0.2, "operating_revenue": revenue})
    assert (under.result, under.threshold, under.gap) == ("fail", threshold, 0.2)


def test_exclusive_band_edge_goes_to_the_next_band() -> None:
    bands = Banded(
        by="main_business_revenue", bands=[Band(upper=5000, threshold=25), Band(threshold=20)]
    )
    r = rule(crit("c", "revenue_growth", ">=", banded=bands))
    assert one(r, {"revenue_growth": 20, "main_business_revenue": 4999.99}).threshold == 25.0
    assert one(r, {"revenue_growth": 20, "main_business_revenue": 5000}).result == "pass"


def test_banded_with_band_fact_missing_is_unknown() -> None:
    c = one(rule(crit("c", "rd_ratio_3y", ">=", banded=HNTE_BANDS)), {"rd_ratio_3y": 9.0})
    assert (c.result, c.threshold, c.missing) == ("unknown", None, ["operating_revenue"])


@pytest.mark.parametrize(
    ("op", "threshold", "value", "result"),
    [
        ("is_true", None, True, "pass"),
        ("is_true", None, 0, "fail"),
        ("is_false", None, False, "pass"),
        ("is_false", None, 1.0, "fail"),
        ("==", True, True, "pass"),
        ("!=", True, True, "fail"),
        ("is_true", None, None, "unknown"),
    ],
)
def test_bool_ops(op: str, threshold: Any, value: Any, result: str) -> None:
    c = one(rule(crit("c", "rd_platform", op, threshold)), {"rd_platform": value})
    assert (c.result, c.gap, c.closeable) == (result, None, False)


@pytest.mark.parametrize(
    ("op", "threshold", "stage", "result"),
    [
        ("==", "growth", "growth", "pass"),
        ("==", "growth", "seed", "fail"),
        ("!=", "growth", "seed", "pass"),
        ("in", ["seed", "seedling"], "seedling", "pass"),
        ("not_in", ["seed", "seedling"], "seedling", "fail"),
        ("in", ["seed"], None, "unknown"),
    ],
)
def test_stage_ops(op: str, threshold: Any, stage: str | None, result: str) -> None:
    assert one(rule(crit("c", "stage", op, threshold)), {"stage": stage}).result == result


@pytest.mark.parametrize(
    ("op", "threshold", "tags", "result"),
    [
        ("contains", "hnte", ["hnte", "srdi"], "pass"),
        ("contains", "hnte", [], "fail"),
        ("contains", ["hnte", "st_sme"], ["st_sme"], "pass"),  # any of the listed
        ("not_contains", ["hnte", "st_sme"], ["st_sme"], "fail"),  # none of the listed
        ("not_contains", ["hnte"], ["srdi"], "pass"),
        ("contains", "hnte", None, "unknown"),
    ],
)
def test_tags_ops(op: str, threshold: Any, tags: list[str] | None, result: str) -> None:
    c = one(rule(crit("c", "qualifications", op, threshold)), {"qualifications": tags})
    assert c.result == result


@pytest.mark.parametrize(
    "facts",
    [
        {"qualifications": "hnte"},  # a bare string, not a collection
        {"qualifications": ["hnte", "nope"]},
        {"stage": "teenage"},
        {"score": "60"},
        {"score": True},
        {"rd_platform": 0.5},
    ],
)
def test_mistyped_facts_raise(facts: dict[str, Any]) -> None:
    r = rule(
        crit("c", "score", ">=", 1),
        crit("q", "qualifications", "contains", "hnte"),
        crit("s", "stage", "==", "seed"),
        crit("p", "rd_platform", "is_true"),
    )
    with pytest.raises(FactError):
        evaluate(r, facts)
    with pytest.raises(FactError):
        FactTable.from_records([facts])


def test_unrelated_and_unknown_keys_are_ignored() -> None:
    out = evaluate(rule(crit("c", "score", ">=", 1)), {"score": 2, "uscc": "91330106MA2HXFY97H"})
    assert out.status == "eligible"


# --------------------------------------------------------------------------------------------
# Three-valued groups
# --------------------------------------------------------------------------------------------

VALUE_FOR = {"pass": 60.0, "fail": 40.0, "unknown": None}


def _kleene(kind: str, results: list[str]) -> str:
    if kind == "all":
        return "fail" if "fail" in results else "unknown" if "unknown" in results else "pass"
    return "pass" if "pass" in results else "unknown" if "unknown" in results else "fail"


@pytest.mark.parametrize("kind", ["all", "any"])
@pytest.mark.parametrize("a", ["pass", "fail", "unknown"])
@pytest.mark.parametrize("b", ["pass", "fail", "unknown"])
def test_group_truth_tables(kind: str, a: str, b: str) -> None:
    r = rule(crit("a", "score", ">=", 50), crit("b", "percentile", ">=", 0.5), kind=kind)
    facts = {
        "score": VALUE_FOR[a],
        "percentile": None if b == "unknown" else 0.7 if b == "pass" else 0.1,
    }
    assert check(r, facts).result == _kleene(kind, [a, b])


def test_nested_groups() -> None:
    inner = Group(
        kind="any",
        id="inner",
        items=[crit("x", "invention_patents", ">=", 1), crit("y", "class2_ip", ">=", 6)],
    )
    r = rule(crit("a", "age_years", ">=", 1), inner)
    assert check(r, {"age_years": 2, "invention_patents": 0, "class2_ip": 6}).status == "eligible"
    out = check(r, {"age_years": 2, "invention_patents": 0})
    assert (out.result, out.find("inner").result) == ("unknown", "unknown")


# --------------------------------------------------------------------------------------------
# Points groups
# --------------------------------------------------------------------------------------------


def points_rule(pass_at: float = 60) -> Rule:
    return rule(
        PointsGroup(
            id="pts",
            pass_at=pass_at,
            items=[
                PointsItem(
                    id="staff",
                    label_zh="科技人员",
                    required_nonzero=True,
                    scales=[
                        PointsScale(
                            fact="st_staff",
                            per="employees",
                            bands=[PointsBand(min=10, points=4), PointsBand(min=30, points=20)],
                        )
                    ],
                ),
                PointsItem(
                    id="rd",
                    label_zh="研发",
                    scales=[
                        PointsScale(fact="rd_intensity", bands=[PointsBand(min=6, points=50)]),
                        PointsScale(fact="rd_cost_ratio", bands=[PointsBand(min=30, points=50)]),
                    ],
                ),
                PointsItem(
                    id="ip",
                    label_zh="知识产权",
                    scales=[
                        PointsScale(fact="invention_patents", bands=[PointsBand(min=1, points=30)])
                    ],
                ),
            ],
        )
    )


STAFF_10 = {"st_staff": 1, "employees": 10}  # 10%: 4 points
STAFF_30 = {"st_staff": 3, "employees": 10}  # 30%: 20 points


@pytest.mark.parametrize(
    ("facts", "pass_at", "result", "total", "gap"),
    [
        ({**STAFF_10, "rd_intensity": 6, "invention_patents": 1}, 60, "pass", 84, None),
        # the better of two scales counts: 4 + 50 + 0
        (
            {**STAFF_10, "rd_intensity": 1, "rd_cost_ratio": 30, "invention_patents": 0},
            60,
            "fail",
            54,
            6.0,
        ),
        # exactly at pass_at: 20 + 50 + 0
        ({**STAFF_30, "rd_intensity": 6, "invention_patents": 0}, 70, "pass", 70, None),
        # a zero staff score fails whatever the total
        (
            {"st_staff": 0, "employees": 10, "rd_intensity": 6, "invention_patents": 1},
            60,
            "fail",
            80,
            0.0,
        ),
        # the missing IP item could still lift 54 to 84
        ({**STAFF_10, "rd_intensity": 6, "rd_cost_ratio": 0}, 60, "unknown", 54, None),
        # ... but cannot matter once the known points pass
        ({**STAFF_30, "rd_intensity": 6}, 60, "pass", 70, None),
        # even with the missing IP item at its best, 4 + 0 + 30 < 60
        ({**STAFF_10, "rd_intensity": 0, "rd_cost_ratio": 0}, 60, "fail", 4, 56.0),
    ],
)
def test_points_group(
    facts: dict[str, Any], pass_at: float, result: str, total: float, gap: float | None
) -> None:
    p = check(points_rule(pass_at), facts).find("pts")
    assert isinstance(p, PointsOutcome)
    assert (p.result, p.total, p.gap) == (result, total, gap)


def test_points_zero_required_item_is_named() -> None:
    facts = {"st_staff": 0, "employees": 10, "rd_intensity": 6, "invention_patents": 1}
    p = check(points_rule(), facts).find("pts")
    assert isinstance(p, PointsOutcome)
    assert p.zero_required == ["staff"]
    item = {i.id: i for i in p.items}
    assert (item["rd"].points, item["rd"].basis, item["rd"].max_points) == (50, "rd_intensity", 50)


# --------------------------------------------------------------------------------------------
# Near versus ineligible
# --------------------------------------------------------------------------------------------

THREE = rule(
    crit("a", "rd_intensity", ">=", 5),
    crit("b", "invention_patents", ">=", 3),
    crit("c", "debt_ratio", "<=", 70),
)
ALL_PASS = {"rd_intensity": 5, "invention_patents": 3, "debt_ratio": 70}


def test_eligible_has_no_blocking() -> None:
    out = check(THREE, ALL_PASS)
    assert (out.status, out.blocking) == ("eligible", [])


def test_near_lists_the_gaps_to_close() -> None:
    out = check(THREE, {**ALL_PASS, "rd_intensity": 3.8, "invention_patents": 0})
    assert out.status == "near"
    assert out.blocking == ["a", "b"]
    assert out.criterion("a").gap == pytest.approx(1.2)
    assert out.criterion("b").gap == 3.0


def test_too_many_failures_is_ineligible_unless_near_max_allows() -> None:
    facts = {"rd_intensity": 3.8, "invention_patents": 0, "debt_ratio": 80}
    assert check(THREE, facts).status == "ineligible"
    assert check(THREE, facts, near_max=3).status == "near"
    assert check(THREE, {**ALL_PASS, "debt_ratio": 71}, near_max=0).status == "ineligible"


def test_unknown_on_the_way_to_pass_is_not_near() -> None:
    out = check(THREE, {"rd_intensity": 4.0, "invention_patents": 3})
    assert (out.result, out.status, out.blocking) == ("fail", "ineligible", [])


def test_undecided_rule_is_unknown() -> None:
    out = check(THREE, {"rd_intensity": 5.0, "invention_patents": 3})
    assert (out.result, out.status, out.missing_facts) == ("unknown", "unknown", ["debt_ratio"])


def test_not_closeable_failures_are_never_near() -> None:
    r = rule(crit("size", "employees", "<=", 500, closeable=False), crit("x", "score", ">=", 50))
    out = check(r, {"employees": 501, "score": 60})
    assert (out.status, out.criterion("size").gap) == ("ineligible", -1.0)
    # an upper limit on a fact that only grows cannot be worked towards either
    age = check(rule(crit("age", "age_years", "<=", 5)), {"age_years": 5.5})
    assert (age.status, age.criterion("age").closeable) == ("ineligible", False)
    assert check(rule(crit("age", "age_years", ">=", 1)), {"age_years": 0.5}).status == "near"


def test_near_takes_the_cheapest_route_of_an_any() -> None:
    route_a = Group(
        kind="all", id="ra", items=[crit("a1", "score", ">=", 80), crit("a2", "tier", ">=", 5)]
    )
    route_b = Group(kind="all", id="rb", items=[crit("b1", "standards", ">=", 1)])
    r = rule(Group(kind="any", id="route", items=[route_a, route_b]))
    out = check(r, {"score": 60, "tier": 3, "standards": 0})
    assert (out.status, out.blocking) == ("near", ["b1"])


def test_failing_points_group_counts_as_one_closeable_criterion() -> None:
    facts = {**STAFF_10, "rd_intensity": 5, "rd_cost_ratio": 0, "invention_patents": 1}
    out = check(points_rule(), facts)
    p = out.find("pts")
    assert isinstance(p, PointsOutcome)
    assert (out.status, out.blocking, p.gap) == ("near", ["pts"], 26.0)


# --------------------------------------------------------------------------------------------
# CEL
# --------------------------------------------------------------------------------------------

GROWTH = cel("growth", "(revenue_growth + revenue_growth_prev) / 2.0 >= 5.0")


def test_cel_failure_maps_to_its_criterion() -> None:
    out = check(
        rule(crit("a", "score", ">=", 50), GROWTH),
        {"score": 70, "revenue_growth": 4, "revenue_growth_prev": 5.9},
    )
    g = out.criterion("growth")
    assert (out.status, g.result, g.gap, g.closeable) == ("ineligible", "fail", None, False)
    assert g.actual == {"revenue_growth": 4.0, "revenue_growth_prev": 5.9}
    assert [c.id for c in out.criteria() if c.result == "fail"] == ["growth"]
    assert check(rule(GROWTH), {"revenue_growth": 4, "revenue_growth_prev": 6}).status == "eligible"


def test_cel_with_a_missing_fact_is_unknown() -> None:
    out = check(rule(GROWTH), {"revenue_growth": 40})
    assert (out.criterion("growth").result, out.missing_facts) == (
        "unknown",
        ["revenue_growth_prev"],
    )


CEL_EXPRESSIONS = [
    "(revenue_growth + revenue_growth_prev) / 2.0 >= 5.0",
    "invention_patents_granted + pct_filings >= 1.0",
    "'hnte' in qualifications || rd_platform",
    "!('hnte' in qualifications) && stage in ['seed', 'seedling']",
    "size(qualifications) >= 2 && stage != 'mature'",
    "(listed ? valuation_usd_m : valuation_usd_m * 2.0) > 150.0",
    "hightech_revenue / operating_revenue >= 0.6",
    "-debt_ratio < -50.0 == true",
    "score in [60.0, 70.0] || tier - 1.0 >= 3.0",
]
ANY_NUMBER = st.one_of(
    st.none(), st.sampled_from([0.0, 1.0, 2.0, 5.0, 60.0, 100.0, 150.0]), st.floats(-50, 2000)
)
FACTS_FOR_CEL = st.fixed_dictionaries(
    {
        code: ANY_NUMBER
        for code in (
            "revenue_growth",
            "revenue_growth_prev",
            "invention_patents_granted",
            "pct_filings",
            "valuation_usd_m",
            "hightech_revenue",
            "operating_revenue",
            "debt_ratio",
            "score",
            "tier",
        )
    }
    | {
        "qualifications": st.one_of(
            st.none(), st.lists(st.sampled_from(["hnte", "srdi", "st_sme"]), unique=True)
        ),
        "rd_platform": st.one_of(st.none(), st.booleans()),
        "listed": st.one_of(st.none(), st.booleans()),
        "stage": st.one_of(st.none(), st.sampled_from(["seed", "seedling", "growth", "mature"])),
    }
)


@settings(max_examples=150, deadline=None)
@given(facts=FACTS_FOR_CEL)
def test_cel_bulk_path_agrees_with_cel_python(facts: dict[str, Any]) -> None:
    r = rule(*(cel(f"e{i}", e) for i, e in enumerate(CEL_EXPRESSIONS)))
    check(r, facts)


@pytest.mark.parametrize(
    ("numerator", "expected"), [(0.0, "pass"), (-1.0, "pass"), (1.0, "pass"), (None, "unknown")]
)
def test_cel_division_by_zero_follows_cel_python(numerator: float | None, expected: str) -> None:
    # cel-python makes x / 0.0 +inf whatever x; the bulk path must agree (check() asserts it).
    r = rule(cel("d", "hightech_revenue / operating_revenue >= 0.6"))
    c = one(r, {"hightech_revenue": numerator, "operating_revenue": 0.0}, "d")
    assert c.result == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("score >= ", "syntax error"),
        ("scroe >= 1.0", "unknown fact 'scroe'"),
        ("employees >= 10", "cannot compare double with int"),
        ("score + 1.0", "must be a bool"),
        ("qualifications.exists(q, q == 'hnte')", "unsupported"),
        ("foo.bar > 1.0", "unsupported"),
        ("'hntx' in qualifications", "not a qualifications tag"),
        ("stage == 'teen'", "not a stage"),
        ("1.0 > 0.0", "reads no fact"),
        ("score % 2.0 == 0.0", "not supported"),
        ("max(score, 1.0) > 2.0", "unsupported function"),
    ],
)
def test_bad_cel_is_rejected(expr: str, message: str) -> None:
    problems = validate_rule(rule(cel("x", expr)))
    assert [p.code for p in problems] == ["bad_cel"]
    assert problems[0].criterion_id == "x"
    assert message in problems[0].message


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def raw(**node: Any) -> dict[str, Any]:
    return {
        "id": "r",
        "root": {"kind": "all", "id": "g", "items": [{"id": "x", "label_zh": "x", **node}]},
    }


@pytest.mark.parametrize(
    ("node", "code"),
    [
        ({"fact": "scroe", "op": ">=", "threshold": 1}, "unknown_fact"),
        ({"fact": "score", "op": "=>", "threshold": 1}, "unknown_op"),
        ({"fact": "score", "op": "contains", "threshold": "x"}, "op_not_allowed"),
        ({"fact": "qualifications", "op": ">=", "threshold": 1}, "op_not_allowed"),
        ({"fact": "score", "op": ">=", "threshold": "60"}, "bad_threshold"),
        ({"fact": "score", "op": ">=", "threshold": True}, "bad_threshold"),
        ({"fact": "score", "op": ">=", "threshold": [60]}, "bad_threshold"),
        ({"fact": "score", "op": ">=", "threshold": None}, "bad_threshold"),
        ({"fact": "score", "op": ">=", "threshold": 160}, "bad_threshold"),
        ({"fact": "score", "op": "between", "threshold": [60]}, "bad_threshold"),
        ({"fact": "score", "op": "between", "threshold": [70, 60]}, "bad_threshold"),
        ({"fact": "score", "op": "in", "threshold": []}, "bad_threshold"),
        ({"fact": "class2_ip", "op": "==", "threshold": 1.5}, "bad_threshold"),
        ({"fact": "class2_ip", "op": "between", "threshold": [1.2, 1.8]}, "bad_threshold"),
        ({"fact": "stage", "op": "==", "threshold": "teen"}, "bad_threshold"),
        ({"fact": "stage", "op": "in", "threshold": "seed"}, "bad_threshold"),
        ({"fact": "qualifications", "op": "contains", "threshold": "hntx"}, "bad_threshold"),
        ({"fact": "rd_platform", "op": "is_true", "threshold": True}, "bad_threshold"),
        ({"fact": "rd_platform", "op": "==", "threshold": 1}, "bad_threshold"),
        ({"fact": "score", "op": ">=", "threshold": 1, "expr": "score > 1.0"}, "bad_threshold"),
        ({"fact": "score", "op": ">=", "threshold": 1, "per": "stage"}, "op_not_allowed"),
        ({"fact": "score", "op": ">=", "threshold": 1, "per": "nope"}, "unknown_fact"),
        ({"op": "cel", "fact": "score", "expr": "score > 1.0"}, "bad_cel"),
        ({"op": "cel"}, "bad_cel"),
        ({"fact": "score", "op": ">=", "treshold": 1}, "schema"),
        ({"kind": "rule", "fact": "score", "op": ">=", "threshold": 1}, "schema"),
    ],
)
def test_validation_rejects(node: dict[str, Any], code: str) -> None:
    problems = validate_rule(raw(**node))
    assert code in [p.code for p in problems], problems
    with pytest.raises(InvalidRuleError):
        compile_rule(raw(**node))


def band(upper: float | None, threshold: Any) -> dict[str, Any]:
    return {"upper": upper, "threshold": threshold}


@pytest.mark.parametrize(
    "banded",
    [
        {"by": "operating_revenue", "bands": []},
        {"by": "operating_revenue", "bands": [band(5000, 5)]},  # last band not open
        {"by": "operating_revenue", "bands": [band(None, 5), band(None, 4)]},
        {"by": "operating_revenue", "bands": [band(5000, 5), band(3000, 4), band(None, 3)]},
        {"by": "operating_revenue", "bands": [band(5000, "5"), band(None, 4)]},
        {"by": "stage", "bands": [band(None, 4)]},
        {"by": "turnover", "bands": [band(None, 4)]},
    ],
)
def test_bad_bands_are_rejected(banded: dict[str, Any]) -> None:
    problems = validate_rule(raw(fact="rd_intensity", op=">=", banded=banded))
    assert problems
    assert {p.code for p in problems} <= {
        "bad_band",
        "bad_threshold",
        "unknown_fact",
        "op_not_allowed",
    }


def test_banded_needs_an_order_op_and_no_plain_threshold() -> None:
    ok = {"by": "operating_revenue", "bands": [band(None, 4)]}
    assert validate_rule(raw(fact="rd_intensity", op=">=", banded=ok)) == []
    assert [p.code for p in validate_rule(raw(fact="rd_intensity", op="==", banded=ok))] == [
        "bad_band"
    ]
    both = validate_rule(raw(fact="rd_intensity", op=">=", threshold=3, banded=ok))
    assert [p.code for p in both] == ["bad_threshold"]


def test_empty_groups_and_duplicate_ids() -> None:
    empty = validate_rule({"id": "r", "root": {"kind": "any", "id": "g", "items": []}})
    assert [p.code for p in empty] == ["empty_group"]
    pts = validate_rule(
        {"id": "r", "root": {"kind": "points", "id": "p", "pass_at": 1, "items": []}}
    )
    assert [p.code for p in pts] == ["empty_group"]
    dup = validate_rule(rule(crit("a", "score", ">=", 1), crit("a", "tier", ">=", 1)))
    assert [(p.code, p.criterion_id) for p in dup] == [("duplicate_id", "a")]


@pytest.mark.parametrize(
    ("bands", "pass_at"),
    [
        ([PointsBand(min=5, points=10), PointsBand(min=5, points=20)], 10),  # mins not ascending
        ([PointsBand(min=5, points=-1)], 1),
        ([PointsBand(min=5, points=10)], 11),  # more than the points on offer
        ([], 1),
    ],
)
def test_bad_points_are_rejected(bands: list[PointsBand], pass_at: float) -> None:
    g = PointsGroup(
        id="p",
        pass_at=pass_at,
        items=[PointsItem(id="i", label_zh="i", scales=[PointsScale(fact="score", bands=bands)])],
    )
    assert [p.code for p in validate_rule(rule(g))] == ["bad_points"]


def test_problems_carry_path_and_criterion() -> None:
    r = rule(
        crit("ok", "score", ">=", 1),
        Group(kind="any", id="g2", items=[crit("bad", "nope", ">=", 1)]),
    )
    (p,) = validate_rule(r)
    assert (p.code, p.path, p.criterion_id) == ("unknown_fact", "root.items[1].items[0]", "bad")
    (s,) = validate_rule(raw(fact="score", op="~", threshold=1))
    assert (s.code, s.path) == ("unknown_op", "root.items[0].op")


def test_invalid_rules_cannot_be_evaluated() -> None:
    with pytest.raises(InvalidRuleError) as e:
        evaluate(rule(crit("a", "score", ">=", "high")), {"score": 1})
    assert [p.code for p in e.value.problems] == ["bad_threshold"]


def test_rules_and_outcomes_are_json() -> None:
    r = rule(
        crit("a", "rd_ratio_3y", ">=", banded=HNTE_BANDS),
        GROWTH,
        crit("q", "qualifications", "not_contains", ["hnte"]),
    )
    text = r.model_dump_json()
    assert validate_rule(text) == []
    assert Rule.model_validate_json(text) == r
    out = evaluate(r, {"rd_ratio_3y": 4, "operating_revenue": 6000, "qualifications": []})
    assert RuleOutcome.model_validate(json.loads(out.model_dump_json())) == out


def test_kind_defaults_to_criterion() -> None:
    r = Rule.model_validate(
        {
            "id": "r",
            "root": {"id": "a", "fact": "score", "op": ">=", "threshold": 1, "label_zh": "a"},
        }
    )
    assert evaluate(r, {"score": 1}).status == "eligible"


# --------------------------------------------------------------------------------------------
# Properties and the bulk path
# --------------------------------------------------------------------------------------------

VALUES = st.floats(-100, 10000, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(t=st.floats(-100, 10000), v=VALUES, dv=st.floats(0, 1000))
def test_raising_a_value_never_breaks_a_ge_criterion(t: float, v: float, dv: float) -> None:
    r = rule(crit("c", "revenue_growth", ">=", t))
    before = evaluate(r, {"revenue_growth": v}).result
    after = evaluate(r, {"revenue_growth": v + dv}).result
    assert not (before == "pass" and after == "fail")


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from([">=", "<=", "==", "between"]),
    t=st.floats(0, 1000),
    width=st.floats(0, 100),
    v=st.floats(0, 2000),
    count=st.booleans(),
)
def test_adding_the_gap_passes(op: str, t: float, width: float, v: float, count: bool) -> None:
    fact = "class2_ip" if count else "rd_expense"
    if count:
        v = float(round(v))
    threshold: Any = [t, t + width] if op == "between" else t
    r = rule(crit("c", fact, op, threshold))
    assume(not validate_rule(r))  # e.g. == 1.5 on a count, which nothing can meet
    c = evaluate(r, {fact: v}).criterion("c")
    if c.result == "fail":
        assert c.gap is not None
        assert evaluate(r, {fact: v + c.gap}).result == "pass"


def test_from_columns_encodings_match_records() -> None:
    records: list[dict[str, Any]] = [
        {"score": 70, "stage": "growth", "qualifications": ["hnte"], "rd_platform": True},
        {"score": None, "stage": None, "qualifications": None, "rd_platform": None},
        {"score": 20.5, "stage": "seed", "qualifications": [], "rd_platform": 0},
    ]
    cols = FactTable.from_columns(
        {
            "score": [70, None, 20.5],
            "stage": ["growth", None, "seed"],
            "qualifications": [["hnte"], None, []],
            "rd_platform": [True, None, 0],
            "not_a_fact": [1, 2, 3],
        }
    )
    rows = FactTable.from_records(records)
    for code in ("score", "stage", "qualifications", "rd_platform"):
        np.testing.assert_array_equal(cols.column(code), rows.column(code))
    masks = FactTable.from_columns({"qualifications": np.array([1, -1, 0])})
    np.testing.assert_array_equal(masks.column("qualifications"), rows.column("qualifications"))


@pytest.mark.parametrize(
    "columns",
    [
        {"score": [1, 2], "tier": [1]},
        {"rd_platform": [0.5]},
        {"stage": ["teen"]},
        {"qualifications": np.array([1 << 20])},
    ],
)
def test_from_columns_rejects_bad_columns(columns: dict[str, Any]) -> None:
    with pytest.raises(FactError):
        FactTable.from_columns(columns)


def test_match_table_threads_and_chunks_agree() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    table = FactTable.from_columns(
        {
            "rd_intensity": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 10, n)),
            "invention_patents": rng.integers(0, 5, n),
            "debt_ratio": rng.uniform(0, 100, n),
        }
    )
    compiled = [compile_rule(THREE)]
    whole = match_table(compiled, table)["t"]
    chunked = match_table(compiled, table, workers=2, chunk_rows=170)["t"]
    np.testing.assert_array_equal(whole, chunked)
    assert set(np.unique(whole)) == {0, 1, 2, 3}
    assert compiled[0].evaluate_table(table).counts()["eligible"] == int((whole == 0).sum())


def test_evaluate_rules_coerces_once_for_many() -> None:
    outs = evaluate_rules([compile_rule(THREE), compile_rule(rule(GROWTH))], ALL_PASS)
    assert [o.status for o in outs] == ["eligible", "unknown"]
