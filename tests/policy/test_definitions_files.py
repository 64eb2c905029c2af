"""The seed definitions files: every pool and policy loads and compiles, pool references expand
to the pool's own criteria, and a wrong file is refused naming the file, entry and criterion."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from contracts.catalogue import NEGATIVE_FLAGS
from services.policy.criteria import Criterion, Group, compile_rule
from services.policy.definitions import (
    POLICIES,
    POLICIES_BY_CODE,
    POOLS,
    POOLS_BY_CODE,
    DefinitionError,
    load_definitions,
)
from services.policy.definitions.loader import DEFINITIONS_DIR, POLICIES_FILE, POOLS_FILE


def test_every_pool_and_policy_loads_from_the_files_and_compiles() -> None:
    pools, policies = load_definitions()
    assert [p.code for p in pools] == [p.code for p in POOLS]
    assert [p.code for p in policies] == [p.code for p in POLICIES]
    assert (len(pools), len(policies)) == (7, 14)
    for definition in (*pools, *policies):
        compiled = compile_rule(definition.rule)
        assert compiled.id == definition.rule.id
        assert compiled.facts, definition.code


def _criteria(node: Any) -> list[Criterion]:
    if isinstance(node, Criterion):
        return [node]
    if isinstance(node, Group):
        return [c for item in node.items for c in _criteria(item)]
    return []


@pytest.mark.parametrize("definition", [*POOLS, *POLICIES], ids=lambda d: d.rule.id)
def test_every_rule_is_gated_by_the_whole_negative_list(definition: Any) -> None:
    gates = [c for c in _criteria(definition.rule.root) if c.fact == "negative_flags"]
    assert gates, definition.code
    for gate in gates:
        assert (gate.op, sorted(gate.threshold or [])) == ("not_contains", sorted(NEGATIVE_FLAGS))


def test_a_policy_takes_a_pool_rule_as_it_is() -> None:
    for policy, pool in (("eaglet_cultivation", "eaglet"), ("st_sme_evaluation", "st_sme")):
        root = POLICIES_BY_CODE[policy].rule.root
        assert isinstance(root, Group)
        assert root.items[0] == POOLS_BY_CODE[pool].rule.root


def test_a_policy_takes_a_pool_criteria_under_its_own_ids() -> None:
    pool_root = POOLS_BY_CODE["hnte"].rule.root
    policy_root = POLICIES_BY_CODE["hnte_cultivation"].rule.root
    assert isinstance(pool_root, Group)
    assert isinstance(policy_root, Group)
    taken = policy_root.items[: len(pool_root.items)]
    assert [c.id for c in _criteria(policy_root)][:2] == [
        "hnte_cultivation.hnte.age",
        "hnte_cultivation.hnte.core_ip.invention",
    ]
    for mine, theirs in zip(taken, pool_root.items, strict=True):
        moved = mine.model_dump_json().replace('"hnte_cultivation.hnte.', '"hnte.')
        assert moved == theirs.model_dump_json()


# --------------------------------------------------------------------------------------------
# Refused files
# --------------------------------------------------------------------------------------------


def _edited(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of the shipped files with one exact edit in `file`."""
    for name in (POOLS_FILE, POLICIES_FILE):
        shutil.copy(DEFINITIONS_DIR / name, tmp_path / name)
    text = (tmp_path / file).read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    (tmp_path / file).write_text(text.replace(old, new), encoding="utf-8")
    return tmp_path


EAGLET_AGE = """          - id: eaglet.age
            fact: age_years
            op: "<="
            threshold: 5
"""


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            POOLS_FILE,
            "  - code: eaglet\n",
            "  - code: eaglet\n   name: [\n",
            r"(?s)pools\.yaml: not valid YAML.*line 152",
        ),
        (
            POOLS_FILE,
            EAGLET_AGE,
            EAGLET_AGE + "            threshold: 6\n",
            r"(?s)pools\.yaml: not valid YAML.*'threshold' is given twice.*line 171",
        ),
        (
            POOLS_FILE,
            EAGLET_AGE,
            EAGLET_AGE.replace("threshold:", "treshold:"),
            r"pools\.yaml: pool 'eaglet' \(entry 2\): "
            r"rule\.root\.items\[0\]\.treshold \(in 'eaglet\.age'\): Extra inputs",
        ),
        (
            POOLS_FILE,
            EAGLET_AGE,
            EAGLET_AGE.replace("age_years", "age_in_years"),
            r"pools\.yaml: pool 'eaglet' \(entry 2\): the rule is not valid: "
            r"rule\.root\.items\[0\] \(criterion 'eaglet\.age'\): unknown fact 'age_in_years'",
        ),
        (
            POOLS_FILE,
            EAGLET_AGE,
            EAGLET_AGE.replace("threshold: 5", "threshold: many"),
            r"pool 'eaglet'.*criterion 'eaglet\.age'.*needs a number threshold",
        ),
        (
            POOLS_FILE,
            "      id: pool:eaglet\n",
            "      id: pool:eaglets\n",
            r"pools\.yaml: pool 'eaglet' \(entry 2\): .*must be 'pool:eaglet'",
        ),
        (
            POOLS_FILE,
            "  - code: eaglet\n",
            "  - code: st_sme\n",
            r"pools\.yaml: pool 'st_sme' \(entry 2\): .*must be 'pool:st_sme'",
        ),
        (
            POLICIES_FILE,
            "          - pool: eaglet\n",
            "          - pool: eagle\n",
            r"policies\.yaml: policy 'eaglet_cultivation' \(entry 10\): "
            r"rule\.root\.items\[0\]: no pool 'eagle'",
        ),
        (
            POLICIES_FILE,
            "            criteria_as: hnte_cultivation.hnte\n",
            "            criteria_as: hnte_cultivation.hnte\n            as: x\n",
            r"policy 'hnte_cultivation'.*takes `pool` and `criteria_as`, not \['as'\]",
        ),
        (
            POLICIES_FILE,
            "    pools: [gazelle]\n",
            "    pools: [gazelle, antelope]\n",
            r"policies\.yaml: policy 'gazelle_award': pools \['antelope'\] are not in pools\.yaml",
        ),
        (
            POLICIES_FILE,
            "  - code: rd_platform_reward\n",
            "  - code: rd_subsidy\n",
            r"policy 'rd_subsidy' \(entry 14\): .*must be 'policy:rd_subsidy'",
        ),
        (POLICIES_FILE, "policies:\n", "policy:\n", r"policies\.yaml: expected one key"),
    ],
)
def test_a_wrong_file_is_refused_naming_file_entry_and_criterion(
    tmp_path: Path, file: str, old: str, new: str, message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        load_definitions(_edited(tmp_path, file, old, new))


def test_a_code_given_twice_is_refused(tmp_path: Path) -> None:
    directory = _edited(
        tmp_path,
        POLICIES_FILE,
        "    rule:\n      id: policy:rd_platform_reward\n",
        "    rule:\n      id: policy:rd_subsidy\n",
    )
    text = (directory / POLICIES_FILE).read_text(encoding="utf-8")
    (directory / POLICIES_FILE).write_text(
        text.replace("  - code: rd_platform_reward\n", "  - code: rd_subsidy\n"),
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError, match=r"policy 'rd_subsidy' \(entry 14\): .*also entry 3"):
        load_definitions(directory)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(DEFINITIONS_DIR / POOLS_FILE, tmp_path / POOLS_FILE)
    with pytest.raises(DefinitionError, match=r"policies\.yaml: cannot be read"):
        load_definitions(tmp_path)
