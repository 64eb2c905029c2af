"""The seeded pools and policies: their real thresholds, at and around every boundary."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.catalogue import NEGATIVE_FLAGS, QUALIFICATIONS, STAGES, Stage
from services.policy.criteria import (
    FACTS,
    STATUSES,
    CriterionOutcome,
    FactTable,
    GroupOutcome,
    PointsOutcome,
    Rule,
    RuleOutcome,
    compile_rule,
    validate_rule,
)
from services.policy.definitions import (
    POLICIES,
    POLICIES_BY_CODE,
    POOLS,
    POOLS_BY_CODE,
    all_rules,
    compiled_rules,
)

# cel-python raises the recursion limit when first used; do it before hypothesis watches.
compiled_rules()


def run(code: str, facts: dict[str, Any]) -> RuleOutcome:
    """Pool or policy outcome, after asserting the bulk path gives the same status."""
    rule = POOLS_BY_CODE[code].rule if code in POOLS_BY_CODE else POLICIES_BY_CODE[code].rule
    compiled = compile_rule(rule)
    out = compiled.evaluate(facts)
    bulk = compiled.evaluate_table(FactTable.from_records([facts]))
    assert STATUSES[int(bulk.status[0])] == out.status
    return out


def leaf_ids(rule: Rule) -> list[str]:
    out: list[str] = []
    stack: list[Any] = [rule.root]
    while stack:
        node = stack.pop()
        if node.kind == "criterion":
            out.append(node.id)
        elif node.kind in ("all", "any"):
            stack.extend(node.items)
    return out


# --------------------------------------------------------------------------------------------
# Shape of the definitions
# --------------------------------------------------------------------------------------------


def test_pools_and_their_target_stages() -> None:
    assert {p.code: p.target_stage for p in POOLS} == {
        "st_sme": Stage.SEED,
        "eaglet": Stage.SEEDLING,
        "hnte": Stage.GROWTH,
        "gazelle": Stage.EXPANSION,
        "little_giant": Stage.EXPANSION,
        "quasi_unicorn": Stage.EXPANSION,
        "unicorn": Stage.MATURE,
    }
    for pool in POOLS:
        assert pool.code in QUALIFICATIONS  # a pool member gets the matching qualification
        assert pool.name_zh
        assert pool.clause
        assert pool.sources
        assert pool.rule.id == f"pool:{pool.code}"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_every_seeded_rule_is_valid_and_documented(rule: Rule) -> None:
    assert validate_rule(rule) == []
    assert validate_rule(rule.model_dump_json()) == []
    for leaf in compile_rule(rule).evaluate({}).criteria():
        assert leaf.clause, leaf.id
        assert leaf.label_zh, leaf.id


def test_policies_are_complete() -> None:
    assert len(POLICIES) >= 12
    assert len(POLICIES_BY_CODE) == len(POLICIES)
    for p in POLICIES:
        assert p.rule.id == f"policy:{p.code}"
        assert p.title_zh
        assert p.department_zh
        assert p.summary_zh
        assert p.benefits
        assert set(p.pools) <= set(POOLS_BY_CODE), p.code
        assert p.valid_to is None or p.valid_from < p.valid_to
        assert p.valid_from >= date(2020, 1, 1)
    topics = {p.code for p in POLICIES}
    assert {
        "hnte_reward",
        "rd_subsidy",
        "gazelle_award",
        "points_loan_subsidy",
        "graduate_subsidy",
        "patent_funding",
        "standards_reward",
        "little_giant_reward",
        "eaglet_cultivation",
        "unicorn_support",
        "st_sme_evaluation",
        "first_loan_subsidy",
    } <= topics


def test_nothing_is_decided_without_data() -> None:
    for compiled in compiled_rules():
        out = compiled.evaluate({})
        assert out.status == "unknown", compiled.id
        assert all(c.result == "unknown" for c in out.criteria())


# --------------------------------------------------------------------------------------------
# Each pool at its thresholds. BASE facts sit exactly on every boundary, so they pass, and
# each case moves one fact just past it.
# --------------------------------------------------------------------------------------------

CLEAN: dict[str, Any] = {"negative_flags": [], "major_incident": False}

HNTE = {
    **CLEAN,
    "age_years": 1,
    "invention_patents": 1,
    "class2_ip": 0,
    "st_staff": 10,
    "employees": 100,
    "operating_revenue": 5000,
    "rd_ratio_3y": 5,
    "rd_domestic_share": 60,
    "hightech_revenue": 3000,
}

ST_SME = {
    **CLEAN,
    "employees": 500,
    "operating_revenue": 20000,
    "total_assets": 20000,
    # 50 / 500 = 10% -> 4; R&D 6% -> 50; one Class II IP -> 6: exactly 60
    "st_staff": 50,
    "rd_intensity": 6,
    "rd_cost_ratio": 0,
    "invention_patents": 0,
    "class2_ip": 1,
    "qualifications": [],
    "st_awards": 0,
    "rd_platform": False,
    "standards": 0,
}

EAGLET = {
    "negative_flags": [],
    "age_years": 5,
    "operating_revenue": 5000,
    "employees": 20,
    "st_staff": 3,
    "rd_expense": 50,
    "rd_intensity": 4,
    "class2_ip": 1,
    "invention_patents": 0,
}

GAZELLE = {
    "negative_flags": [],
    "main_business_revenue": 1000,
    "qualifications": ["hnte"],
    "revenue_growth": 25,
    "revenue_growth_prev": 25,
}

LITTLE_GIANT = {
    "negative_flags": [],
    "niche_years": 3,
    "main_business_share": 70,
    "revenue_growth": 5,
    "revenue_growth_prev": 5,
    "debt_ratio": 70,
    "operating_revenue": 10000,
    "rd_intensity": 3,
    "invention_patents": 2,
    "niche_market_share": 10,
}

UNICORN = {
    "negative_flags": [],
    "age_years": 10,
    "private_funded": True,
    "listed": False,
    "valuation_usd_m": 1000,
}
QUASI = {**UNICORN, "valuation_usd_m": 100}

BASES = {
    "hnte": HNTE,
    "st_sme": ST_SME,
    "eaglet": EAGLET,
    "gazelle": GAZELLE,
    "little_giant": LITTLE_GIANT,
    "unicorn": UNICORN,
    "quasi_unicorn": QUASI,
}


@pytest.mark.parametrize("code", sorted(BASES))
def test_base_facts_sit_on_the_boundary_and_pass(code: str) -> None:
    out = run(code, BASES[code])
    assert out.status == "eligible", [c for c in out.criteria() if c.result != "pass"]


@pytest.mark.parametrize("code", sorted(BASES))
def test_every_missing_fact_is_unknown_never_fail(code: str) -> None:
    failing = {c.id for c in run(code, BASES[code]).criteria() if c.result == "fail"}
    for fact in BASES[code]:
        facts = {k: v for k, v in BASES[code].items() if k != fact}
        out = run(code, facts)
        assert out.status in ("eligible", "unknown"), (fact, out.status)
        # dropping data turns passes into unknowns, never into failures
        assert {c.id for c in out.criteria() if c.result == "fail"} <= failing, fact
        if out.status == "unknown":
            assert fact in out.missing_facts


# (pool, change, failing criterion, gap, status)
JUST_PAST: list[tuple[str, dict[str, Any], str, float | None, str]] = [
    ("hnte", {"age_years": 0.99}, "hnte.age", 0.01, "near"),
    ("hnte", {"st_staff": 9}, "hnte.st_staff_share", 1.0, "near"),
    ("hnte", {"rd_ratio_3y": 4.99}, "hnte.rd_ratio", 0.01, "near"),
    ("hnte", {"rd_domestic_share": 59.9}, "hnte.rd_domestic", 0.1, "near"),
    ("hnte", {"hightech_revenue": 2999}, "hnte.hightech_share", 0.02, "near"),
    ("hnte", {"major_incident": True}, "hnte.no_incident", None, "ineligible"),
    ("hnte", {"negative_flags": ["abnormal_operation"]}, "hnte.negative_list", None, "ineligible"),
    ("st_sme", {"employees": 501, "st_staff": 51}, "st_sme.employees", -1.0, "ineligible"),
    ("st_sme", {"operating_revenue": 20000.5}, "st_sme.revenue", -0.5, "ineligible"),
    ("st_sme", {"total_assets": 20001}, "st_sme.assets", -1.0, "ineligible"),
    (
        "st_sme",
        {"negative_flags": ["serious_dishonesty"]},
        "st_sme.negative_list",
        None,
        "ineligible",
    ),
    ("eaglet", {"age_years": 5.01}, "eaglet.age", -0.01, "ineligible"),
    ("eaglet", {"operating_revenue": 5000.01}, "eaglet.revenue", -0.01, "ineligible"),
    ("eaglet", {"employees": 9, "st_staff": 2}, "eaglet.employees", 1.0, "near"),
    ("eaglet", {"st_staff": 2}, "eaglet.st_staff_share", 5.0, "near"),
    ("eaglet", {"rd_expense": 49.9}, "eaglet.rd_expense", 0.1, "near"),
    ("eaglet", {"rd_intensity": 3.9}, "eaglet.rd_intensity", 0.1, "near"),
    ("gazelle", {"main_business_revenue": 999}, "gazelle.main_revenue", 1.0, "near"),
    ("gazelle", {"revenue_growth": 24.9}, "gazelle.growth_last", 0.1, "near"),
    ("gazelle", {"revenue_growth_prev": 24}, "gazelle.growth_prev", 1.0, "near"),
    ("gazelle", {"qualifications": ["srdi"]}, "gazelle.hightech", None, "ineligible"),
    ("little_giant", {"niche_years": 2}, "little_giant.niche_years", 1.0, "near"),
    ("little_giant", {"main_business_share": 69.5}, "little_giant.main_share", 0.5, "near"),
    ("little_giant", {"debt_ratio": 70.5}, "little_giant.debt_ratio", -0.5, "near"),
    ("little_giant", {"invention_patents": 1}, "little_giant.invention", 1.0, "near"),
    ("little_giant", {"niche_market_share": 9}, "little_giant.market_share", 1.0, "near"),
    ("little_giant", {"rd_intensity": 2.9}, "little_giant.rd.intensity", 0.1, "near"),
    # CEL: the failure maps to its criterion, without a gap, so it is never near
    ("little_giant", {"revenue_growth": 4.98}, "little_giant.growth_avg", None, "ineligible"),
    ("unicorn", {"valuation_usd_m": 999}, "unicorn.valuation", 1.0, "near"),
    ("unicorn", {"age_years": 10.5}, "unicorn.age", -0.5, "ineligible"),
    ("unicorn", {"listed": True}, "unicorn.unlisted", None, "ineligible"),
    ("unicorn", {"private_funded": False}, "unicorn.private", None, "ineligible"),
    ("quasi_unicorn", {"valuation_usd_m": 99}, "quasi_unicorn.valuation", 1.0, "near"),
    ("quasi_unicorn", {"valuation_usd_m": 1000}, "quasi_unicorn.below_unicorn", 0.0, "ineligible"),
]


@pytest.mark.parametrize(
    ("code", "change", "criterion", "gap", "status"),
    JUST_PAST,
    ids=[f"{c[2]}:{next(iter(c[1].values()))}" for c in JUST_PAST],
)
def test_just_past_each_threshold(
    code: str, change: dict[str, Any], criterion: str, gap: float | None, status: str
) -> None:
    out = run(code, {**BASES[code], **change})
    failed = [c.id for c in out.criteria() if c.result == "fail"]
    assert criterion in failed
    c = out.criterion(criterion)
    assert c.gap == (pytest.approx(gap) if gap is not None else None)
    assert out.status == status
    if status == "near":
        assert criterion in out.blocking


# --------------------------------------------------------------------------------------------
# Banded thresholds at their band edges
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revenue", "threshold"),
    [(4999.99, 5), (5000, 5), (5000.01, 4), (20000, 4), (20000.01, 3), (80000, 3)],
)
def test_hnte_rd_ratio_bands(revenue: float, threshold: float) -> None:
    facts = {**HNTE, "operating_revenue": revenue, "hightech_revenue": revenue}
    at = run("hnte", {**facts, "rd_ratio_3y": threshold})
    assert at.status == "eligible"
    assert at.criterion("hnte.rd_ratio").threshold == threshold
    under = run("hnte", {**facts, "rd_ratio_3y": threshold - 0.01}).criterion("hnte.rd_ratio")
    assert under.result == "fail"
    assert under.gap == pytest.approx(0.01)


def test_hnte_band_needs_revenue() -> None:
    out = run("hnte", {k: v for k, v in HNTE.items() if k != "operating_revenue"})
    c = out.criterion("hnte.rd_ratio")
    assert (c.result, c.threshold, out.status) == ("unknown", None, "unknown")


@pytest.mark.parametrize(("revenue", "threshold"), [(2999.99, 5), (3000, 4), (4999, 4), (5000, 4)])
def test_eaglet_rd_intensity_bands(revenue: float, threshold: float) -> None:
    out = run("eaglet", {**EAGLET, "operating_revenue": revenue, "rd_intensity": threshold})
    assert out.status == "eligible"
    assert out.criterion("eaglet.rd_intensity").threshold == threshold
    under = run("eaglet", {**EAGLET, "operating_revenue": revenue, "rd_intensity": threshold - 0.5})
    assert under.criterion("eaglet.rd_intensity").result == "fail"


@pytest.mark.parametrize(
    ("main_revenue", "threshold"),
    [(1000, 25), (4999.99, 25), (5000, 20), (9999.99, 20), (10000, 15), (90000, 15)],
)
def test_gazelle_growth_bands(main_revenue: float, threshold: float) -> None:
    facts = {
        **GAZELLE,
        "main_business_revenue": main_revenue,
        "revenue_growth": threshold,
        "revenue_growth_prev": threshold,
    }
    out = run("gazelle", facts)
    assert out.status == "eligible"
    assert out.criterion("gazelle.growth_last").threshold == threshold
    assert out.criterion("gazelle.growth_prev").threshold == threshold
    # both years must meet it: one year short is a single gap
    short = run("gazelle", {**facts, "revenue_growth_prev": threshold - 1})
    assert (short.status, short.blocking) == ("near", ["gazelle.growth_prev"])


@pytest.mark.parametrize(
    ("revenue", "rd", "status"),
    [
        (10000, 3, "eligible"),  # 1亿 and above: 3%
        (9999.99, 3, "near"),  # 5000万-1亿: 6%
        (9999.99, 6, "eligible"),
        (5000, 6, "eligible"),
    ],
)
def test_little_giant_rd_bands(revenue: float, rd: float, status: str) -> None:
    assert (
        run(
            "little_giant", {**LITTLE_GIANT, "operating_revenue": revenue, "rd_intensity": rd}
        ).status
        == status
    )


SMALL_GIANT = {
    **LITTLE_GIANT,
    "operating_revenue": 4999,
    "rd_intensity": 0,
    "new_equity_2y": 8000,
    "rd_expense": 3000,
    "rd_staff_share": 50,
}


def test_little_giant_equity_route_below_50m() -> None:
    assert run("little_giant", SMALL_GIANT).status == "eligible"
    out = run("little_giant", {**SMALL_GIANT, "new_equity_2y": 7999})
    assert (out.status, out.blocking) == ("near", ["little_giant.rd.equity"])
    assert out.criterion("little_giant.rd.equity").gap == 1.0
    # at 5000万 the ratio route applies instead, and 0% R&D fails it
    assert (
        run("little_giant", {**SMALL_GIANT, "operating_revenue": 5000})
        .criterion("little_giant.rd.small")
        .result
        == "fail"
    )


def test_little_giant_growth_average_is_cel() -> None:
    ok = run("little_giant", {**LITTLE_GIANT, "revenue_growth": 0, "revenue_growth_prev": 10})
    assert ok.status == "eligible"
    missing = {k: v for k, v in LITTLE_GIANT.items() if k != "revenue_growth_prev"}
    out = run("little_giant", missing)
    assert (out.criterion("little_giant.growth_avg").result, out.status) == ("unknown", "unknown")


# --------------------------------------------------------------------------------------------
# S&T SME: the 100-point self-evaluation and the direct routes
# --------------------------------------------------------------------------------------------


def points(out: RuleOutcome) -> PointsOutcome:
    p = out.find("st_sme.self_evaluation")
    assert isinstance(p, PointsOutcome)
    return p


@pytest.mark.parametrize(
    ("change", "total", "result"),
    [
        ({}, 60, "pass"),  # 4 + 50 + 6
        ({"class2_ip": 0}, 54, "fail"),
        ({"st_staff": 150}, 76, "pass"),  # 30% -> 20
        ({"st_staff": 125}, 72, "pass"),  # 25% -> 16
        ({"st_staff": 124}, 68, "pass"),  # 24.8% -> 12
        ({"rd_intensity": 5.99}, 50, "fail"),  # 5-6% -> 40
        ({"rd_intensity": 1.99, "rd_cost_ratio": 30}, 60, "pass"),  # the cost ratio scores 50
        ({"rd_intensity": 1.99, "rd_cost_ratio": 29.9}, 50, "fail"),
        ({"class2_ip": 4}, 78, "pass"),  # 4+ Class II -> 24
        ({"class2_ip": 7, "invention_patents": 1}, 84, "pass"),  # one Class I -> 30
    ],
)
def test_st_sme_points(change: dict[str, Any], total: float, result: str) -> None:
    p = points(run("st_sme", {**ST_SME, **change}))
    assert (p.total, p.result) == (total, result)


def test_st_sme_zero_staff_score_fails_any_total() -> None:
    out = run("st_sme", {**ST_SME, "st_staff": 49, "invention_patents": 1})  # 9.8%: 0 points
    p = points(out)
    assert (p.total, p.result, p.zero_required) == (80, "fail", ["st_sme.points.st_staff"])
    assert (out.status, out.blocking) == ("near", ["st_sme.self_evaluation"])


def test_st_sme_points_short_is_near_with_the_points_gap() -> None:
    out = run("st_sme", {**ST_SME, "class2_ip": 0})
    assert (out.status, out.blocking, points(out).gap) == ("near", ["st_sme.self_evaluation"], 6)


@pytest.mark.parametrize(
    "route",
    [
        {"qualifications": ["hnte"]},
        {"st_awards": 1},
        {"rd_platform": True},
        {"standards": 1},
    ],
)
def test_st_sme_direct_routes_skip_the_points(route: dict[str, Any]) -> None:
    weak = {**ST_SME, "st_staff": 0, "rd_intensity": 0, "class2_ip": 0}
    # near counts failing criteria, not their size: the points group is the one miss
    assert (run("st_sme", weak).status, points(run("st_sme", weak)).gap) == ("near", 60)
    assert run("st_sme", {**weak, **route}).status == "eligible"
    # ... but not the size limits
    assert run("st_sme", {**weak, **route, "employees": 501}).status == "ineligible"


def test_st_sme_unknown_points_with_no_direct_route() -> None:
    facts = {k: v for k, v in ST_SME.items() if k not in ("rd_intensity", "rd_cost_ratio")}
    out = run("st_sme", facts)
    assert points(out).result == "unknown"
    assert out.status == "unknown"
    assert {"rd_intensity", "rd_cost_ratio"} <= set(out.missing_facts)


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


def test_points_loan_subsidy_by_score_and_tier() -> None:
    base = {**CLEAN, "score": 60, "tier": 3}
    assert run("points_loan_subsidy", base).status == "eligible"
    low = run("points_loan_subsidy", {**base, "tier": 2, "score": 59.5})
    assert (low.status, low.blocking) == (
        "near",
        ["points_loan_subsidy.score", "points_loan_subsidy.tier"],
    )
    assert low.criterion("points_loan_subsidy.tier").gap == 1.0
    assert low.criterion("points_loan_subsidy.score").gap == 0.5


def test_patent_funding_cel_criterion() -> None:
    base = {"negative_flags": [], "invention_patents_granted": 0, "pct_filings": 1}
    assert run("patent_funding", base).status == "eligible"
    out = run("patent_funding", {**base, "pct_filings": 0})
    failed = [c.id for c in out.criteria() if c.result == "fail"]
    assert (out.status, failed) == ("ineligible", ["patent_funding.filings"])


def test_hnte_cultivation_is_for_firms_not_yet_hnte() -> None:
    facts = {**HNTE, "qualifications": []}
    assert run("hnte_cultivation", facts).status == "eligible"
    assert run("hnte_cultivation", {**facts, "qualifications": ["hnte"]}).status == "ineligible"
    near = run("hnte_cultivation", {**facts, "st_staff": 9})
    assert near.blocking == ["hnte_cultivation.hnte.st_staff_share"]


def test_policy_embedding_a_pool_agrees_with_the_pool() -> None:
    for facts in (ST_SME, {**ST_SME, "class2_ip": 0}, {**ST_SME, "employees": 900}, {}):
        assert run("st_sme_evaluation", facts).status == run("st_sme", facts).status
    for facts in (EAGLET, {**EAGLET, "rd_expense": 10}, {}):
        assert run("eaglet_cultivation", facts).status == run("eaglet", facts).status


def test_first_loan_subsidy_stage() -> None:
    base = {"negative_flags": [], "stage": "seedling", "score": 50, "listed": False}
    assert run("first_loan_subsidy", base).status == "eligible"
    out = run("first_loan_subsidy", {**base, "stage": "mature"})
    assert out.status == "ineligible"  # a stage is not a gap to close


def test_unicorn_support_by_title_or_by_valuation() -> None:
    assert (
        run("unicorn_support", {"negative_flags": [], "qualifications": ["quasi_unicorn"]}).status
        == "eligible"
    )
    by_value = {
        "negative_flags": [],
        "qualifications": [],
        **{k: v for k, v in QUASI.items() if k != "negative_flags"},
    }
    assert run("unicorn_support", by_value).status == "eligible"
    assert run("unicorn_support", {**by_value, "valuation_usd_m": 90}).status == "near"


# --------------------------------------------------------------------------------------------
# Both paths agree on arbitrary enterprises
# --------------------------------------------------------------------------------------------

EDGES = [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 10.0, 15.0, 25.0, 50.0, 60.0, 70.0, 100.0, 500.0]
EDGES += [1000.0, 3000.0, 5000.0, 8000.0, 10000.0, 20000.0]


def _value(code: str) -> st.SearchStrategy[Any]:
    spec = FACTS[code]
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "enum":
        return st.sampled_from([s.value for s in STAGES])
    if spec.type == "tags":
        vocab = QUALIFICATIONS if code == "qualifications" else NEGATIVE_FLAGS
        return st.lists(st.sampled_from(vocab), unique=True, max_size=3)
    return st.one_of(st.sampled_from(EDGES), st.floats(0, 30000))


ENTERPRISES = st.fixed_dictionaries(
    {}, optional={code: st.one_of(st.none(), _value(code)) for code in FACTS}
)


@settings(max_examples=200, deadline=None)
@given(facts=st.lists(ENTERPRISES, min_size=1, max_size=4))
def test_bulk_and_detailed_paths_agree_on_every_seeded_rule(facts: list[dict[str, Any]]) -> None:
    table = FactTable.from_records(facts)
    for compiled in compiled_rules():
        bulk = compiled.evaluate_table(table, detail=True)
        for i, row in enumerate(facts):
            out = compiled.evaluate(row)
            assert STATUSES[int(bulk.status[i])] == out.status, (compiled.id, row)
            for node in _nodes(out.root):
                code = {1: "pass", 0: "fail", -1: "unknown"}[int(bulk.results[node.id][i])]
                assert code == node.result, (compiled.id, node.id, row)


def _nodes(node: Any) -> list[CriterionOutcome | GroupOutcome | PointsOutcome]:
    if isinstance(node, GroupOutcome):
        return [node, *(n for item in node.items for n in _nodes(item))]
    return [node]


def test_bulk_matching_counts_are_stable() -> None:
    rng = np.random.default_rng(11)
    n = 2000
    cols: dict[str, Any] = {
        code: rng.uniform(0, 20000, n) for code, s in FACTS.items() if s.type == "number"
    }
    table = FactTable.from_columns(cols)
    for compiled in compiled_rules():
        status = compiled.evaluate_table(table).status
        assert status.shape == (n,)
        assert set(np.unique(status)) <= {0, 1, 2, 3}
    assert leaf_ids(POOLS_BY_CODE["hnte"].rule)
