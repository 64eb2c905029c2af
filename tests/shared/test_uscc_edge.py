"""The enterprise named in a path, as every service takes it (`shared.auth.deps.VisibleUSCC`
and its kin): the caller authenticated first, then the code checked (format and GB
32100-2015 check character), then who may see it. Scoring, credit and policy answer alike."""

from __future__ import annotations

import math

import pytest

from gateway.auth.esso import EssoRefused, parse_user
from gateway.proxy.router import _first_line_check
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import Forbidden
from tests.platform import Platform
from tests.scoring_fixtures import demo, publish_demo

PROBLEM = "application/problem+json"
N, SEED = 60, 5
_DATA = demo(N, SEED)
A, B = [
    str(u)
    for u, flags, revenue in zip(
        _DATA.uscc,
        _DATA.periods[2025].profile["negative_flags"],
        _DATA.periods[2025].revenue,
        strict=True,
    )
    if not flags and not math.isnan(revenue)
][:2]
# A's code with another check character: the right format, the wrong check.
WRONG_CHECK = A[:17] + ("0" if A[17] != "0" else "1")

VISIBLE = [
    ("scoring", "/v1/enterprises/{}"),
    ("scoring", "/v1/enterprises/{}/score"),
    ("scoring", "/v1/enterprises/{}/portrait"),
    ("scoring", "/v1/enterprises/{}/history"),
    ("credit", "/v1/enterprises/{}/offers"),
    ("policy", "/v1/enterprises/{}/matches"),
    ("policy", "/v1/enterprises/{}/pushes"),
]
CONSENTED = ("credit", "/v1/enterprises/{}/approved-amounts")


@pytest.fixture
async def services(platform: Platform) -> Platform:
    await platform.start("scoring", "credit", "policy")
    return platform


async def test_a_bad_code_is_one_problem_in_every_service(services: Platform) -> None:
    for name, path in [*VISIBLE, CONSENTED]:
        async with services.client(name) as anon:
            r = await anon.get(path.format("not-a-code"))
            assert r.status_code == 401, (name, path)
        async with (
            services.client(name, "government") as gov,
            services.client(name, "enterprise", uscc=A) as own,
        ):
            for client in (gov, own):
                for bad in (WRONG_CHECK, "not-a-code", A[:17]):
                    r = await client.get(path.format(bad))
                    assert r.status_code == 422, (name, path, bad)
                    assert r.headers["content-type"] == PROBLEM
                    assert r.json()["type"].endswith("/invalid-uscc"), r.json()
            # A valid code passes the edge: what follows is the service's own answer.
            r = await gov.get(path.format(B))
            assert r.status_code not in (401, 403, 422), (name, path, r.text)


async def test_each_caller_sees_what_its_kind_may(services: Platform) -> None:
    for name, path in [*VISIBLE, CONSENTED]:
        async with (
            services.client(name, "enterprise", uscc=A) as ent_a,
            services.client(name, "bank", bank_id="icbc-binjiang") as bank,
            services.client(name, "service") as svc,
        ):
            r = await ent_a.get(path.format(B))
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, (name, path)
            assert (await ent_a.get(path.format(A))).status_code not in (401, 403, 422)
            assert (await svc.get(path.format(B))).status_code not in (401, 403, 422)
            r = await bank.get(path.format(A))
            assert r.status_code == 403, (name, path)
            expected = "/no-consent" if (name, path) == CONSENTED else "/forbidden"
            assert r.json()["type"].endswith(expected), (name, path, r.json())


async def test_only_the_enterprise_itself_marks_its_pushes_read(services: Platform) -> None:
    path = "/v1/enterprises/{}/pushes/1/read"
    async with services.client("policy", "government") as gov:
        # Not an enterprise: refused whatever the code.
        for code in (A, WRONG_CHECK):
            assert (await gov.post(path.format(code))).status_code == 403
    async with services.client("policy", "enterprise", uscc=A) as own:
        r = await own.post(path.format(WRONG_CHECK))
        assert r.status_code == 422 and r.json()["type"].endswith("/invalid-uscc")
        assert (await own.post(path.format(B))).status_code == 403
        assert (await own.post(path.format(A))).status_code == 404  # no such push


async def test_a_code_is_read_in_its_canonical_form(platform: Platform) -> None:
    await publish_demo(platform, n=N, seed=SEED, period=2025)
    a = A
    written = f"{a[:2]}-{a[2:8]}-{a[8:17]}-{a[17]}".lower()  # as people write it
    async with platform.client("scoring", "enterprise", uscc=a) as own:
        r = await own.get(f"/v1/enterprises/{written}/score")
        assert r.status_code == 200, r.text
        assert r.json()["uscc"] == a
    async with platform.client("scoring", "enterprise", uscc=B) as other:
        assert (await other.get(f"/v1/enterprises/{written}/score")).status_code == 403


async def test_the_credit_filter_checks_the_code(services: Platform) -> None:
    async with services.client("credit", "government") as gov:
        r = await gov.get("/v1/applications", params={"uscc": WRONG_CHECK})
        assert r.status_code == 422 and r.json()["type"].endswith("/invalid-uscc")
        r = await gov.get("/v1/applications", params={"uscc": f" {A.lower()} "})
        assert r.status_code == 200 and r.json()["total"] == 0


def test_the_gateway_reads_codes_as_the_services_do() -> None:
    written = f"{A[:8]}-{A[8:]}".lower()
    me = Principal(sub=A, kind=PrincipalKind.ENTERPRISE, uscc=A)
    _first_line_check(me, ["enterprises", written, "score"])  # its own code: let through
    for other in (B, WRONG_CHECK, "not-a-code", ""):
        with pytest.raises(Forbidden):
            _first_line_check(me, ["enterprises", other, "score"])
    # The enterprise-code login keeps the canonical code, and refuses a wrong one.
    assert parse_user({"uniscid": written, "userId": "u1"}).uscc == A
    with pytest.raises(EssoRefused):
        parse_user({"uniscid": WRONG_CHECK, "userId": "u1"})
