"""Seed definitions: the cultivation pools (培育库) with their published criteria, and the
illustrative policies, that the policy service seeds at startup (`services.policy.seed`).

They are data, `pools.yaml` and `policies.yaml` beside this module, so domain staff review the
clauses without reading Python; `loader.py` validates them on import. Pools follow domain.md
section 2; policies are illustrative (modelled on typical Hangzhou/Binjiang support measures,
not copies of published documents). Real policies are entered by staff through the API, with
the same `Rule` model and `validate_rule`.

Why "definitions": `contracts.catalogue` is the published indicator vocabulary, a different
thing, and these are not the pools and policies the service serves either (the rows of
`services.policy.models`, which staff edit once seeded) but what it seeds them from.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from services.policy.criteria import CompiledRule, Rule, compile_rule
from services.policy.definitions.loader import DefinitionError, load_definitions
from services.policy.definitions.schemas import PolicyDefinition, PoolDefinition

POOLS, POLICIES = load_definitions()

POOLS_BY_CODE: Mapping[str, PoolDefinition] = MappingProxyType({p.code: p for p in POOLS})
POLICIES_BY_CODE: Mapping[str, PolicyDefinition] = MappingProxyType({p.code: p for p in POLICIES})


def all_rules() -> list[Rule]:
    """Every seeded rule: the pools, then the policies."""
    return [p.rule for p in POOLS] + [p.rule for p in POLICIES]


@lru_cache(maxsize=1)
def compiled_rules() -> tuple[CompiledRule, ...]:
    """All seeded rules, compiled once (raises if any is invalid)."""
    return tuple(compile_rule(r) for r in all_rules())


__all__ = [
    "POLICIES",
    "POLICIES_BY_CODE",
    "POOLS",
    "POOLS_BY_CODE",
    "DefinitionError",
    "PolicyDefinition",
    "PoolDefinition",
    "all_rules",
    "compiled_rules",
    "load_definitions",
]
