"""The match list's explanations are kept per enterprise's facts: the same facts find them,
any other facts (a new evaluation, a corrected fact) do not, and the cache stays bounded."""

from __future__ import annotations

from services.policy.enterprises import service


def test_explanations_are_keyed_on_the_facts_and_bounded() -> None:
    facts = {"score": 61.5, "stage": "growth", "tags": ["a"]}
    first = service._explanations(facts)
    first[("fp", 2)] = ("eligible", [], [], [])
    assert service._explanations(dict(reversed(list(facts.items())))) is first
    assert service._explanations({**facts, "score": 61.6}) is not first
    assert service._explanations({**facts, "stage": None}) is not first
    assert service._explanations({**facts, "tags": ["a", "b"]}) is not first
    for i in range(service._EXPLAINED_MAX + 5):
        service._explanations({"score": float(i)})
    assert len(service._EXPLAINED) == service._EXPLAINED_MAX
    assert service._explanations(facts) == {}  # the oldest went first
