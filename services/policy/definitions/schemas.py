"""A seeded pool or policy as its definitions file states it.

Named `...Definition` so they never pass for the rows of `services.policy.models`
(`CultivationPool`, `Policy`), which are what the service serves and staff edit once seeded.
"""

from __future__ import annotations

from datetime import date
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.catalogue import Stage
from services.policy.criteria import Rule
from services.policy.policies.schemas import Benefit


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_rule_id(rule: Rule, expected: str) -> None:
    # Matches are keyed by "<kind>:<code>"; a rule under another id would match nothing.
    if rule.id != expected:
        raise ValueError(f"rule.id is {rule.id!r}; it must be {expected!r}")


class PoolDefinition(_Model):
    """A cultivation pool (培育库) and the rule that decides who belongs in it."""

    code: str
    name_zh: str
    name_en: str
    target_stage: Stage
    clause: str  # the rule text, summarised
    sources: list[str]  # domain.md source keys
    approximations: list[str]  # where facts stand in for conditions, or conditions are left out
    rule: Rule

    @model_validator(mode="after")
    def _rule_id(self) -> Self:
        _check_rule_id(self.rule, f"pool:{self.code}")
        return self


class PolicyDefinition(_Model):
    """A policy as seeded: version 1, published, owned by the government from then on."""

    code: str
    title_zh: str
    title_en: str
    department_zh: str
    summary_zh: str
    benefits: list[Benefit]
    valid_from: date
    valid_to: date | None  # None: until revoked
    pools: list[str]  # linked cultivation pools
    rule: Rule
    illustrative: bool = True  # seed data, not a published document
    approximations: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rule_id(self) -> Self:
        _check_rule_id(self.rule, f"policy:{self.code}")
        return self
