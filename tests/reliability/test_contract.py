"""Contract fuzzing: schemathesis generates requests from each component's own OpenAPI and
sends them through the gateway's public port as a government portal, a bank and an
enterprise. No answer may be a 5xx, and every documented answer must match its schema.

A service's paths (`/v1/X`) are published by the gateway as `/v1/{service}/X`, so its
document is rebased onto that prefix; the gateway's own document is used as it is. Examples
are few and unshrunk: the suite must stay within minutes on a 2-core machine, and one failing
example per operation is enough to act on.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from scripts.assembled import Assembled
from tests.reliability.conftest import Principals, wait_healthy

SERVICES = ("scoring", "credit", "policy")
# The logout endpoints would revoke the very token the fuzzer authenticates with.
SKIPPED = {("gateway", "POST", "/v1/auth/logout")}
POSITIVE_EXAMPLES = 10
NEGATIVE_EXAMPLES = 5


def gateway_document(assembled: Assembled, component: str) -> dict[str, Any]:
    spec: dict[str, Any] = httpx.get(
        assembled.launcher.url(component) + "/openapi.json", timeout=30
    ).json()
    if component == "gateway":
        # The gateway's document is the whole public API; its own routes are fuzzed here,
        # each service's (the same operations, rebased) under that service.
        own = copy.deepcopy(spec)
        own["paths"] = {
            p: item
            for p, item in spec["paths"].items()
            if not p.startswith(tuple(f"/v1/{s}/" for s in SERVICES))
        }
        return own
    rebased = copy.deepcopy(spec)
    rebased["paths"] = {
        f"/v1/{component}{path.removeprefix('/v1')}": item
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")  # health probes are not published by the gateway
    }
    return rebased


def fuzz_operation(
    operation: Any, base_url: str, headers: dict[str, str], fixed: dict[str, Any]
) -> list[str]:
    """Failures of one operation, at most one per mode (each is already a bug to fix)."""
    failures: list[str] = []
    for mode, examples, checks in (
        (
            GenerationMode.POSITIVE,
            POSITIVE_EXAMPLES,
            [not_a_server_error, response_schema_conformance],
        ),
        # Invalid input may be refused any 4xx way; it must just never break a service.
        (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, [not_a_server_error]),
    ):
        params = {k: v for k, v in fixed.items() if "{" + k + "}" in operation.path}
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=params or None)
        failures.extend(_run_examples(strategy, examples, checks, mode, base_url, headers))
    return failures


def _run_examples(
    strategy: Any,
    examples: int,
    checks: list[Any],
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
) -> list[str]:
    seen: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        if seen:
            return
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=20)
        except Exception as exc:  # a hang or reset is as much a failure as a 500
            seen.append(f"{mode.value} {case.method} {case.formatted_path}: {exc!r}")
            return
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' failure types
            seen.append(
                f"{mode.value} {case.method} {case.formatted_path} -> "
                f"{response.status_code}: {str(exc)[:800]}"
            )

    with contextlib.suppress(Unsatisfiable):  # nothing to negate: no parameters, no body
        run()
    return seen


@pytest.mark.parametrize("who", ["government", "bank", "enterprise"])
@pytest.mark.parametrize("component", ["gateway", *SERVICES])
def test_contract(assembled: Assembled, principals: Principals, component: str, who: str) -> None:
    token = {
        "government": principals.government,
        "bank": principals.bank_x,
        "enterprise": principals.enterprise_a,
    }[who]
    # The enterprise's own code, so its requests reach the services instead of stopping at
    # the gateway's first-line check; the others fuzz with a real scored enterprise.
    fixed = {"uscc": principals.uscc_a if who == "enterprise" else principals.uscc_c}
    schema = schemathesis.openapi.from_dict(gateway_document(assembled, component))
    failures: list[str] = []
    started = time.monotonic()
    operations = 0
    for result in schema.get_all_operations():
        # A document the fuzzer cannot read is itself a contract failure.
        assert isinstance(result, Ok), f"{component}: {result.err()}"
        operation = result.ok()
        if (component, operation.method.upper(), operation.path) in SKIPPED:
            continue
        operations += 1
        failures += fuzz_operation(
            operation, assembled.gateway, {"Authorization": f"Bearer {token}"}, fixed
        )
    print(f"{component}/{who}: {operations} operations in {time.monotonic() - started:.1f} s")
    # Fuzzed garbage must not have tripped a breaker or exhausted a pool.
    wait_healthy(assembled, principals.government, timeout=30)
    assert not failures, "\n\n".join(failures)
